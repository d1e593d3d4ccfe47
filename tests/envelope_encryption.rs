//! Envelope encryption end to end, on SQLite and on Postgres (invariant 2 of DESIGN.md):
//! a sealed value opens only as the secret, version and vault it was sealed for; nothing
//! in the database holds a plaintext or an unwrapped key; shredding a secret or a vault
//! makes its values unrecoverable while everything else still opens, also when the vault
//! is deleted over HTTP.

mod common;

use std::sync::Arc;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, KeyInit, Nonce, Payload};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::Utc;
use common::{Api, TestDb};
use domain::{ExpectedVersion, Metadata, NewEvent, StreamId, VaultId};
use keyward::crypto::{CryptoError, Envelope, KeyTable, MasterKey, SealedValue};
use keyward::store::{self, EventStore};
use sqlx::{Connection, Row};

/// The stored formats, as src/crypto/mod.rs documents them: a change here breaks every
/// existing database.
const WRAPPED_KEY_AAD: &[u8] = b"keyward/wrapped-key/v1\0";
const SECRET_VALUE_AAD: &[u8] = b"keyward/secret-value/v1\0";

/// Fields drop in order: the connections before the database they use.
struct Fixture {
    envelope: Envelope,
    store: Arc<dyn EventStore>,
    master_hex: String,
    db: TestDb,
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).unwrap();
    bytes
}

fn random_master_hex() -> String {
    hex::encode(random_bytes::<32>())
}

async fn envelope(db: &TestDb, master_key: MasterKey) -> Envelope {
    Envelope::new(master_key, KeyTable::open(&db.url()).await.unwrap())
}

async fn fixture(db: TestDb) -> Fixture {
    // The store's open runs the migrations, the key table's among them.
    let store = store::open(&db.url()).await.unwrap();
    let master_hex = random_master_hex();
    let envelope = envelope(&db, MasterKey::parse(&master_hex).unwrap()).await;
    Fixture {
        envelope,
        store,
        master_hex,
        db,
    }
}

async fn new_vault(envelope: &Envelope) -> VaultId {
    let vault = VaultId::new();
    envelope.create_vault_key(vault).await.unwrap();
    vault
}

fn dek_id(vault: VaultId, path: &str, version: u64) -> String {
    format!("dek:{vault}:{path}:{version}")
}

#[track_caller]
fn assert_destroyed(result: Result<impl Sized, CryptoError>, expected_key_id: &str) {
    match result {
        Err(CryptoError::KeyDestroyed { key_id }) => assert_eq!(key_id, expected_key_id),
        Err(other) => panic!("expected KeyDestroyed {{ {expected_key_id} }}, got {other:?}"),
        Ok(_) => panic!("expected KeyDestroyed {{ {expected_key_id} }}, got a value"),
    }
}

#[track_caller]
fn assert_tampered(result: Result<impl Sized, CryptoError>) {
    match result {
        Err(CryptoError::Tampered) => {}
        Err(other) => panic!("expected Tampered, got {other:?}"),
        Ok(_) => panic!("expected Tampered, got a value"),
    }
}

#[track_caller]
fn assert_unwrap_fails(result: Result<impl Sized, CryptoError>, expected_key_id: &str) {
    match result {
        Err(CryptoError::KeyUnwrap { key_id }) => assert_eq!(key_id, expected_key_id),
        Err(other) => panic!("expected KeyUnwrap {{ {expected_key_id} }}, got {other:?}"),
        Ok(_) => panic!("expected KeyUnwrap {{ {expected_key_id} }}, got a value"),
    }
}

/// The rows of the key table, read past keyward.
async fn wrapped_keys(db: &TestDb) -> Vec<(String, Vec<u8>)> {
    let select = "SELECT key_id, wrapped FROM wrapped_keys ORDER BY key_id";
    match db {
        TestDb::Sqlite { .. } => {
            let mut connection = sqlx::SqliteConnection::connect(&db.url()).await.unwrap();
            sqlx::query_as(select).fetch_all(&mut connection).await.unwrap()
        }
        TestDb::Postgres { .. } => {
            let mut connection = sqlx::PgConnection::connect(&db.url()).await.unwrap();
            sqlx::query_as(select).fetch_all(&mut connection).await.unwrap()
        }
    }
}

