//! The official 1claw Python SDK (`oneclaw` on PyPI) against keyward, with nothing changed but
//! its base URL: tests/sdk/oneclaw_sdk.py asserts every answer, this test asserts it exits 0.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::process::run_bounded;
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
