//! The one retry loop of the application layer (`Commands::run`), in process: a decision
//! overtaken by another writer is prepared and decided again on the newer state, an
//! attempt whose preparation keeps being overtaken gives up saying by what, and a decision
//! with nothing to append writes nothing.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{TestDb, test_event};
use domain::{ExpectedVersion, StreamId};
use keyward::app::commands::{ATTEMPTS, Attempt, CommandError, Commands};
use keyward::projector::Projector;
use keyward::store::{self, EventStore, StreamAppend};

/// A stream whose version the read models keep (a sender's nonces are such a stream).
fn shared_stream() -> StreamId {
    StreamId::parse("sender-test").unwrap()
}

async fn runner(db: &TestDb) -> (Arc<dyn EventStore>, Arc<Projector>, Commands) {
    let store = store::open(&db.url()).await.unwrap();
    store
        .append(&shared_stream(), ExpectedVersion::NoStream, vec![test_event(0)])
        .await
        .unwrap();
    let projector = Projector::start(store.clone()).await.unwrap();
    let commands = Commands::new(store.clone(), projector.clone());
    (store, projector, commands)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_overtaken_by_another_writer_is_prepared_and_decided_again_on_the_newer_state() {
    let db = TestDb::sqlite();
    let (store, projector, commands) = runner(&db).await;
    let stream = shared_stream();
    let prepared = AtomicUsize::new(0);
    let (store_ref, projector_ref, stream_ref, prepared_ref) = (&store, &projector, &stream, &prepared);

    let (appended, seen) = commands
        .run::<_, _, CommandError, _>(
            || async move {
                let seen = projector_ref.read(|models| models.streams.version(stream_ref));
                if prepared_ref.fetch_add(1, Ordering::SeqCst) == 0 {
                    // Another writer appends between this attempt's reading and its append.
                    store_ref
                        .append(stream_ref, ExpectedVersion::Exact(seen), vec![test_event(0)])
                        .await
                        .unwrap();
                }
                Ok(seen)
            },
            |seen| {
                let part = StreamAppend {
                    stream: stream_ref.clone(),
                    expected: ExpectedVersion::Exact(seen),
                    events: vec![test_event(0)],
                };
                Ok(Attempt::Append(vec![part], seen))
            },
        )
        .await
        .unwrap();

    assert_eq!(prepared.load(Ordering::SeqCst), 2, "prepared again after the conflict");
    assert_eq!(seen, 2, "the second attempt read the other writer's event");
    assert_eq!(appended.stream_versions, [3]);
    assert_eq!(
        projector.read(|models| models.streams.version(&stream)),
        3,
        "read your write"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_whose_preparation_keeps_being_overtaken_gives_up_saying_by_what() {
    let db = TestDb::sqlite();
    let (store, _, commands) = runner(&db).await;
    let prepared = AtomicUsize::new(0);
    let prepared_ref = &prepared;

    let outcome = commands
        .run::<(), (), CommandError, _>(
            || async move {
                prepared_ref.fetch_add(1, Ordering::SeqCst);
                Ok(())
            },
            |()| Ok(Attempt::Stale("the test's stream kept moving")),
        )
        .await;

    assert!(
        matches!(
            outcome,
            Err(CommandError::KeptChanging("the test's stream kept moving"))
        ),
        "{outcome:?}"
    );
    assert_eq!(prepared.load(Ordering::SeqCst), ATTEMPTS, "bounded");
    assert_eq!(store.head().await.unwrap().position, 1, "nothing appended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_with_nothing_to_append_writes_nothing_and_answers() {
    let db = TestDb::sqlite();
    let (store, projector, commands) = runner(&db).await;

    let (appended, answer) = commands
        .run::<(), _, CommandError, _>(
            || std::future::ready(Ok(())),
            |()| Ok(Attempt::Append(Vec::new(), "refused, nothing to record")),
        )
        .await
        .unwrap();

    assert_eq!(answer, "refused, nothing to record");
    assert!(appended.stream_versions.is_empty());
    assert_eq!(appended.position, projector.position());
    assert_eq!(store.head().await.unwrap().position, 1);
}
