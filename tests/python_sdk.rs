//! The official 1claw Python SDK (`oneclaw` on PyPI) against keyward, with nothing changed but
//! its base URL: tests/sdk/oneclaw_sdk.py asserts every answer, this test asserts it exits 0.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Api, TestDb, chain};

/// More than ten times what the script takes on a loaded 2-core machine.
const TIME_LIMIT: Duration = Duration::from_secs(180);

fn python() -> String {
    std::env::var("KEYWARD_TEST_PYTHON").unwrap_or_else(|_| {
        panic!(
            "KEYWARD_TEST_PYTHON is not set: this test drives keyward with the oneclaw Python SDK, which \
             scripts/test installs into .tools/venv. Run it as `scripts/test python_sdk`, or set \
             KEYWARD_TEST_PYTHON to a python that has `oneclaw` installed."
        )
    })
}

/// Runs `command` to completion within `limit`, killing it past that; (success, output).
fn run_bounded(mut command: Command, limit: Duration) -> (bool, String) {
    let output = tempfile::NamedTempFile::new().expect("temp file");
    // Appending, so stdout and stderr interleave as written instead of overwriting each other.
    let append = || {
        std::fs::OpenOptions::new()
            .append(true)
            .open(output.path())
            .expect("open output")
    };
    let (stdout, stderr) = (append(), append());
    let mut child = command
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let text = std::fs::read_to_string(output.path()).unwrap_or_default();
    match status {
        Some(status) => (status.success(), text),
        None => (false, format!("{text}\n(killed after {} s)", limit.as_secs())),
    }
}

#[tokio::test]
async fn the_official_1claw_python_sdk_works_against_keyward() {
    let python = python();
    let db = TestDb::sqlite();
    // The run's anvil, for the signing-key balance.
    let api = Api::start_with(&db, &[("KEYWARD_CHAINS", &chain::chains_setting(&[]))]).await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/oneclaw_sdk.py");
    let mut command = Command::new(&python);
    command
        .arg(&script)
        .arg(&api.server.base_url)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env_remove("ONECLAW_RUNTIME_ID");
    let (success, output) = run_bounded(command, TIME_LIMIT);
    assert!(
        success,
        "{python} {} {} failed:\n{output}",
        script.display(),
        api.server.base_url
    );
    println!("{output}");
}
