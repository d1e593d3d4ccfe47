//! `keyward bench`: measures the event store on a database of the operator's choosing,
//! so its figures describe their disk and their Postgres, not ours.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use domain::authz::Principal;
use domain::events::{AgentAuthenticated, Event, SecretRead, SecretReadDenied};
use domain::{ActorType, AgentId, ExpectedVersion, Metadata, NewEvent, OrgId, SecretId, SecretPath, StreamId, VaultId};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::store::{self, EventStore};

/// One run of concurrent single-event appends, as a command handler makes them: each
/// writer owns a stream and appends with the version it expects.
pub struct AppendRun {
    pub writers: usize,
    pub events: u64,
    pub elapsed: Duration,
}

impl AppendRun {
    pub fn events_per_second(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64()
    }
}

/// Runs `writers` concurrent writers for `duration`. With `ack_file`, every acknowledged
/// append is written there as `<position> <event id>` once the store has returned it:
/// the crash test kills this process and checks each line against the log.
pub async fn append(
    store: Arc<dyn EventStore>,
    writers: usize,
    duration: Duration,
    ack_file: Option<PathBuf>,
) -> anyhow::Result<AppendRun> {
    let acks = match ack_file {
        Some(path) => Some(spawn_ack_writer(path).await?),
        None => None,
    };
    let run = Uuid::now_v7().simple().to_string();
    let appended = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = (0..writers)
        .map(|writer| {
            let (store, appended, acks) = (store.clone(), appended.clone(), acks.clone());
            let stream = StreamId::for_aggregate("bench", format!("{run}.{writer}"));
            tokio::spawn(async move {
                let stream = stream?;
                let mut version = 0;
                while Instant::now() < deadline {
                    let event = NewEvent::new(
                        "bench.appended",
                        1,
                        &serde_json::json!({ "writer": writer, "n": version }),
                        &Metadata::system(Utc::now()),
                    )?;
                    let event_id = event.event_id;
                    let done = store
                        .append(&stream, ExpectedVersion::Exact(version), vec![event])
                        .await?;
                    version = done.stream_version();
                    appended.fetch_add(1, Ordering::Relaxed);
                    if let Some(acks) = &acks {
                        let _ = acks.send(format!("{} {event_id}\n", done.position));
                    }
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    Ok(AppendRun {
        writers,
        events: appended.load(Ordering::Relaxed),
        elapsed: started.elapsed(),
    })
}

async fn spawn_ack_writer(path: PathBuf) -> anyhow::Result<mpsc::UnboundedSender<String>> {
    let mut file = tokio::fs::File::create(&path)
        .await
        .with_context(|| format!("cannot create {}", path.display()))?;
    let (sender, mut lines) = mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        while let Some(line) = lines.recv().await {
            // One write per line: a kill leaves at most one partial last line.
            if file.write_all(line.as_bytes()).await.is_err() {
                return;
            }
        }
    });
    Ok(sender)
}

/// Fills a log with `events` realistic events (secret reads and refusals, agent sign-ins
/// and failed ones, spread over many streams, orgs and vaults), for measuring replay,
/// verification and point-in-time reviews. Appends go in batches, as imports do. The events
/// belong to `org`, or, without one, each writer's to an organization of its own.
pub async fn seed(
    store: Arc<dyn EventStore>,
    events: u64,
    org: Option<OrgId>,
    mut progress: impl FnMut(u64),
) -> anyhow::Result<()> {
    const WRITERS: u64 = 16;
    const BATCH: u64 = 250;
    const STREAMS_PER_WRITER: u64 = 500;
    let written = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let (store, written) = (store.clone(), written.clone());
            let share = events / WRITERS + u64::from(writer < events % WRITERS);
            let (org, vault, agent) = (
                org.map_or_else(Uuid::now_v7, |org| org.0),
                VaultId::new(),
                AgentId::new(),
            );
            tokio::spawn(async move {
                let mut done = 0;
                while done < share {
                    let count = BATCH.min(share - done);
                    let stream =
                        StreamId::for_aggregate("seed", format!("{writer}.{}", (done / BATCH) % STREAMS_PER_WRITER))?;
                    let metadata = Metadata {
                        actor_type: ActorType::Agent,
                        actor_id: Some(agent.to_string()),
                        org_id: Some(org),
                        client_ip: Some(std::net::IpAddr::from([10, 0, (writer % 256) as u8, 7])),
                        request_id: None,
                        timestamp: Utc::now(),
                    };
                    let batch = (done..done + count)
                        .map(|n| seeded_event(n, vault, agent).to_new_event(&metadata))
                        .collect::<Result<Vec<_>, _>>()?;
                    store.append(&stream, ExpectedVersion::Any, batch).await?;
                    done += count;
                    written.fetch_add(count, Ordering::Relaxed);
                }
                anyhow::Ok(())
            })
        })
        .collect();
    let mut ticker = tokio::time::interval(Duration::from_millis(200));
    for task in tasks {
        let mut task = task;
        loop {
            tokio::select! {
                result = &mut task => { result??; break; }
                _ = ticker.tick() => progress(written.load(Ordering::Relaxed)),
            }
        }
    }
    progress(written.load(Ordering::Relaxed));
    Ok(())
}

/// The `n`th seeded event: mostly reads, with the refusals and sign-ins around them.
fn seeded_event(n: u64, vault: VaultId, agent: AgentId) -> Event {
    let path = SecretPath::parse(format!("seed/secret-{}", n % 100)).unwrap_or_else(|_| unreachable!("a valid path"));
    let by = Principal::agent(agent);
    match n % 4 {
        0 | 1 => SecretRead {
            secret_id: SecretId(Uuid::from_u128(u128::from(n % 100))),
            vault_id: vault,
            path,
            version: 1,
            by,
        }
        .into(),
        2 => SecretReadDenied {
            vault_id: vault,
            path,
            by,
            layer: "policy".into(),
            reason: format!("no policy for {by} on vault {vault}"),
        }
        .into(),
        _ => AgentAuthenticated {
            agent_id: agent,
            key_id: Uuid::from_u128(u128::from(n)),
        }
        .into(),
    }
}

/// Opens the store a benchmark writes to; it must be named explicitly, never taken from
/// the service's configuration, so a benchmark cannot write into a production log.
pub async fn open(database_url: &str) -> anyhow::Result<Arc<dyn EventStore>> {
    store::open(database_url).await.with_context(|| {
        format!(
            "cannot open the benchmark database {}",
            crate::config::redacted(database_url)
        )
    })
}
