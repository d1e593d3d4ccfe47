//! Crash safety: `kill -9` a process in the middle of a burst of concurrent appends. Every
//! append it acknowledged is in the log, the chain verifies, and the log rebuilds the same
//! read models however it is read.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{Server, TestDb, keyward, run_keyward};
use keyward::store;
use projections::{ReadModels, Until};
use uuid::Uuid;

const ACKNOWLEDGED_BEFORE_KILL: usize = 2_000;

/// Lines `<position> <event id>` the killed process wrote; a torn last line is dropped.
fn acknowledged(ack_file: &std::path::Path) -> Vec<(u64, Uuid)> {
    let text = std::fs::read_to_string(ack_file).unwrap_or_default();
    let complete = match text.rfind('\n') {
        Some(end) => &text[..=end],
        None => "",
    };
    complete
        .lines()
        .map(|line| {
            let (position, id) = line.split_once(' ').expect("ack line");
            (position.parse().unwrap(), id.parse().unwrap())
        })
        .collect()
}

async fn acknowledged_appends_survive_kill_9(db: TestDb) {
    let dir = tempfile::tempdir().unwrap();
    let ack_file = dir.path().join("acks");
    let mut writer = keyward()
        .args([
            "bench",
            "append",
            "--database-url",
            &db.url(),
            "--writers",
            "16",
            "--seconds",
            "300",
        ])
        .arg("--ack-file")
        .arg(&ack_file)
        .spawn()
        .unwrap();
    let started = Instant::now();
    while acknowledged(&ack_file).len() < ACKNOWLEDGED_BEFORE_KILL {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the burst never reached {ACKNOWLEDGED_BEFORE_KILL} appends"
        );
        assert!(
            writer.try_wait().unwrap().is_none(),
            "the writer exited before it was killed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    writer.kill().unwrap(); // SIGKILL: no destructor, no flush, no clean close
    writer.wait().unwrap();

    let acks = acknowledged(&ack_file);
    let store = store::open(&db.url()).await.unwrap();
    let stored: HashMap<u64, Uuid> = store
        .read_all(0, usize::MAX >> 1)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.position, e.event_id))
        .collect();
    for (position, id) in &acks {
        assert_eq!(
            stored.get(position),
            Some(id),
            "acknowledged event {id} at position {position} was lost"
        );
    }
    assert!(stored.len() >= acks.len());

    let (code, stdout, _) = run_keyward(&["verify"], &[("KEYWARD_DATABASE_URL", &db.url())]);
    assert_eq!(code, 0, "{stdout}");

    // The same read models whether rebuilt in batches or followed event by event.
    let replayed = keyward::replay::build(store.clone(), Until::End, |_| {}).await.unwrap();
    let mut followed = ReadModels::new();
    let mut tail = store::subscribe(store.clone(), 0);
    while followed.position() < stored.len() as u64 {
        followed.apply(&tail.next().await.unwrap());
    }
    assert_eq!(replayed, followed);
    assert_eq!(replayed.streams.event_count(), stored.len() as u64);
    drop(store);

    // A service started on the crashed log rebuilds it and carries on writing its chain.
    let server = Server::start(&[("KEYWARD_DATABASE_URL", &db.url())]).await;
    let health: serde_json::Value = reqwest::get(server.url("/v1/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["log_position"], stored.len() as u64);
    drop(server);
    let (code, _, stderr) = run_keyward(
        &[
            "bench",
            "append",
            "--database-url",
            &db.url(),
            "--writers",
            "4",
            "--seconds",
            "1",
        ],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, _) = run_keyward(&["verify"], &[("KEYWARD_DATABASE_URL", &db.url())]);
    assert_eq!(code, 0, "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_keeps_every_acknowledged_append_through_kill_9() {
    acknowledged_appends_survive_kill_9(TestDb::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_keeps_every_acknowledged_append_through_kill_9() {
    acknowledged_appends_survive_kill_9(TestDb::postgres().await).await;
}

/// The same through the service itself: `kill -9 keyward serve` while 16 clients create
/// vaults. Every vault the server answered 201 for is there after a restart, the chain
/// verifies, and the restarted service answers from the rebuilt read models.
async fn acknowledged_requests_survive_kill_9_of_the_server(db: TestDb) {
    let service = common::Service::new(&db, &[]);
    let api = service.start().await;
    let token = api.signup("ada@example.com", "correct horse").await;

    let acknowledged = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let clients: Vec<_> = (0..16)
        .map(|client| {
            let (acknowledged, token, url) = (acknowledged.clone(), token.clone(), api.server.url("/v1/vaults"));
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                for n in 0.. {
                    let body = serde_json::json!({ "name": format!("vault {client}-{n}") });
                    let Ok(response) = http.post(&url).bearer_auth(&token).json(&body).send().await else {
                        return;
                    };
                    if response.status() != reqwest::StatusCode::CREATED {
                        return;
                    }
                    let Ok(vault) = response.json::<serde_json::Value>().await else {
                        return;
                    };
                    acknowledged
                        .lock()
                        .unwrap()
                        .push(vault["id"].as_str().unwrap().to_owned());
                }
            })
        })
        .collect();
    let started = Instant::now();
    while acknowledged.lock().unwrap().len() < 300 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the burst never reached 300 vaults"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    api.server.kill();
    for client in clients {
        client.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();

    let (code, stdout, _) = run_keyward(&["verify"], &[("KEYWARD_DATABASE_URL", &db.url())]);
    assert_eq!(code, 0, "{stdout}");
    let restarted = service.start().await;
    let (status, listed) = restarted.call("GET", "/v1/vaults", Some(&token), None).await;
    assert_eq!(status, reqwest::StatusCode::OK);
    let listed: std::collections::HashSet<&str> = listed["vaults"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap())
        .collect();
    for id in &acknowledged {
        assert!(
            listed.contains(id.as_str()),
            "vault {id} was acknowledged and then lost"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_service_keeps_every_acknowledged_request_through_kill_9() {
    acknowledged_requests_survive_kill_9_of_the_server(TestDb::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_service_keeps_every_acknowledged_request_through_kill_9() {
    acknowledged_requests_survive_kill_9_of_the_server(TestDb::postgres().await).await;
}
