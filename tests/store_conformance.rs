//! One conformance suite for every `EventStore` backend: the same tests, unchanged, run
//! against SQLite and against Postgres.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use common::{TestDb, test_event};
use domain::{ChainVerifier, ExpectedVersion, StreamId};
use keyward::store::{self, AppendError, EventStore, StreamAppend};
use uuid::Uuid;

fn stream(name: &str) -> StreamId {
    StreamId::parse(name).unwrap()
}

async fn verify_chain(store: &dyn EventStore) -> u64 {
    let mut verifier = ChainVerifier::new();
    let mut after = 0;
    loop {
        let events = store.read_all(after, 500).await.unwrap();
        let Some(last) = events.last() else { break };
        after = last.position;
        for event in &events {
            verifier.check(event).unwrap();
        }
    }
    verifier.finish(store.head().await.unwrap().position).unwrap()
}

async fn appends_are_read_back_per_stream_and_globally(store: Arc<dyn EventStore>) {
    let a = stream("account-a");
    let b = stream("account-b");
    let first = store
        .append(&a, ExpectedVersion::NoStream, vec![test_event(1), test_event(2)])
        .await
        .unwrap();
    let second = store
        .append(&b, ExpectedVersion::NoStream, vec![test_event(3)])
        .await
        .unwrap();
    let third = store
        .append(&a, ExpectedVersion::Exact(2), vec![test_event(4)])
        .await
        .unwrap();
    assert_eq!((first.stream_version(), first.position), (2, 2));
    assert_eq!((second.stream_version(), second.position), (1, 3));
    assert_eq!((third.stream_version(), third.position), (3, 4));

    let of_a = store.read_stream(&a, 0, 100).await.unwrap();
    assert_eq!(of_a.iter().map(|e| e.stream_version).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_eq!(
        of_a.iter().map(|e| e.payload.as_str()).collect::<Vec<_>>(),
        vec![r#"{"n":1}"#, r#"{"n":2}"#, r#"{"n":4}"#]
    );
    assert_eq!(store.read_stream(&a, 2, 100).await.unwrap().len(), 1);
    let all = store.read_all(0, 100).await.unwrap();
    assert_eq!(all.iter().map(|e| e.position).collect::<Vec<_>>(), vec![1, 2, 3, 4]);
    assert_eq!(all[2].stream_id, b);
    assert_eq!(store.read_all(3, 100).await.unwrap().len(), 1);
    assert_eq!(store.read_all(0, 2).await.unwrap().len(), 2);
    assert_eq!(store.head().await.unwrap().position, 4);
    assert_eq!(verify_chain(&*store).await, 4);
}

async fn a_wrong_expected_version_is_a_typed_conflict_that_writes_nothing(store: Arc<dyn EventStore>) {
    let a = stream("account-a");
    store
        .append(&a, ExpectedVersion::NoStream, vec![test_event(1)])
        .await
        .unwrap();
    for expected in [
        ExpectedVersion::NoStream,
        ExpectedVersion::Exact(0),
        ExpectedVersion::Exact(2),
    ] {
        match store.append(&a, expected, vec![test_event(2)]).await {
            Err(AppendError::WrongExpectedVersion { stream, actual, .. }) => {
                assert_eq!((stream, actual), (a.clone(), 1));
            }
            other => panic!("expected a conflict for {expected:?}, got {other:?}"),
        }
    }
    assert_eq!(store.read_all(0, 100).await.unwrap().len(), 1);
    assert_eq!(store.head().await.unwrap().position, 1);
}

/// An append over several streams is one unit: a conflict on any stream writes nothing.
async fn an_atomic_append_writes_every_stream_or_none(store: Arc<dyn EventStore>) {
    let part = |name: &str, expected, n| StreamAppend {
        stream: stream(name),
        expected,
        events: vec![test_event(n)],
    };
    let signup = vec![
        part("email-a", ExpectedVersion::NoStream, 1),
        part("user-1", ExpectedVersion::NoStream, 2),
    ];
    let appended = store.append_atomic(signup).await.unwrap();
    assert_eq!((appended.stream_versions, appended.position), (vec![1, 1], 2));

    let same_email = vec![
        part("user-2", ExpectedVersion::NoStream, 3),
        part("email-a", ExpectedVersion::NoStream, 4),
    ];
    match store.append_atomic(same_email).await {
        Err(AppendError::WrongExpectedVersion { stream, actual: 1, .. }) => assert_eq!(stream.as_str(), "email-a"),
        other => panic!("expected a conflict on email-a, got {other:?}"),
    }
    assert!(store.read_stream(&stream("user-2"), 0, 10).await.unwrap().is_empty());
    assert_eq!(store.head().await.unwrap().position, 2);
    assert_eq!(verify_chain(&*store).await, 2);
}

/// 16 writers each append 20 events to one stream, always expecting the version they last
/// saw: every version has exactly one winner and no event is lost or written twice.
async fn sixteen_writers_racing_on_one_stream_get_one_winner_per_version(store: Arc<dyn EventStore>) {
    const WRITERS: u64 = 16;
    const PER_WRITER: u64 = 20;
    let contended = stream("account-contended");
    let tasks: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let store = store.clone();
            let contended = contended.clone();
            tokio::spawn(async move {
                let mut won = Vec::new();
                let mut conflicts = 0;
                let mut seen = 0;
                while (won.len() as u64) < PER_WRITER {
                    let new = test_event(writer * 1000 + won.len() as u64);
                    let id = new.event_id;
                    match store.append(&contended, ExpectedVersion::Exact(seen), vec![new]).await {
                        Ok(appended) => {
                            assert_eq!(appended.stream_version(), seen + 1);
                            won.push((appended.stream_version(), id));
                            seen = appended.stream_version();
                        }
                        Err(AppendError::WrongExpectedVersion { actual, .. }) => {
                            conflicts += 1;
                            seen = actual;
                        }
                        Err(other) => panic!("append failed: {other}"),
                    }
                }
                (won, conflicts)
            })
        })
        .collect();

    let mut winners = BTreeMap::new();
    let mut conflicts = 0;
    for task in tasks {
        let (won, lost) = task.await.unwrap();
        conflicts += lost;
        for (version, id) in won {
            assert!(winners.insert(version, id).is_none(), "version {version} won twice");
        }
    }
    let total = WRITERS * PER_WRITER;
    assert_eq!(
        winners.keys().copied().collect::<Vec<_>>(),
        (1..=total).collect::<Vec<_>>()
    );
    assert!(
        conflicts > 0,
        "16 writers on one stream never conflicted: the race did not happen"
    );

    let stored = store.read_stream(&contended, 0, 10_000).await.unwrap();
    assert_eq!(stored.len() as u64, total);
    for event in &stored {
        assert_eq!(winners[&event.stream_version], event.event_id);
    }
    assert_eq!(verify_chain(&*store).await, total);
}