async fn wrapped_key(db: &TestDb, key_id: &str) -> Vec<u8> {
    wrapped_keys(db)
        .await
        .into_iter()
        .find(|(id, _)| id == key_id)
        .map(|(_, wrapped)| wrapped)
        .unwrap_or_else(|| panic!("no row {key_id}"))
}

/// What an attacker with the database gets: for SQLite the files themselves (database,
/// WAL, shared memory) and the events unpacked; for Postgres the key table and the log, raw and as text.
async fn database_contents(db: &TestDb) -> Vec<u8> {
    let mut contents = Vec::new();
    match db {
        TestDb::Sqlite { .. } => {
            let path = db.sqlite_path().unwrap();
            for suffix in ["", "-wal", "-shm"] {
                let file = format!("{}{suffix}", path.display());
                if let Ok(bytes) = std::fs::read(&file) {
                    contents.extend_from_slice(&bytes);
                }
            }
            // The log packs events (src/store/sqlite/packing.rs), which no byte search sees
            // into: the events as they unpack too.
            let store = keyward::store::open(&db.url()).await.unwrap();
            for event in store.read_all(0, 100_000).await.unwrap() {
                contents.extend_from_slice(event.payload.as_bytes());
                contents.extend_from_slice(event.metadata.as_bytes());
            }
        }
        TestDb::Postgres { .. } => {
            let mut connection = sqlx::PgConnection::connect(&db.url()).await.unwrap();
            for (key_id, wrapped) in wrapped_keys(db).await {
                contents.extend_from_slice(key_id.as_bytes());
                contents.extend_from_slice(&wrapped);
            }
            for query in [
                "SELECT t::text FROM wrapped_keys t",
                "SELECT t::text FROM events t",
                "SELECT payload FROM events",
            ] {
                for row in sqlx::query(query).fetch_all(&mut connection).await.unwrap() {
                    contents.extend_from_slice(row.get::<String, _>(0).as_bytes());
                }
            }
        }
    }
    contents
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

/// Whether `secret` appears raw, as hex or as base64.
fn reveals(haystack: &[u8], secret: &[u8]) -> bool {
    contains(haystack, secret)
        || contains(haystack, hex::encode(secret).as_bytes())
        || contains(haystack, STANDARD.encode(secret).trim_end_matches('=').as_bytes())
}

fn aes_open(key: &[u8], nonce: &[u8], ciphertext: &[u8], aad: &[u8]) -> Vec<u8> {
    Aes256Gcm::new_from_slice(key)
        .unwrap()
        .decrypt(
            &Nonce::<Aes256Gcm>::try_from(nonce).unwrap(),
            Payload { msg: ciphertext, aad },
        )
        .unwrap()
}

/// Unwraps a stored key the way the documented format says: `nonce || ciphertext+tag`,
/// bound to `WRAPPED_KEY_AAD || key id`.
fn unwrap_stored(wrapping_key: &[u8], key_id: &str, wrapped: &[u8]) -> Vec<u8> {
    assert_eq!(wrapped.len(), 12 + 32 + 16);
    let aad = [WRAPPED_KEY_AAD, key_id.as_bytes()].concat();
    aes_open(wrapping_key, &wrapped[..12], &wrapped[12..], &aad)
}

async fn a_sealed_value_opens_to_its_plaintext(f: Fixture) {
    let vault = new_vault(&f.envelope).await;
    let plaintext = b"correct horse battery staple";
    let sealed = f.envelope.seal(vault, "db/prod/password", 1, plaintext).await.unwrap();
    assert_eq!(sealed.ciphertext.len(), plaintext.len() + 16);
    assert!(!contains(&sealed.ciphertext, plaintext));
    let opened = f.envelope.open(vault, "db/prod/password", 1, &sealed).await.unwrap();
    assert_eq!(opened.as_slice(), plaintext);

    // As the events carry it: JSON, and back.
    let json = serde_json::to_string(&sealed).unwrap();
    let carried: SealedValue = serde_json::from_str(&json).unwrap();
    let opened = f.envelope.open(vault, "db/prod/password", 1, &carried).await.unwrap();
    assert_eq!(opened.as_slice(), plaintext);

    let empty = f.envelope.seal(vault, "empty", 1, b"").await.unwrap();
    assert_eq!(
        f.envelope.open(vault, "empty", 1, &empty).await.unwrap().as_slice(),
        b""
    );

    let debug = format!("{:?}", f.envelope);
    assert!(debug.contains("MasterKey(<redacted>)"), "{debug}");
    assert!(!debug.to_lowercase().contains(&f.master_hex[..16]), "{debug}");
}

async fn a_value_presented_as_another_path_version_or_vault_does_not_open(f: Fixture) {
    let (vault, other_vault) = (new_vault(&f.envelope).await, new_vault(&f.envelope).await);
    let plaintext = b"the same plaintext everywhere";
    let sealed = f.envelope.seal(vault, "app/key", 1, plaintext).await.unwrap();
    f.envelope.seal(vault, "app/other", 1, plaintext).await.unwrap();
    f.envelope.seal(vault, "app/key", 2, plaintext).await.unwrap();
    f.envelope.seal(other_vault, "app/key", 1, plaintext).await.unwrap();

    assert_tampered(f.envelope.open(vault, "app/other", 1, &sealed).await);
    assert_tampered(f.envelope.open(vault, "app/key", 2, &sealed).await);
    assert_tampered(f.envelope.open(other_vault, "app/key", 1, &sealed).await);
    // Where no key was ever stored, there is nothing to open with.
    assert_destroyed(
        f.envelope.open(vault, "app/never", 1, &sealed).await,
        &dek_id(vault, "app/never", 1),
    );
    assert_eq!(
        f.envelope.open(vault, "app/key", 1, &sealed).await.unwrap().as_slice(),
        plaintext
    );
}

async fn a_flipped_bit_in_the_nonce_or_the_ciphertext_is_tampered(f: Fixture) {
    let vault = new_vault(&f.envelope).await;
    let sealed = f.envelope.seal(vault, "api/token", 1, b"tok_live_1234").await.unwrap();
    for byte in 0..sealed.ciphertext.len() {
        let mut altered = sealed.clone();
        altered.ciphertext[byte] ^= 1 << (byte % 8);
        assert_tampered(f.envelope.open(vault, "api/token", 1, &altered).await);
    }
    for byte in 0..sealed.nonce.len() {
        let mut altered = sealed.clone();
        altered.nonce[byte] ^= 0x80;
        assert_tampered(f.envelope.open(vault, "api/token", 1, &altered).await);
    }
    let mut truncated = sealed.clone();
    truncated.ciphertext.truncate(15);
    assert_tampered(f.envelope.open(vault, "api/token", 1, &truncated).await);
    let mut extended = sealed.clone();
    extended.ciphertext.push(0);
    let error = f.envelope.open(vault, "api/token", 1, &extended).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "sealed value failed authentication: it was altered, or it belongs to another secret, version or vault"
    );
    assert_eq!(
        f.envelope
            .open(vault, "api/token", 1, &sealed)
            .await
            .unwrap()
            .as_slice(),
        b"tok_live_1234"
    );
}

