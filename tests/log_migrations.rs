//! A log written under an earlier release's schema opens under the current one with every
//! event, its stream and its chain intact: SQLite's migration 0004 copies the log into a
//! table that names streams by number (docs/cost.md, "Disk").

mod common;

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use common::TestDb;
use domain::authz::Principal;
use domain::chain::{ChainHash, HashedFields};
use domain::events::{Event, SecretRead};
use domain::{ActorType, AgentId, ExpectedVersion, Metadata, SecretId, SecretPath, StreamId, VaultId};
use keyward::verify::{self, Verdict};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, SqliteConnection};
use uuid::Uuid;

/// The last migration before streams were stored as numbers.
const BEFORE_STREAM_NUMBERS: i64 = 3;
const EVENTS: u64 = 60;

/// The streams the old log's events go to, in turn: long ones as secrets have, short ones.
fn stream_of(n: u64) -> StreamId {
    match n % 3 {
        0 => StreamId::for_aggregate("secret", format!("{:064x}", n % 2)).unwrap(),
        1 => StreamId::for_aggregate("agent", Uuid::from_u128(7)).unwrap(),
        _ => StreamId::for_aggregate("audit", n % 5).unwrap(),
    }
}

/// One stored row of the old layout, chained to `prev`.
struct OldRow {
    position: u64,
    event_id: Uuid,
    stream_id: StreamId,
    stream_version: u64,
    event_type: String,
    payload: String,
    metadata: String,
    recorded_at: DateTime<Utc>,
    prev_hash: ChainHash,
    hash: ChainHash,
}

fn old_rows() -> Vec<OldRow> {
    let mut rows: Vec<OldRow> = Vec::new();
    let mut versions = std::collections::HashMap::<StreamId, u64>::new();
    let start = DateTime::from_timestamp_micros(1_760_000_000_000_000).unwrap();
    for n in 1..=EVENTS {
        let agent = AgentId(Uuid::from_u128(7));
        let event: Event = SecretRead {
            secret_id: SecretId(Uuid::from_u128(u128::from(n % 4))),
            vault_id: VaultId(Uuid::from_u128(9)),
            path: SecretPath::parse(format!("app/secret-{n}")).unwrap(),
            version: 1,
            by: Principal::agent(agent),
        }
        .into();
        let recorded_at = start + chrono::Duration::milliseconds(n as i64);
        let metadata = Metadata {
            actor_type: ActorType::Agent,
            actor_id: Some(agent.to_string()),
            org_id: Some(Uuid::from_u128(3)),
            client_ip: None,
            request_id: None,
            timestamp: recorded_at,
        };
        let new = event.to_new_event(&metadata).unwrap();
        let stream_id = stream_of(n);
        let version = versions.entry(stream_id.clone()).or_default();
        *version += 1;
        let prev_hash = rows.last().map_or(ChainHash::GENESIS, |row| row.hash);
        let hash = HashedFields {
            prev_hash: &prev_hash,
            position: n,
            event_id: &new.event_id,
            stream_id: stream_id.as_str(),
            stream_version: *version,
            event_type: &new.event_type,
            schema_version: new.schema_version,
            payload: &new.payload,
            metadata: &new.metadata,
            recorded_at_micros: recorded_at.timestamp_micros(),
        }
        .hash();
        rows.push(OldRow {
            position: n,
            event_id: new.event_id,
            stream_id,
            stream_version: *version,
            event_type: new.event_type,
            payload: new.payload,
            metadata: new.metadata,
            recorded_at,
            prev_hash,
            hash,
        });
    }
    rows
}