/// Concurrent appends to many streams: reading the log back gives every event at the
/// position its append reported, in the order of the commits.
async fn read_all_returns_events_in_commit_order(store: Arc<dyn EventStore>) {
    let tasks: Vec<_> = (0..8u64)
        .map(|writer| {
            let store = store.clone();
            tokio::spawn(async move {
                let stream = stream(&format!("account-{writer}"));
                let mut acknowledged = Vec::new();
                for n in 0..25 {
                    let batch: Vec<_> = (0..=n % 3).map(|i| test_event(writer * 100 + n * 3 + i)).collect();
                    let ids: Vec<Uuid> = batch.iter().map(|e| e.event_id).collect();
                    let appended = store.append(&stream, ExpectedVersion::Any, batch).await.unwrap();
                    let first = appended.position + 1 - ids.len() as u64;
                    acknowledged.extend(ids.into_iter().zip(first..));
                }
                acknowledged
            })
        })
        .collect();
    let mut expected = BTreeMap::new();
    for task in tasks {
        for (id, position) in task.await.unwrap() {
            assert!(
                expected.insert(position, id).is_none(),
                "position {position} acknowledged twice"
            );
        }
    }
    let all = store.read_all(0, 10_000).await.unwrap();
    assert_eq!(all.len(), expected.len());
    for (event, (position, id)) in all.iter().zip(&expected) {
        assert_eq!((event.position, event.event_id), (*position, *id));
    }
    assert!(
        all.windows(2).all(|w| w[0].recorded_at <= w[1].recorded_at),
        "recorded_at went backwards"
    );
    assert_eq!(verify_chain(&*store).await, all.len() as u64);

    // Read by position: the same events, in commit order whatever the order asked; a
    // position with no event is left out.
    let asked = [
        all[40].position,
        all[3].position,
        all.len() as u64 + 5,
        all[77].position,
    ];
    let read = store.read_positions(&asked).await.unwrap();
    assert_eq!(read, [all[3].clone(), all[40].clone(), all[77].clone()]);
    let in_order = keyward::store::read_in_order(&*store, &asked).await.unwrap();
    assert_eq!(in_order, [all[40].clone(), all[3].clone(), all[77].clone()]);
    assert!(store.read_positions(&[]).await.unwrap().is_empty());
}