async fn a_wrapped_key_copied_to_another_key_id_does_not_unwrap(f: Fixture) {
    let (vault, other_vault) = (new_vault(&f.envelope).await, new_vault(&f.envelope).await);
    f.envelope.seal(vault, "a", 1, b"value of a").await.unwrap();
    let b = f.envelope.seal(vault, "b", 1, b"value of b").await.unwrap();
    let other = f.envelope.seal(other_vault, "c", 1, b"value of c").await.unwrap();

    // An attacker with write access to the table gives b the data key of a.
    let copied =
        f.db.execute_sql(&format!(
            "UPDATE wrapped_keys SET wrapped = (SELECT wrapped FROM wrapped_keys WHERE key_id = '{}') \
             WHERE key_id = '{}'",
            dek_id(vault, "a", 1),
            dek_id(vault, "b", 1)
        ))
        .await;
    assert_eq!(copied, 1);
    assert_unwrap_fails(f.envelope.open(vault, "b", 1, &b).await, &dek_id(vault, "b", 1));

    // ...and the other vault the KEK of the first.
    f.db.execute_sql(&format!(
        "UPDATE wrapped_keys SET wrapped = (SELECT wrapped FROM wrapped_keys WHERE key_id = 'kek:{vault}') \
         WHERE key_id = 'kek:{other_vault}'"
    ))
    .await;
    assert_unwrap_fails(
        f.envelope.open(other_vault, "c", 1, &other).await,
        &format!("kek:{other_vault}"),
    );
}