/// Writes `rows` into a log file migrated only as far as the earlier release did.
async fn write_old_log(db: &TestDb, rows: &[OldRow]) {
    let options = SqliteConnectOptions::new()
        .filename(db.sqlite_path().unwrap())
        .create_if_missing(true);
    let mut connection = SqliteConnection::connect_with(&options).await.unwrap();
    let mut earlier = sqlx::migrate!("./migrations/sqlite");
    earlier.migrations = Cow::Owned(
        earlier
            .migrations
            .iter()
            .filter(|migration| migration.version <= BEFORE_STREAM_NUMBERS)
            .cloned()
            .collect(),
    );
    earlier.run(&mut connection).await.unwrap();
    for row in rows {
        sqlx::query(
            "INSERT INTO events (position, event_id, stream_id, stream_version, event_type, schema_version, \
             payload, metadata, recorded_at, prev_hash, hash) VALUES (?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?)",
        )
        .bind(row.position as i64)
        .bind(row.event_id.as_bytes().as_slice())
        .bind(row.stream_id.as_str())
        .bind(row.stream_version as i64)
        .bind(&row.event_type)
        .bind(&row.payload)
        .bind(&row.metadata)
        .bind(row.recorded_at.timestamp_micros())
        .bind(row.prev_hash.0.as_slice())
        .bind(row.hash.0.as_slice())
        .execute(&mut connection)
        .await
        .unwrap();
    }
    let last = rows.last().unwrap();
    sqlx::query("UPDATE log_head SET position = ?, hash = ?, recorded_at = ? WHERE id = 1")
        .bind(last.position as i64)
        .bind(last.hash.0.as_slice())
        .bind(last.recorded_at.timestamp_micros())
        .execute(&mut connection)
        .await
        .unwrap();
    connection.close().await.unwrap();
}

#[tokio::test]
async fn a_log_of_the_earlier_layout_keeps_every_event_stream_and_link_and_takes_appends() {
    let db = TestDb::sqlite();
    let rows = old_rows();
    write_old_log(&db, &rows).await;

    let store = keyward::store::open(&db.url()).await.unwrap();
    let events = store.read_all(0, 1000).await.unwrap();
    assert_eq!(events.len(), rows.len());
    for (event, row) in events.iter().zip(&rows) {
        assert_eq!(
            (
                event.position,
                event.event_id,
                &event.stream_id,
                event.stream_version,
                &event.payload,
                &event.metadata,
                event.recorded_at,
                event.prev_hash,
                event.hash,
            ),
            (
                row.position,
                row.event_id,
                &row.stream_id,
                row.stream_version,
                &row.payload,
                &row.metadata,
                row.recorded_at,
                row.prev_hash,
                row.hash,
            )
        );
    }
    assert_eq!(
        verify::verify(&*store, |_| {}).await.unwrap(),
        Verdict::Intact { events: EVENTS }
    );

    // A stream's events by version, and appends that expect its version, as before.
    let long = stream_of(3);
    let of_long: Vec<u64> = store
        .read_stream(&long, 0, 1000)
        .await
        .unwrap()
        .iter()
        .map(|event| event.position)
        .collect();
    let expected: Vec<u64> = rows
        .iter()
        .filter(|row| row.stream_id == long)
        .map(|row| row.position)
        .collect();
    assert_eq!(of_long, expected);
    // The same contents again, as new events: the store does not read them.
    let again = |n: usize| domain::NewEvent {
        event_id: Uuid::now_v7(),
        event_type: rows[n].event_type.clone(),
        schema_version: 1,
        payload: rows[n].payload.clone(),
        metadata: rows[n].metadata.clone(),
    };
    let stale = store
        .append(&long, ExpectedVersion::Exact(expected.len() as u64 - 1), vec![again(1)])
        .await;
    assert!(stale.is_err(), "a stale expected version is refused");
    store
        .append(&long, ExpectedVersion::Exact(expected.len() as u64), vec![again(2)])
        .await
        .unwrap();
    let fresh = StreamId::for_aggregate("secret", format!("{:064x}", 99)).unwrap();
    store
        .append(&fresh, ExpectedVersion::NoStream, vec![again(3)])
        .await
        .unwrap();
    assert_eq!(store.read_stream(&fresh, 0, 10).await.unwrap()[0].stream_version, 1);
    assert_eq!(
        store
            .read_stream(&long, 0, 1000)
            .await
            .unwrap()
            .last()
            .unwrap()
            .stream_version,
        expected.len() as u64 + 1
    );
    assert_eq!(
        verify::verify(&*store, |_| {}).await.unwrap(),
        Verdict::Intact { events: EVENTS + 2 }
    );
}
