//! Read-model snapshots (docs/cost.md): start-up loads the newest usable snapshot and folds
//! the log's tail onto it, and the models are the same as a fold of the whole log; a
//! snapshot that is damaged, of another log or of another build is ignored, with the
//! reason logged; a kill -9 mid-write leaves a service that starts correct;
//! `keyward verify --snapshots` names a difference between a snapshot and the log.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Api, Server, TestDb, run_keyward};
use keyward::store::{self, snapshot};
use projections::ReadModels;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Tokens name the public URL as their issuer: fixed, so they outlive a restart on
/// another port.
const PUBLIC_URL: (&str, &str) = ("KEYWARD_PUBLIC_URL", "http://keyward.test");

/// Settings that keep the background writer quiet: snapshots only at a clean shutdown.
const AT_SHUTDOWN_ONLY: [(&str, &str); 3] = [
    ("KEYWARD_SNAPSHOT_EVERY_EVENTS", "0"),
    ("KEYWARD_SNAPSHOT_INTERVAL_SECONDS", "0"),
    PUBLIC_URL,
];

/// A history touching every read model: a verified human, a vault, secrets with several
/// versions, a policy, an agent that reads and is refused, a share, a deleted secret, an
/// enrollment and its mail. Returns the human's token and the vault id.
async fn history(api: &Api, email: &str) -> (String, String) {
    let human = api.signup_verified(email, "correct horse battery").await;
    let (_, vault) = api
        .call("POST", "/v1/vaults", Some(&human), Some(json!({"name": "prod"})))
        .await;
    let vault = vault["id"].as_str().unwrap().to_owned();
    for (path, value) in [
        ("reports/q3", "one"),
        ("reports/q3", "two"),
        ("db/password", "hunter2"),
        ("old/key", "x"),
    ] {
        let (status, body) = api
            .call(
                "PUT",
                &format!("/v1/vaults/{vault}/secrets/{path}"),
                Some(&human),
                Some(json!({ "value": value })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (_, agent) = api
        .call("POST", "/v1/agents", Some(&human), Some(json!({"name": "analyst"})))
        .await;
    let agent_id = agent["agent"]["id"].as_str().unwrap();
    let (status, _) = api
        .call(
            "POST",
            &format!("/v1/vaults/{vault}/policies"),
            Some(&human),
            Some(json!({
                "secret_path_pattern": "reports/*",
                "principal_type": "agent",
                "principal_id": agent_id,
                "permissions": ["read", "write"],
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let agent = api.agent_token(agent["api_key"].as_str().unwrap()).await;
    for path in ["reports/q3", "reports/q3", "db/password"] {
        api.call("GET", &format!("/v1/vaults/{vault}/secrets/{path}"), Some(&agent), None)
            .await;
    }
    let (_, secret) = api
        .call(
            "GET",
            &format!("/v1/vaults/{vault}/secrets/reports/q3"),
            Some(&agent),
            None,
        )
        .await;
    let (status, share) = api
        .call(
            "POST",
            &format!("/v1/secrets/{}/share", secret["id"].as_str().unwrap()),
            Some(&agent),
            Some(json!({"recipient_type": "creator", "max_access_count": 2,
                        "expires_at": (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339()})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{share}");
    let (status, _) = api
        .call(
            "DELETE",
            &format!("/v1/vaults/{vault}/secrets/old/key"),
            Some(&human),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, enrolled) = api
        .call(
            "POST",
            "/v1/agents/enroll",
            None,
            Some(json!({"name": "bot", "human_email": email})),
        )
        .await;
    assert!(status.is_success(), "{enrolled}");
    (human, vault)
}

/// What a client sees of the state: the vault's secrets and the human's agents.
async fn observed(api: &Api, human: &str, vault: &str) -> Value {
    let (status, secrets) = api
        .call("GET", &format!("/v1/vaults/{vault}/secrets"), Some(human), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{secrets}");
    let (_, agents) = api.call("GET", "/v1/agents", Some(human), None).await;
    let (_, value) = api
        .call(
            "GET",
            &format!("/v1/vaults/{vault}/secrets/reports/q3"),
            Some(human),
            None,
        )
        .await;
    json!({ "secrets": secrets["secrets"], "agents": agents["agents"], "q3": value["value"] })
}

fn snapshot_dir(db: &TestDb) -> PathBuf {
    PathBuf::from(format!("{}.snapshots", db.sqlite_path().unwrap().display()))
}

/// The snapshot files of a SQLite log, newest first.
fn snapshot_files(db: &TestDb) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(snapshot_dir(db))
        .map(|entries| entries.map(|entry| entry.unwrap().path()).collect())
        .unwrap_or_default();
    files.retain(|path| path.extension().is_some_and(|ext| ext == "snapshot"));
    files.sort();
    files.reverse();
    files
}

/// Stops a server as an operator does (SIGTERM), so that it writes its shutdown snapshot.
fn stop(api: Api) {
    api.server.stop();
}

/// Every event of the log, oldest first.
async fn whole_log(db: &TestDb) -> Vec<domain::RecordedEvent> {
    let log = store::open(&db.url()).await.unwrap();
    log.read_all(0, usize::MAX >> 1).await.unwrap()
}

fn fold(events: &[domain::RecordedEvent]) -> ReadModels {
    let mut models = ReadModels::default();
    for event in events {
        models.apply(event);
    }
    models
}

#[tokio::test]
async fn a_snapshot_at_any_position_plus_its_tail_folds_to_the_whole_log() {
    let db = TestDb::sqlite();
    let api = Api::start_with(&db, &AT_SHUTDOWN_ONLY).await;
    history(&api, "ada@example.com").await;
    history(&api, "bob@example.com").await;
    stop(api);
    let events = whole_log(&db).await;
    let whole = fold(&events);
    assert!(events.len() > 40, "a broad history: {} events", events.len());
    for cut in 1..events.len() {
        let head = fold(&events[..cut]);
        let bytes = snapshot::encode(&head, events[cut - 1].hash);
        let mut loaded = snapshot::decode(&bytes).unwrap().models;
        assert_eq!(loaded, head, "a snapshot at {cut} decodes to the models it encoded");
        for event in &events[cut..] {
            loaded.apply(event);
        }
        assert!(
            loaded == whole,
            "snapshot at {cut} plus its tail differs: {:?}",
            snapshot::differences(&whole, &loaded, 5)
        );
    }
}

#[tokio::test]
async fn a_restart_loads_the_shutdown_snapshot_and_folds_only_the_tail() {
    let db = TestDb::sqlite();
    let mut log = tempfile::NamedTempFile::new().unwrap();
    let api = Api::start_with(&db, &AT_SHUTDOWN_ONLY).await;
    let (human, vault) = history(&api, "ada@example.com").await;
    let data_dir = api.data_dir.clone();
    stop(api);
    let snapshotted = snapshot_files(&db);
    assert_eq!(snapshotted.len(), 1, "a clean shutdown writes one snapshot");
    // At the head, but for what the mailer records as it stops: the outcomes of mails.
    let name = snapshotted[0].file_stem().unwrap().to_str().unwrap();
    let head: u64 = name.parse().unwrap();
    let after: Vec<String> = whole_log(&db)
        .await
        .into_iter()
        .filter(|event| event.position > head)
        .map(|event| event.event_type)
        .collect();
    assert!(
        after.iter().all(|kind| kind == "mail.sent" || kind == "mail.failed"),
        "the snapshot at {head} leaves out {after:?}"
    );

    // Written after the snapshot, then killed: nothing snapshots these.
    let api = restart(&db, &data_dir, &log).await;
    let (status, _) = api
        .call(
            "PUT",
            &format!("/v1/vaults/{vault}/secrets/reports/q4"),
            Some(&human),
            Some(json!({"value": "after the snapshot"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let expected = observed(&api, &human, &vault).await;
    api.server.kill();

    let api = restart(&db, &data_dir, &log).await;
    assert_eq!(observed(&api, &human, &vault).await, expected);
    let logged = read_log(&mut log);
    assert!(
        logged.contains(&format!("snapshot={head}")),
        "start-up loaded the snapshot: {logged}"
    );
}

async fn restart(db: &TestDb, data_dir: &Path, log: &tempfile::NamedTempFile) -> Api {
    let env = [
        ("KEYWARD_DATABASE_URL", db.url()),
        ("KEYWARD_DATA_DIR", data_dir.to_str().unwrap().to_owned()),
        ("KEYWARD_LOG", "info".to_owned()),
        (PUBLIC_URL.0, PUBLIC_URL.1.to_owned()),
        ("KEYWARD_SNAPSHOT_EVERY_EVENTS", "0".to_owned()),
        ("KEYWARD_SNAPSHOT_INTERVAL_SECONDS", "0".to_owned()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let stderr = std::fs::OpenOptions::new().append(true).open(log.path()).unwrap();
    Api::new(Server::start_with_stderr(&env, stderr).await, data_dir.to_owned())
}

fn read_log(log: &mut tempfile::NamedTempFile) -> String {
    std::fs::read_to_string(log.path()).unwrap()
}

/// One way to spoil a snapshot file, and the reason start-up must give for ignoring it.
fn spoil(file: &Path, how: &str, foreign: &Path) -> &'static str {
    if how == "foreign chain" {
        std::fs::copy(foreign, file).unwrap();
        return "is not the one it names";
    }
    let mut bytes = std::fs::read(file).unwrap();
    match how {
        "corrupted" => {
            let last = bytes.len() - 1;
            bytes[last] ^= 0x01;
            std::fs::write(file, bytes).unwrap();
            "do not match their checksum"
        }
        "truncated" => {
            bytes.truncate(bytes.len() / 2);
            std::fs::write(file, bytes).unwrap();
            "truncated"
        }
        "garbage" => {
            std::fs::write(file, b"not a snapshot at all").unwrap();
            "not a keyward snapshot"
        }
        "old schema" => {
            // The build fingerprint follows the 16-byte magic.
            bytes[16] ^= 0xff;
            std::fs::write(file, bytes).unwrap();
            "another build of the read models wrote it"
        }
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn a_spoiled_snapshot_is_ignored_with_its_reason_and_the_log_is_folded() {
    // Another service's snapshot, at a position this log also has.
    let other = TestDb::sqlite();
    let api = Api::start_with(&other, &AT_SHUTDOWN_ONLY).await;
    history(&api, "mallory@example.com").await;
    history(&api, "eve@example.com").await;
    stop(api);
    let foreign = snapshot_files(&other).remove(0);

    for how in ["corrupted", "truncated", "garbage", "old schema", "foreign chain"] {
        let db = TestDb::sqlite();
        let mut log = tempfile::NamedTempFile::new().unwrap();
        let api = Api::start_with(&db, &AT_SHUTDOWN_ONLY).await;
        let (human, vault) = history(&api, "ada@example.com").await;
        // Enough events that the foreign snapshot's position is inside this log.
        history(&api, "bob@example.com").await;
        history(&api, "cy@example.com").await;
        let expected = observed(&api, &human, &vault).await;
        let data_dir = api.data_dir.clone();
        stop(api);
        let file = snapshot_files(&db).remove(0);
        let foreign_at = snapshot_dir(&db).join(foreign.file_name().unwrap());
        let (target, reason) = if how == "foreign chain" {
            std::fs::remove_file(&file).unwrap();
            (foreign_at.clone(), spoil(&foreign_at, how, &foreign))
        } else {
            (file.clone(), spoil(&file, how, &foreign))
        };
        assert!(target.exists());

        let api = restart(&db, &data_dir, &log).await;
        assert_eq!(observed(&api, &human, &vault).await, expected, "{how}");
        let logged = read_log(&mut log);
        assert!(
            logged.contains("ignoring a read-model snapshot") && logged.contains(reason),
            "{how}: {logged}"
        );
        assert!(
            logged.contains("snapshot=0"),
            "{how}: the whole log was folded: {logged}"
        );
        stop(api);
    }
}

#[tokio::test]
async fn kill_9_while_snapshots_are_written_leaves_a_service_that_starts_correct() {
    let db = TestDb::sqlite();
    let log = tempfile::NamedTempFile::new().unwrap();
    // A snapshot after every event: the writer is busy whenever the kill lands.
    let api = Api::start_with(
        &db,
        &[
            ("KEYWARD_SNAPSHOT_EVERY_EVENTS", "1"),
            ("KEYWARD_SNAPSHOT_INTERVAL_SECONDS", "0"),
            PUBLIC_URL,
        ],
    )
    .await;
    let (human, vault) = history(&api, "ada@example.com").await;
    let data_dir = api.data_dir.clone();
    let env = [
        ("KEYWARD_DATABASE_URL", db.url()),
        ("KEYWARD_DATA_DIR", data_dir.to_str().unwrap().to_owned()),
        ("KEYWARD_SNAPSHOT_EVERY_EVENTS", "1".to_owned()),
        ("KEYWARD_SNAPSHOT_INTERVAL_SECONDS", "0".to_owned()),
        (PUBLIC_URL.0, PUBLIC_URL.1.to_owned()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut api = api;
    for round in 0..4 {
        for n in 0..15 {
            let (status, _) = api
                .call(
                    "PUT",
                    &format!("/v1/vaults/{vault}/secrets/reports/r{round}-{n}"),
                    Some(&human),
                    Some(json!({"value": "v"})),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED);
        }
        // Mid-write, most likely: the last PUT's snapshot is being encoded or written.
        tokio::time::sleep(Duration::from_millis(3 * round)).await;
        api.server.kill();
        let stderr = std::fs::OpenOptions::new().append(true).open(log.path()).unwrap();
        api = Api::new(Server::start_with_stderr(&env, stderr).await, data_dir.clone());
        let expected_count = 2 + 15 * (round as usize + 1);
        let (_, listed) = api
            .call("GET", &format!("/v1/vaults/{vault}/secrets"), Some(&human), None)
            .await;
        assert_eq!(
            listed["secrets"].as_array().unwrap().len(),
            expected_count,
            "round {round}"
        );
    }
    stop(api);
    let leftovers: Vec<_> = std::fs::read_dir(snapshot_dir(&db))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| !name.ends_with(".snapshot"))
        .collect();
    assert!(leftovers.is_empty(), "partial files are cleaned up: {leftovers:?}");
    assert!(snapshot_files(&db).len() <= snapshot::KEEP);
    let (code, out, err) = run_keyward(&["verify", "--snapshots"], &[("KEYWARD_DATABASE_URL", &db.url())]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("matches a fold of the log"), "{out}");
}

#[tokio::test]
async fn verify_snapshots_names_where_a_snapshot_differs_from_the_log() {
    let db = TestDb::sqlite();
    let api = Api::start_with(&db, &AT_SHUTDOWN_ONLY).await;
    history(&api, "ada@example.com").await;
    stop(api);
    let (code, out, err) = run_keyward(&["verify", "--snapshots"], &[("KEYWARD_DATABASE_URL", &db.url())]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("matches a fold of the log"), "{out}");

    // A projection bug, as a snapshot would carry it: one model folded an event the
    // others did not see. The snapshot is otherwise valid, checksum and chain hash.
    let file = snapshot_files(&db).remove(0);
    let loaded = snapshot::decode(&std::fs::read(&file).unwrap()).unwrap();
    let events = whole_log(&db).await;
    let mut models = loaded.models;
    let stray = events.iter().find(|event| event.event_type == "vault.created").unwrap();
    let mut changed = stray.clone();
    changed.payload = changed.payload.replace("\"prod\"", "\"ghost\"");
    let decoded = domain::events::Event::decode(&changed).unwrap().unwrap();
    projections::DomainModel::apply(&mut models.directory, &changed, &decoded);
    std::fs::write(&file, snapshot::encode(&models, loaded.chain_hash)).unwrap();

    let (code, out, _) = run_keyward(&["verify", "--snapshots"], &[("KEYWARD_DATABASE_URL", &db.url())]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("differs from a fold of the log"), "{out}");
    assert!(
        out.contains("directory.vaults[")
            && out.contains(".name: \"prod\" in the fold of the log, \"ghost\" in the snapshot"),
        "{out}"
    );
}

#[tokio::test]
async fn replicas_on_postgres_start_from_a_snapshot_they_verify_against_the_shared_log() {
    let db = TestDb::postgres().await;
    let service = common::Service::new(&db, &AT_SHUTDOWN_ONLY);
    let first = service.start().await;
    let (human, vault) = history(&first, "ada@example.com").await;
    stop(first);
    let rows = db.execute_sql("SELECT position FROM read_model_snapshots").await;
    assert_eq!(rows, 1, "the shutdown snapshot is in the log's database");

    let replica = service.start().await;
    let other = service.start().await;
    let (status, _) = other
        .call(
            "PUT",
            &format!("/v1/vaults/{vault}/secrets/reports/q4"),
            Some(&human),
            Some(json!({"value": "through the other replica"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        observed(&replica, &human, &vault).await,
        observed(&other, &human, &vault).await
    );
    stop(replica);
    stop(other);
    let (code, out, err) = run_keyward(&["verify", "--snapshots"], &[("KEYWARD_DATABASE_URL", &db.url())]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("matches a fold of the log"), "{out}");
}

/// A week of two agents' transactions, one every half hour, each broadcast or failed but
/// one left unsettled for good, as the log records them.
fn a_week_of_transactions() -> Vec<domain::RecordedEvent> {
    use domain::events::{Event, TransactionBroadcast, TransactionFailed, TransactionSigned};
    use domain::transaction::transaction_stream;
    let start = chrono::DateTime::parse_from_rfc3339("2026-11-22T00:00:00Z")
        .unwrap()
        .to_utc();
    let mut events = Vec::new();
    let mut append = |at: chrono::DateTime<chrono::Utc>, stream: domain::StreamId, event: Event| {
        let new = event.to_new_event(&domain::Metadata::system(at)).unwrap();
        events.push(domain::RecordedEvent {
            position: events.len() as u64 + 1,
            event_id: new.event_id,
            stream_id: stream,
            stream_version: 1,
            event_type: new.event_type,
            schema_version: new.schema_version,
            payload: new.payload,
            metadata: new.metadata,
            recorded_at: at,
            prev_hash: domain::ChainHash::GENESIS,
            hash: domain::ChainHash::GENESIS,
        });
    };
    for n in 0..7 * 48u64 {
        let at = start + chrono::Duration::minutes(30 * n as i64);
        let agent_id = domain::AgentId(uuid::Uuid::from_u128(1 + u128::from(n % 2)));
        let tx_id = uuid::Uuid::from_u128(1000 + u128::from(n));
        let signed = TransactionSigned {
            tx_id,
            agent_id,
            chain: "anvil".into(),
            chain_id: 31337,
            from: "0xaa".into(),
            to: "0xdef".into(),
            value_wei: domain::wei::Wei::from_wei(u128::from(n)),
            max_fee_wei: domain::wei::Wei::from_wei(21_000),
            nonce: n,
            tx_hash: String::new(),
            signed_tx: String::new(),
            signing_key_path: "keys/anvil-signer".into(),
            idempotency_key: Some(format!("k{}", n % 5)),
            request_digest: None,
            sign_only: false,
        };
        append(
            at,
            domain::agent::agent_stream(agent_id),
            Event::TransactionSigned(signed),
        );
        let outcome = match n % 7 {
            _ if n == 3 => continue,
            0 => Event::TransactionFailed(TransactionFailed {
                tx_id,
                agent_id,
                error: "refused".into(),
            }),
            _ => Event::TransactionBroadcast(TransactionBroadcast { tx_id, agent_id }),
        };
        append(at, transaction_stream(tx_id), outcome);
    }
    events
}

#[test]
fn a_snapshot_anywhere_in_a_week_of_transactions_plus_its_tail_forgets_as_the_whole_log() {
    let events = a_week_of_transactions();
    let whole = fold(&events);
    let agent = domain::AgentId(uuid::Uuid::from_u128(1));
    let kept = whole.transactions.history(agent).records().len();
    assert!(kept < 60, "a window's worth kept of a week's 168: {kept}");
    assert_eq!(whole.transactions.unsettled().count(), 1, "the unsettled one, days old");
    for cut in 1..events.len() {
        let head = fold(&events[..cut]);
        let bytes = snapshot::encode(&head, events[cut - 1].hash);
        let mut loaded = snapshot::decode(&bytes).unwrap().models;
        assert_eq!(loaded, head, "a snapshot at {cut} decodes to the models it encoded");
        for event in &events[cut..] {
            loaded.apply(event);
        }
        assert!(
            loaded == whole,
            "snapshot at {cut} plus its tail differs: {:?}",
            snapshot::differences(&whole, &loaded, 5)
        );
    }
}