/// A tail started before a burst of concurrent appends sees every event exactly once.
async fn a_tail_sees_every_event_exactly_once(store: Arc<dyn EventStore>) {
    let head_before = store
        .append(&stream("account-early"), ExpectedVersion::Any, vec![test_event(0)])
        .await
        .unwrap();
    let mut tail = store::subscribe(store.clone(), 0);
    let writers: Vec<_> = (0..8u64)
        .map(|writer| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for n in 0..30 {
                    let new = test_event(writer * 100 + n);
                    ids.push(new.event_id);
                    store
                        .append(&stream(&format!("account-{writer}")), ExpectedVersion::Any, vec![new])
                        .await
                        .unwrap();
                }
                ids
            })
        })
        .collect();
    let total = 1 + 8 * 30;
    let collector = tokio::spawn(async move {
        let mut seen = Vec::new();
        while seen.len() < total {
            seen.push(tail.next().await.unwrap());
        }
        // Nothing more arrives once the writers are done.
        let extra = tokio::time::timeout(std::time::Duration::from_millis(700), tail.next()).await;
        assert!(
            extra.is_err(),
            "the tail yielded an event beyond those appended: {extra:?}"
        );
        seen
    });
    let mut appended: HashSet<Uuid> = HashSet::new();
    for writer in writers {
        appended.extend(writer.await.unwrap());
    }
    let seen = tokio::time::timeout(std::time::Duration::from_secs(30), collector)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen[0].position, head_before.position);
    assert_eq!(
        seen.iter().map(|e| e.position).collect::<Vec<_>>(),
        (1..=total as u64).collect::<Vec<_>>()
    );
    let seen_ids: HashSet<Uuid> = seen[1..].iter().map(|e| e.event_id).collect();
    assert_eq!(seen_ids, appended);
}

/// Reopening a database continues its log and its chain where it ended.
async fn a_reopened_store_continues_the_log(url: String) {
    {
        let store = store::open(&url).await.unwrap();
        store
            .append(
                &stream("account-a"),
                ExpectedVersion::NoStream,
                vec![test_event(1), test_event(2)],
            )
            .await
            .unwrap();
    }
    let store = store::open(&url).await.unwrap();
    assert_eq!(store.head().await.unwrap().position, 2);
    let appended = store
        .append(&stream("account-a"), ExpectedVersion::Exact(2), vec![test_event(3)])
        .await
        .unwrap();
    assert_eq!((appended.stream_version(), appended.position), (3, 3));
    assert_eq!(verify_chain(&*store).await, 3);
}

macro_rules! conformance_suite {
    ($backend:ident, $database:expr) => {
        mod $backend {
            use super::*;

            async fn fresh() -> (TestDb, Arc<dyn EventStore>) {
                let db = $database;
                let store = store::open(&db.url()).await.unwrap();
                (db, store)
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn appends_are_read_back_per_stream_and_globally() {
                let (_db, store) = fresh().await;
                super::appends_are_read_back_per_stream_and_globally(store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn a_wrong_expected_version_is_a_typed_conflict_that_writes_nothing() {
                let (_db, store) = fresh().await;
                super::a_wrong_expected_version_is_a_typed_conflict_that_writes_nothing(store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn an_atomic_append_writes_every_stream_or_none() {
                let (_db, store) = fresh().await;
                super::an_atomic_append_writes_every_stream_or_none(store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sixteen_writers_racing_on_one_stream_get_one_winner_per_version() {
                let (_db, store) = fresh().await;
                super::sixteen_writers_racing_on_one_stream_get_one_winner_per_version(store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn read_all_returns_events_in_commit_order() {
                let (_db, store) = fresh().await;
                super::read_all_returns_events_in_commit_order(store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn a_tail_sees_every_event_exactly_once() {
                let (_db, store) = fresh().await;
                super::a_tail_sees_every_event_exactly_once(store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn a_reopened_store_continues_the_log() {
                let db = $database;
                super::a_reopened_store_continues_the_log(db.url()).await;
            }
        }
    };
}

conformance_suite!(sqlite, TestDb::sqlite());
conformance_suite!(postgres, TestDb::postgres().await);

/// Two stores on one Postgres database stand for two keyward processes: their appends
/// interleave into one valid chain, and a tail in one sees the other's commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_processes_sharing_a_database_write_one_chain_and_see_each_other() {
    let db = TestDb::postgres().await;
    let first = store::open(&db.url()).await.unwrap();
    let second = store::open(&db.url()).await.unwrap();
    let mut tail = store::subscribe(first.clone(), 0);

    let mut written = Vec::new();
    for n in 0..20u64 {
        let (writer, name) = if n % 2 == 0 {
            (&first, "account-first")
        } else {
            (&second, "account-second")
        };
        let new = test_event(n);
        written.push(new.event_id);
        writer
            .append(&stream(name), ExpectedVersion::Any, vec![new])
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    while seen.len() < written.len() {
        let next = tokio::time::timeout(std::time::Duration::from_secs(10), tail.next())
            .await
            .unwrap()
            .unwrap();
        seen.push(next.event_id);
    }
    assert_eq!(seen, written);
    assert_eq!(verify_chain(&*second).await, 20);
    let contended = stream("account-shared");
    first
        .append(&contended, ExpectedVersion::NoStream, vec![test_event(100)])
        .await
        .unwrap();
    assert!(matches!(
        second
            .append(&contended, ExpectedVersion::NoStream, vec![test_event(101)])
            .await,
        Err(AppendError::WrongExpectedVersion { actual: 1, .. })
    ));
}