async fn shredding_a_secret_destroys_every_version_and_spares_the_rest(f: Fixture) {
    let vault = new_vault(&f.envelope).await;
    let mut versions = Vec::new();
    for version in 1..=3 {
        let plaintext = format!("token version {version}");
        versions.push(
            f.envelope
                .seal(vault, "svc/token", version, plaintext.as_bytes())
                .await
                .unwrap(),
        );
    }
    // Paths that share a prefix with the shredded one.
    let nested = f.envelope.seal(vault, "svc/token/old", 1, b"nested").await.unwrap();
    let longer = f.envelope.seal(vault, "svc/tokens", 1, b"longer").await.unwrap();
    // Opened before the shred: a key table that remembers the keys it read must forget them.
    for (version, sealed) in (1..=3).zip(&versions) {
        f.envelope.open(vault, "svc/token", version, sealed).await.unwrap();
    }

    assert_eq!(f.envelope.shred_secret(vault, "svc/token").await.unwrap(), 3);

    for (version, sealed) in (1..=3).zip(&versions) {
        assert_destroyed(
            f.envelope.open(vault, "svc/token", version, sealed).await,
            &dek_id(vault, "svc/token", version),
        );
    }
    assert_eq!(
        f.envelope
            .open(vault, "svc/token/old", 1, &nested)
            .await
            .unwrap()
            .as_slice(),
        b"nested"
    );
    assert_eq!(
        f.envelope
            .open(vault, "svc/tokens", 1, &longer)
            .await
            .unwrap()
            .as_slice(),
        b"longer"
    );
    assert_eq!(f.envelope.shred_secret(vault, "svc/token").await.unwrap(), 0);

    // The vault's KEK survives: a secret created again at the path seals and opens.
    let again = f.envelope.seal(vault, "svc/token", 1, b"new life").await.unwrap();
    assert_eq!(
        f.envelope.open(vault, "svc/token", 1, &again).await.unwrap().as_slice(),
        b"new life"
    );
    // ...and the old version 1 stays noise under the new key.
    assert_tampered(f.envelope.open(vault, "svc/token", 1, &versions[0]).await);
}

async fn shredding_a_vault_destroys_its_kek_and_every_dek(f: Fixture) {
    let (vault, other_vault) = (new_vault(&f.envelope).await, new_vault(&f.envelope).await);
    let one = f.envelope.seal(vault, "one", 1, b"1").await.unwrap();
    let two = f.envelope.seal(vault, "two", 1, b"2").await.unwrap();
    let two_again = f.envelope.seal(vault, "two", 2, b"2 again").await.unwrap();
    let elsewhere = f.envelope.seal(other_vault, "one", 1, b"elsewhere").await.unwrap();
    // Opened before the shred, as in the test above.
    for (path, version, sealed) in [("one", 1, &one), ("two", 1, &two), ("two", 2, &two_again)] {
        f.envelope.open(vault, path, version, sealed).await.unwrap();
    }

    assert_eq!(f.envelope.shred_vault(vault).await.unwrap(), 4);

    assert_destroyed(f.envelope.open(vault, "one", 1, &one).await, &dek_id(vault, "one", 1));
    assert_destroyed(f.envelope.open(vault, "two", 1, &two).await, &dek_id(vault, "two", 1));
    assert_destroyed(
        f.envelope.open(vault, "two", 2, &two_again).await,
        &dek_id(vault, "two", 2),
    );
    assert_destroyed(f.envelope.seal(vault, "three", 1, b"3").await, &format!("kek:{vault}"));
    assert_eq!(
        f.envelope
            .open(other_vault, "one", 1, &elsewhere)
            .await
            .unwrap()
            .as_slice(),
        b"elsewhere"
    );
    assert_eq!(f.envelope.shred_vault(vault).await.unwrap(), 0);
    assert_eq!(
        wrapped_keys(&f.db)
            .await
            .into_iter()
            .map(|(key_id, _)| key_id)
            .filter(|key_id| key_id.contains(&vault.to_string()))
            .count(),
        0
    );

    // A new KEK for the id brings nothing back.
    f.envelope.create_vault_key(vault).await.unwrap();
    assert_destroyed(f.envelope.open(vault, "one", 1, &one).await, &dek_id(vault, "one", 1));
}

