//! `keyward verify` over a real database: an intact log passes; changing, deleting or
//! reordering any stored event with plain SQL fails, naming the event where it broke.

mod common;

use common::{TestDb, run_keyward};
use uuid::Uuid;

const EVENTS: &str = "60";

/// Seeds the test database through the binary and returns the stored event ids by position.
async fn seeded(db: &TestDb) -> Vec<Uuid> {
    let (code, _, stderr) = run_keyward(&["bench", "seed", "--database-url", &db.url(), "--events", EVENTS], &[]);
    assert_eq!(code, 0, "seed failed: {stderr}");
    let store = keyward::store::open(&db.url()).await.unwrap();
    store
        .read_all(0, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event_id)
        .collect()
}

fn verify(db: &TestDb) -> (i32, String) {
    let (code, stdout, stderr) = run_keyward(&["verify"], &[("KEYWARD_DATABASE_URL", &db.url())]);
    assert!(!stderr.contains("panicked"), "{stderr}");
    (code, stdout)
}

async fn intact_log_verifies(db: TestDb) {
    seeded(&db).await;
    let (code, stdout) = verify(&db);
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.starts_with(&format!("chain intact: {EVENTS} events verified")),
        "{stdout}"
    );
}

async fn one_changed_payload_byte_is_named(db: TestDb) {
    let ids = seeded(&db).await;
    let changed = db
        .tamper_with_payload(17, |payload| payload.replace("\"type\":", "\"typf\":"))
        .await;
    assert_eq!(changed, 1);
    let (code, stdout) = verify(&db);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains(&format!(
            "event {} at position 17: its stored contents do not match its hash",
            ids[16]
        )),
        "{stdout}"
    );
    assert!(stdout.contains("16 events before the break verified"), "{stdout}");
}

async fn a_deleted_event_is_named_by_its_successor(db: TestDb) {
    let ids = seeded(&db).await;
    assert_eq!(db.execute_sql("DELETE FROM events WHERE position = 30").await, 1);
    let (code, stdout) = verify(&db);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains(&format!("event {} at position 31: expected position 30", ids[30])),
        "{stdout}"
    );
}

async fn deleting_the_last_event_is_detected(db: TestDb) {
    seeded(&db).await;
    assert_eq!(
        db.execute_sql(&format!("DELETE FROM events WHERE position = {EVENTS}"))
            .await,
        1
    );
    let (code, stdout) = verify(&db);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("the log ends at position 59 but its recorded head is position 60"),
        "{stdout}"
    );
}

async fn swapping_two_events_is_named_at_the_first(db: TestDb) {
    let ids = seeded(&db).await;
    db.execute_sql("UPDATE events SET position = -10 WHERE position = 10")
        .await;
    db.execute_sql("UPDATE events SET position = 10 WHERE position = 11")
        .await;
    db.execute_sql("UPDATE events SET position = 11 WHERE position = -10")
        .await;
    let (code, stdout) = verify(&db);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains(&format!("event {} at position 10", ids[10])),
        "{stdout}"
    );
}

/// SQLite packs payload and metadata (src/store/sqlite/packing.rs): bytes cut from a packed
/// event leave nothing to check a hash against, and verify names the event as unreadable.
#[tokio::test]
async fn a_damaged_packed_event_is_named_unreadable() {
    let db = TestDb::sqlite();
    seeded(&db).await;
    let changed = db
        .execute_sql("UPDATE events SET payload = substr(payload, 1, length(payload) - 4) WHERE position = 17")
        .await;
    assert_eq!(changed, 1);
    let (code, stdout) = verify(&db);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("event at position 17 is unreadable: its packed payload and metadata do not unpack"),
        "{stdout}"
    );
    assert!(stdout.contains("16 events before the break verified"), "{stdout}");
}

macro_rules! on_both_backends {
    ($($case:ident),*) => {
        mod sqlite {
            $(#[tokio::test] async fn $case() { super::$case(super::TestDb::sqlite()).await; })*
        }
        mod postgres {
            $(#[tokio::test] async fn $case() { super::$case(super::TestDb::postgres().await).await; })*
        }
    };
}

on_both_backends!(
    intact_log_verifies,
    one_changed_payload_byte_is_named,
    a_deleted_event_is_named_by_its_successor,
    deleting_the_last_event_is_detected,
    swapping_two_events_is_named_at_the_first
);
