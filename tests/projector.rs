//! The projector keeps read models current: a command handler that waits for its own
//! append's position reads its write, also when the write came from another replica.

mod common;

use std::time::Duration;

use common::{TestDb, test_event};
use domain::{ExpectedVersion, StreamId};
use keyward::projector::Projector;
use keyward::store;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_is_in_the_read_models_once_caught_up_to_its_position() {
    let db = TestDb::sqlite();
    let store = store::open(&db.url()).await.unwrap();
    let vault = StreamId::parse("vault-1").unwrap();
    store
        .append(&vault, ExpectedVersion::NoStream, vec![test_event(0)])
        .await
        .unwrap();

    let projector = Projector::start(store.clone()).await.unwrap();
    assert_eq!(projector.position(), 1, "start-up rebuilds from the log");

    let appended = store
        .append(&vault, ExpectedVersion::Exact(1), vec![test_event(0), test_event(0)])
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), projector.caught_up_to(appended.position))
        .await
        .unwrap();
    assert_eq!(
        projector.read(|models| models.streams.events_of_type("test.happened")),
        3
    );
    assert_eq!(projector.position(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_sees_writes_made_through_another_on_postgres() {
    let db = TestDb::postgres().await;
    let first = store::open(&db.url()).await.unwrap();
    let second = store::open(&db.url()).await.unwrap();
    let projector = Projector::start(first).await.unwrap();

    let appended = second
        .append(
            &StreamId::parse("agent-1").unwrap(),
            ExpectedVersion::NoStream,
            vec![test_event(0)],
        )
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), projector.caught_up_to(appended.position))
        .await
        .unwrap();
    assert_eq!(
        projector.read(|models| models.streams.events_of_type("test.happened")),
        1
    );
}