async fn no_plaintext_and_no_unwrapped_key_reaches_the_database(f: Fixture) {
    let vault = new_vault(&f.envelope).await;
    let marker = format!("marker-{}", hex::encode(random_bytes::<16>()));
    let sealed = f.envelope.seal(vault, "api/key", 1, marker.as_bytes()).await.unwrap();

    // The sealed value goes into the log, as the command handlers will put it there.
    let event = NewEvent::new(
        "secret.version_added",
        1,
        &serde_json::json!({ "vault_id": vault, "path": "api/key", "version": 1, "value": sealed }),
        &Metadata::system(Utc::now()),
    )
    .unwrap();
    let stream = StreamId::parse(format!("secret-{}", vault.0.simple())).unwrap();
    f.store
        .append(&stream, ExpectedVersion::NoStream, vec![event])
        .await
        .unwrap();

    // The stored format, followed by hand: master key -> KEK -> DEK -> value.
    let master = hex::decode(&f.master_hex).unwrap();
    let kek_id = format!("kek:{vault}");
    let kek = unwrap_stored(&master, &kek_id, &wrapped_key(&f.db, &kek_id).await);
    let dek_id = dek_id(vault, "api/key", 1);
    let wrapped_dek = wrapped_key(&f.db, &dek_id).await;
    let dek = unwrap_stored(&kek, &dek_id, &wrapped_dek);
    let aad = [
        SECRET_VALUE_AAD,
        vault.0.as_bytes().as_slice(),
        &1u64.to_be_bytes(),
        b"api/key",
    ]
    .concat();
    assert_eq!(
        aes_open(&dek, &sealed.nonce, &sealed.ciphertext, &aad),
        marker.as_bytes()
    );

    let contents = database_contents(&f.db).await;
    // The search sees what is there: the wrapped key and the sealed value as the event has it.
    assert!(contains(&contents, &wrapped_dek));
    assert!(contains(&contents, STANDARD.encode(&sealed.ciphertext).as_bytes()));
    assert!(
        !reveals(&contents, marker.as_bytes()),
        "the plaintext is in the database"
    );
    assert!(!reveals(&contents, &dek), "an unwrapped DEK is in the database");
    assert!(!reveals(&contents, &kek), "an unwrapped KEK is in the database");
    assert!(!reveals(&contents, &master), "the master key is in the database");
}

async fn a_restarted_envelope_opens_old_values_only_with_the_same_master_key(f: Fixture) {
    let data_dir = tempfile::tempdir().unwrap();
    let first = envelope(&f.db, MasterKey::load_or_generate(data_dir.path(), None).unwrap()).await;
    let vault = new_vault(&first).await;
    let sealed = first
        .seal(vault, "ssh/deploy", 1, b"-----BEGIN KEY-----")
        .await
        .unwrap();
    drop(first);

    let restarted = envelope(&f.db, MasterKey::load_or_generate(data_dir.path(), None).unwrap()).await;
    assert_eq!(
        restarted
            .open(vault, "ssh/deploy", 1, &sealed)
            .await
            .unwrap()
            .as_slice(),
        b"-----BEGIN KEY-----"
    );

    let other_master = envelope(&f.db, MasterKey::parse(&random_master_hex()).unwrap()).await;
    let kek_id = format!("kek:{vault}");
    assert_unwrap_fails(other_master.open(vault, "ssh/deploy", 1, &sealed).await, &kek_id);
    assert_unwrap_fails(other_master.seal(vault, "ssh/other", 1, b"x").await, &kek_id);
    let error = other_master.open(vault, "ssh/deploy", 1, &sealed).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "wrapped key {kek_id} failed authentication: the master key is not the one it was wrapped with, \
             or the key table was altered"
        )
    );
}

