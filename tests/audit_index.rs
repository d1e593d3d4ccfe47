//! The audit trail from the store's index gives the answers the whole trail folded in
//! memory gives, for every filter, page and backend (docs/cost.md).

mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::TestDb;
use domain::authz::Principal;
use domain::events::{AgentAuthenticated, AuthMethod, AuthenticationFailed, Event, SecretRead, SecretReadDenied};
use domain::{ActorType, AgentId, ExpectedVersion, Metadata, OrgId, SecretId, SecretPath, StreamId, VaultId};
use keyward::store::EventStore;
use keyward::store::audit_index::AuditIndex;
use projections::DomainModel;
use projections::audit::{AuditQuery, AuditRecord, AuditTrail};
use uuid::Uuid;

const ORGS: usize = 3;
const AGENTS_PER_ORG: usize = 3;
const APPENDS: u64 = 60;
/// Enough for the history to span several of the index's blocks of counts (4096
/// positions), so that time windows start and end inside blocks and span others whole.
const EVENTS_PER_APPEND: u64 = 250;

/// The `n`th event an agent of an org causes: reads, refusals and sign-ins, over ten
/// secrets, and now and then a sign-in failure no org owns.
fn event(n: u64, agent: AgentId, vault: VaultId) -> (Event, bool) {
    let path = SecretPath::parse(format!("app/secret-{}", n % 10)).unwrap();
    let by = Principal::agent(agent);
    let event = match n % 5 {
        0 | 1 => SecretRead {
            secret_id: SecretId(Uuid::from_u128(u128::from(n % 10))),
            vault_id: vault,
            path,
            version: 1 + n % 3,
            by,
        }
        .into(),
        2 => SecretReadDenied {
            vault_id: vault,
            path,
            by,
            layer: "policy".into(),
            reason: "no policy".into(),
        }
        .into(),
        3 => AgentAuthenticated {
            agent_id: agent,
            key_id: Uuid::from_u128(u128::from(n)),
        }
        .into(),
        _ => AuthenticationFailed {
            principal: None,
            method: AuthMethod::ApiKey,
            reason: "unknown key".into(),
        }
        .into(),
    };
    (event, n % 5 == 4)
}

/// Appends a generated history; the orgs it spans.
async fn generate(store: &dyn EventStore) -> Vec<OrgId> {
    let orgs: Vec<(OrgId, VaultId, Vec<AgentId>)> = (0..ORGS)
        .map(|_| {
            (
                OrgId::new(),
                VaultId::new(),
                (0..AGENTS_PER_ORG).map(|_| AgentId::new()).collect(),
            )
        })
        .collect();
    for append in 0..APPENDS {
        let (org, vault, agents) = &orgs[append as usize % ORGS];
        let agent = agents[(append as usize / ORGS) % AGENTS_PER_ORG];
        let events = (0..EVENTS_PER_APPEND)
            .map(|i| {
                let (event, orgless) = event(append * EVENTS_PER_APPEND + i, agent, *vault);
                let metadata = Metadata {
                    actor_type: ActorType::Agent,
                    actor_id: Some(agent.to_string()),
                    org_id: (!orgless).then_some(org.0),
                    client_ip: Some(std::net::IpAddr::from([127, 0, 0, 1])),
                    request_id: None,
                    timestamp: Utc::now(),
                };
                event.to_new_event(&metadata).unwrap()
            })
            .collect();
        let stream = StreamId::for_aggregate("history", append % 4).unwrap();
        store.append(&stream, ExpectedVersion::Any, events).await.unwrap();
    }
    orgs.into_iter().map(|(org, ..)| org).collect()
}

