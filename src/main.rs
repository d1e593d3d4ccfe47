use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use keyward::cli::{self, Cli};
use tracing_subscriber::EnvFilter;

/// Read models are built from millions of small decoded events; mimalloc spends a
/// fraction of what the system allocator does on them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(cli::run(cli)) {
        Ok(code) => code,
        Err(error) => {
            // `{:#}` prints the whole chain of causes on one line, never a backtrace.
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// Logs go to stderr; `KEYWARD_LOG` filters them (default `info,sqlx=warn`), `KEYWARD_LOG_FORMAT=json`
/// makes them one JSON object per line for log shippers.
fn init_tracing() {
    let filter = EnvFilter::try_from_env("KEYWARD_LOG").unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if std::env::var("KEYWARD_LOG_FORMAT").is_ok_and(|format| format == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
}