async fn creating_a_vault_key_again_keeps_the_first(f: Fixture) {
    let vault = new_vault(&f.envelope).await;
    let kek_id = format!("kek:{vault}");
    let first = wrapped_key(&f.db, &kek_id).await;
    let sealed = f.envelope.seal(vault, "k", 1, b"v").await.unwrap();
    f.envelope.create_vault_key(vault).await.unwrap();
    assert_eq!(wrapped_key(&f.db, &kek_id).await, first);
    assert_eq!(f.envelope.open(vault, "k", 1, &sealed).await.unwrap().as_slice(), b"v");
    let keks = wrapped_keys(&f.db)
        .await
        .into_iter()
        .filter(|(key_id, _)| key_id.starts_with("kek:"))
        .count();
    assert_eq!(keks, 1);
}

async fn sealing_into_a_vault_without_a_key_is_key_destroyed(f: Fixture) {
    let vault = VaultId::new();
    assert_destroyed(f.envelope.seal(vault, "k", 1, b"v").await, &format!("kek:{vault}"));
    assert!(wrapped_keys(&f.db).await.is_empty());
}

async fn racing_seals_of_one_version_share_its_data_key(f: Fixture) {
    let vault = new_vault(&f.envelope).await;
    let envelope = Arc::new(f.envelope);
    let seals = (0..8).map(|writer| {
        let envelope = envelope.clone();
        tokio::spawn(async move {
            let plaintext = format!("writer {writer}");
            let sealed = envelope.seal(vault, "raced", 1, plaintext.as_bytes()).await.unwrap();
            (plaintext, sealed)
        })
    });
    let sealed: Vec<_> = futures_join(seals).await;
    // Whichever of them the log keeps, it opens.
    for (plaintext, sealed) in &sealed {
        assert_eq!(
            envelope.open(vault, "raced", 1, sealed).await.unwrap().as_slice(),
            plaintext.as_bytes()
        );
    }
    let deks = wrapped_keys(&f.db)
        .await
        .into_iter()
        .filter(|(key_id, _)| key_id.starts_with("dek:"))
        .count();
    assert_eq!(deks, 1);
}

async fn futures_join<T: Send + 'static>(handles: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut results = Vec::new();
    for handle in handles.collect::<Vec<_>>() {
        results.push(handle.await.unwrap());
    }
    results
}

macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(fixture(TestDb::sqlite()).await).await;
                }
            )*
        }

        mod postgres {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(fixture(TestDb::postgres().await).await).await;
                }
            )*
        }
    };
}

on_both_backends!(
    a_sealed_value_opens_to_its_plaintext,
    a_value_presented_as_another_path_version_or_vault_does_not_open,
    a_flipped_bit_in_the_nonce_or_the_ciphertext_is_tampered,
    a_wrapped_key_copied_to_another_key_id_does_not_unwrap,
    shredding_a_secret_destroys_every_version_and_spares_the_rest,
    shredding_a_vault_destroys_its_kek_and_every_dek,
    no_plaintext_and_no_unwrapped_key_reaches_the_database,
    a_restarted_envelope_opens_old_values_only_with_the_same_master_key,
    creating_a_vault_key_again_keeps_the_first,
    sealing_into_a_vault_without_a_key_is_key_destroyed,
    racing_seals_of_one_version_share_its_data_key,
);

/// On SQLite a shredded key also leaves the files: `secure_delete` zeroes its row and the
/// WAL that held its first write is truncated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shredded_key_leaves_the_sqlite_files() {
    let f = fixture(TestDb::sqlite()).await;
    let vault = new_vault(&f.envelope).await;
    let sealed = f.envelope.seal(vault, "to/shred", 1, b"short-lived").await.unwrap();
    let kept = f.envelope.seal(vault, "to/keep", 1, b"long-lived").await.unwrap();
    let wrapped_dek = wrapped_key(&f.db, &dek_id(vault, "to/shred", 1)).await;
    let wrapped_kept = wrapped_key(&f.db, &dek_id(vault, "to/keep", 1)).await;
    assert!(contains(&database_contents(&f.db).await, &wrapped_dek));

    assert_eq!(f.envelope.shred_secret(vault, "to/shred").await.unwrap(), 1);

    let contents = database_contents(&f.db).await;
    assert!(
        !contains(&contents, &wrapped_dek),
        "the shredded key's bytes are still in the files"
    );
    assert!(contains(&contents, &wrapped_kept));
    assert_destroyed(
        f.envelope.open(vault, "to/shred", 1, &sealed).await,
        &dek_id(vault, "to/shred", 1),
    );
    assert_eq!(
        f.envelope.open(vault, "to/keep", 1, &kept).await.unwrap().as_slice(),
        b"long-lived"
    );
}