/// Every filter the API takes, each with values the history holds (and one it does not).
fn filters(trail: &[&AuditRecord]) -> Vec<AuditQuery> {
    let mut filters = vec![AuditQuery::default()];
    let times: Vec<DateTime<Utc>> = trail.iter().map(|r| r.created_at).collect();
    for action in [
        "secret.read",
        "secret.read_denied",
        "auth.success",
        "auth.failure",
        "no.such",
    ] {
        filters.push(AuditQuery {
            action: Some(action.into()),
            ..Default::default()
        });
    }
    for record in trail.iter().step_by(11).take(4) {
        filters.push(AuditQuery {
            actor_id: record.actor_id.clone(),
            ..Default::default()
        });
        filters.push(AuditQuery {
            resource_id: Some(record.resource_id.clone()),
            action: Some(record.action.into()),
            ..Default::default()
        });
        filters.push(AuditQuery {
            resource_id: Some(record.resource_id.clone()),
            ..Default::default()
        });
        filters.push(AuditQuery {
            actor_id: record.actor_id.clone(),
            action: Some(record.action.into()),
            ..Default::default()
        });
    }
    let (early, late) = (times[times.len() / 4], times[3 * times.len() / 4]);
    filters.push(AuditQuery {
        from: Some(early),
        ..Default::default()
    });
    filters.push(AuditQuery {
        to: Some(late),
        ..Default::default()
    });
    filters.push(AuditQuery {
        from: Some(early),
        to: Some(late),
        action: Some("secret.read".into()),
        ..Default::default()
    });
    let someone = trail[trail.len() / 2];
    filters.push(AuditQuery {
        from: Some(early),
        to: Some(late),
        action: Some(someone.action.into()),
        actor_id: someone.actor_id.clone(),
        ..Default::default()
    });
    filters.push(AuditQuery {
        from: Some(early),
        resource_id: Some(someone.resource_id.clone()),
        actor_id: someone.actor_id.clone(),
        ..Default::default()
    });
    filters.push(AuditQuery {
        to: Some(late),
        action: Some(someone.action.into()),
        actor_id: someone.actor_id.clone(),
        resource_id: Some(someone.resource_id.clone()),
        ..Default::default()
    });
    // Windows at the history's edges and past them, empty or inverted; an actor and a
    // resource the index never named.
    let (first, last) = (times[0], times[times.len() - 1]);
    let micro = chrono::Duration::microseconds(1);
    for (from, to) in [
        (Some(first), Some(first)),
        (Some(last), None),
        (Some(last + micro), None),
        (None, Some(first - micro)),
        (Some(late), Some(early)),
    ] {
        filters.push(AuditQuery {
            from,
            to,
            ..Default::default()
        });
    }
    filters.push(AuditQuery {
        actor_id: Some("no-such-actor".into()),
        ..Default::default()
    });
    filters.push(AuditQuery {
        resource_id: Some("no-such-resource".into()),
        ..Default::default()
    });
    filters
}

async fn the_index_answers_as_the_whole_trail(db: TestDb) {
    let store = keyward::store::open(&db.url()).await.unwrap();
    let orgs = generate(&*store).await;
    // Two indexers on one database, as two replicas run them: each row, and each count,
    // is written once.
    let index = AuditIndex::open(&db.url()).await.unwrap();
    let replicas = AuditIndex::open(&db.url()).await.unwrap();
    index.start(store.clone());
    replicas.start(store.clone());
    let head = store.head().await.unwrap().position;
    assert_eq!(head, APPENDS * EVENTS_PER_APPEND);
    assert!(index.caught_up_to(head, Duration::from_secs(30)).await);
    assert!(replicas.caught_up_to(head, Duration::from_secs(30)).await);

    let mut trail = AuditTrail::default();
    for recorded in store.read_all(0, 100_000).await.unwrap() {
        trail.apply(&recorded, &Event::decode(&recorded).unwrap().unwrap());
    }
    let mut compared = 0;
    for org in orgs {
        let (everything, total) = trail.query(org, &AuditQuery::default(), 0, usize::MAX);
        assert!(total > 100, "{total}");
        for filter in filters(&everything) {
            for (offset, limit) in [
                (0, 1000),
                (0, 1),
                (3, 10),
                (total / 2, 20),
                (total - 5, 50),
                (total + 1, 10),
            ] {
                let (expected, expected_total) = trail.query(org, &filter, offset, limit);
                let (positions, indexed_total) = index.query(&*store, org, &filter, offset, limit).await.unwrap();
                let records = AuditIndex::records(&*store, &positions).await.unwrap();
                let expected: Vec<AuditRecord> = expected.into_iter().cloned().collect();
                assert_eq!(indexed_total, expected_total, "{filter:?} {offset} {limit}");
                assert_eq!(records, expected, "{filter:?} {offset} {limit}");
                compared += 1;
            }
        }
    }
    assert!(compared > 200);
}

