//! How fast the read models fold events, without the database: the ceiling of replay.
//! `cargo bench -p keyward-projections`

use chrono::{DateTime, Utc};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use domain::authz::Principal;
use domain::chain::HashedFields;
use domain::events::{AgentAuthenticated, Event, SecretRead};
use domain::{AgentId, ChainHash, Metadata, RecordedEvent, SecretId, SecretPath, StreamId, VaultId};
use keyward_projections::ReadModels;
use uuid::Uuid;

const EVENTS: u64 = 10_000;

/// A chained log of secret reads and agent sign-ins, as `keyward bench seed` writes.
fn log() -> Vec<RecordedEvent> {
    let (vault, agent) = (VaultId(Uuid::from_u128(1)), AgentId(Uuid::from_u128(2)));
    let mut metadata = Metadata::system(DateTime::<Utc>::UNIX_EPOCH);
    metadata.org_id = Some(Uuid::from_u128(3));
    let mut prev_hash = ChainHash::GENESIS;
    (1..=EVENTS)
        .map(|position| {
            let event: Event = if position % 2 == 0 {
                SecretRead {
                    secret_id: SecretId(Uuid::from_u128(4)),
                    vault_id: vault,
                    path: SecretPath::parse(format!("bench/{}", position % 100)).unwrap(),
                    version: 1,
                    by: Principal::agent(agent),
                }
                .into()
            } else {
                AgentAuthenticated {
                    agent_id: agent,
                    key_id: Uuid::from_u128(5),
                }
                .into()
            };
            let new = event.to_new_event(&metadata).unwrap();
            let mut recorded = RecordedEvent {
                position,
                event_id: new.event_id,
                stream_id: StreamId::parse(format!("bench-{}", position % 50)).unwrap(),
                stream_version: position / 50 + 1,
                event_type: new.event_type,
                schema_version: new.schema_version,
                payload: new.payload,
                metadata: new.metadata,
                recorded_at: DateTime::from_timestamp_micros(position as i64).unwrap(),
                prev_hash,
                hash: ChainHash::GENESIS,
            };
            let fields: HashedFields<'_> = recorded.hashed_fields();
            recorded.hash = fields.hash();
            prev_hash = recorded.hash;
            recorded
        })
        .collect()
}

fn fold(c: &mut Criterion) {
    let log = log();
    let mut group = c.benchmark_group("read_models");
    group.throughput(Throughput::Elements(EVENTS));
    group.bench_function("fold_10k_events", |b| {
        b.iter(|| {
            let mut models = ReadModels::new();
            for event in &log {
                models.apply(event);
            }
            models
        })
    });
    group.bench_function("hash_10k_events", |b| {
        b.iter(|| log.iter().map(|event| event.hashed_fields().hash()).next_back())
    });
    group.finish();
}

criterion_group!(benches, fold);
criterion_main!(benches);