/// DELETE /v1/vaults/{id} destroys the vault's KEK and every DEK in the key table: the
/// ciphertexts its secrets left in the immutable log no longer open, even with the master
/// key, while another vault's still do.
async fn deleting_a_vault_over_http_shreds_its_keys(db: TestDb) {
    let master_hex = random_master_hex();
    let api = Api::start_with(&db, &[("KEYWARD_MASTER_KEY", master_hex.as_str())]).await;
    let human = api.signup("ada@example.com", "correct horse").await;
    let mut vaults = Vec::new();
    for name in ["doomed", "kept"] {
        let (status, vault) = api
            .call(
                "POST",
                "/v1/vaults",
                Some(&human),
                Some(serde_json::json!({"name": name})),
            )
            .await;
        assert_eq!(status, reqwest::StatusCode::CREATED, "{vault}");
        vaults.push(vault["id"].as_str().unwrap().parse::<VaultId>().unwrap());
    }
    let [doomed, kept] = vaults[..] else { unreachable!() };
    for (vault, value) in [(doomed, "doomed v1"), (doomed, "doomed v2"), (kept, "kept v1")] {
        let path = format!("/v1/vaults/{vault}/secrets/db/password");
        let (status, body) = api
            .call("PUT", &path, Some(&human), Some(serde_json::json!({"value": value})))
            .await;
        assert_eq!(status, reqwest::StatusCode::CREATED, "{body}");
    }
    let key_ids_of = |vault: VaultId, rows: &[(String, Vec<u8>)]| -> Vec<String> {
        let vault = vault.to_string();
        rows.iter()
            .map(|(key_id, _)| key_id.clone())
            .filter(|key_id| key_id.contains(&vault))
            .collect()
    };
    assert_eq!(
        key_ids_of(doomed, &wrapped_keys(&db).await).len(),
        3,
        "a KEK and two DEKs"
    );

    let (status, body) = api
        .call("DELETE", &format!("/v1/vaults/{doomed}"), Some(&human), None)
        .await;
    assert_eq!(status, reqwest::StatusCode::NO_CONTENT, "{body}");

    let rows = wrapped_keys(&db).await;
    assert_eq!(key_ids_of(doomed, &rows), Vec::<String>::new());
    assert_eq!(
        key_ids_of(kept, &rows),
        [dek_id(kept, "db/password", 1), format!("kek:{kept}")]
    );
    // The log keeps every ciphertext; only the kept vault's still opens.
    let envelope = envelope(&db, MasterKey::parse(&master_hex).unwrap()).await;
    let store = store::open(&db.url()).await.unwrap();
    let mut opened = Vec::new();
    for recorded in store.read_all(0, 10_000).await.unwrap() {
        let Some(Ok(domain::events::Event::SecretWritten(written))) = domain::events::Event::decode(&recorded) else {
            continue;
        };
        let sealed: SealedValue = serde_json::from_value(serde_json::to_value(&written.sealed).unwrap()).unwrap();
        let (vault, path, version) = (written.vault_id, written.path.as_str(), written.version);
        let result = envelope.open(vault, path, version, &sealed).await;
        if vault == doomed {
            assert_destroyed(result, &dek_id(vault, path, version));
        } else {
            opened.push(String::from_utf8(result.unwrap().to_vec()).unwrap());
        }
    }
    assert_eq!(opened, ["kept v1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_vault_over_http_shreds_its_keys_on_sqlite() {
    deleting_a_vault_over_http_shreds_its_keys(TestDb::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_vault_over_http_shreds_its_keys_on_postgres() {
    deleting_a_vault_over_http_shreds_its_keys(TestDb::postgres().await).await;
}
