//! Running the external programs some tests drive (Python clients, schemathesis).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `command` to completion within `limit`, killing it past that; (success, output).
pub fn run_bounded(mut command: Command, limit: Duration) -> (bool, String) {
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