#[tokio::test]
async fn the_index_answers_as_the_whole_trail_on_sqlite() {
    the_index_answers_as_the_whole_trail(TestDb::sqlite()).await;
}

#[tokio::test]
async fn the_index_answers_as_the_whole_trail_on_postgres() {
    the_index_answers_as_the_whole_trail(TestDb::postgres().await).await;
}

/// A generated history in `db` and an index caught up with it: the store, the orgs, the
/// index and the log's head.
async fn indexed_history(db: &TestDb) -> (Arc<dyn EventStore>, Vec<OrgId>, Arc<AuditIndex>, u64) {
    let store = keyward::store::open(&db.url()).await.unwrap();
    let orgs = generate(&*store).await;
    let head = store.head().await.unwrap().position;
    let index = AuditIndex::open(&db.url()).await.unwrap();
    index.start(store.clone());
    assert!(index.caught_up_to(head, Duration::from_secs(30)).await);
    (store, orgs, index, head)
}

#[tokio::test]
async fn an_index_dropped_is_rebuilt_from_the_log() {
    let db = TestDb::sqlite();
    let (store, orgs, index, head) = indexed_history(&db).await;
    let before = index
        .query(&*store, orgs[0], &AuditQuery::default(), 0, 1000)
        .await
        .unwrap();
    drop(index);

    let file = format!("{}.audit-index", db.sqlite_path().unwrap().display());
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{file}{suffix}"));
    }
    let rebuilt = AuditIndex::open(&db.url()).await.unwrap();
    assert_eq!(rebuilt.position(), 0);
    rebuilt.start(store.clone());
    assert!(rebuilt.caught_up_to(head, Duration::from_secs(30)).await);
    assert_eq!(
        rebuilt
            .query(&*store, orgs[0], &AuditQuery::default(), 0, 1000)
            .await
            .unwrap(),
        before
    );
}

/// A log with an event deleted (tampered with, which the audit API must still let an
/// auditor look around) still answers time windows: the search for a window's bounds
/// takes the next event's time for the missing one.
#[tokio::test]
async fn time_windows_are_found_in_a_log_with_an_event_missing() {
    let db = TestDb::sqlite();
    let (store, orgs, index, head) = indexed_history(&db).await;
    // The first event of an append, whose time the rest of the append shares.
    let missing = 5 * EVENTS_PER_APPEND + 1;
    let at = store.read_positions(&[missing]).await.unwrap()[0].recorded_at;
    assert_eq!(
        db.execute_sql(&format!("DELETE FROM events WHERE position = {missing}"))
            .await,
        1
    );
    let present = store.read_all(0, 100_000).await.unwrap();
    assert_eq!(present.len() as u64, head - 1);

    let micro = chrono::Duration::microseconds(1);
    for org in orgs {
        for (from, to) in [
            (Some(at), None),
            (None, Some(at)),
            (Some(at), Some(at)),
            (Some(at + micro), None),
            (None, Some(at - micro)),
        ] {
            let window = AuditQuery {
                from,
                to,
                ..AuditQuery::default()
            };
            let (positions, _) = index.query(&*store, org, &window, 0, 100_000).await.unwrap();
            let found: Vec<u64> = AuditIndex::records(&*store, &positions)
                .await
                .unwrap()
                .iter()
                .map(|record| record.position)
                .collect();
            let expected: Vec<u64> = present
                .iter()
                .rev()
                .filter(|event| event.metadata().unwrap().org_id == Some(org.0))
                .filter(|event| from.is_none_or(|from| event.recorded_at >= from))
                .filter(|event| to.is_none_or(|to| event.recorded_at <= to))
                .map(|event| event.position)
                .collect();
            assert!(!expected.is_empty() || to.is_some(), "{window:?}");
            assert_eq!(found, expected, "{window:?}");
        }
    }
}
