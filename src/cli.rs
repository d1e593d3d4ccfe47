//! The command line: `keyward serve | migrate | verify | replay | export | bench | admin`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};
use domain::email::Email;
use domain::{OrgId, SecretPath, VaultId};
use indicatif::{ProgressBar, ProgressStyle};
use projections::Until;

use crate::config::{self, Config};
use crate::store::snapshot;
use crate::store::{self, EventStore};
use crate::{app, bench, platform_admin, replay, verify};

/// Prints a line of output; a reader that closed stdout early (`keyward replay | head -1`)
/// is not an error worth a panic.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

#[derive(Debug, Parser)]
#[command(name = "keyward", version, about = "Secrets vault and signing proxy for AI agents")]
pub struct Cli {
    /// TOML configuration file; every key can also be set as KEYWARD_<KEY>.
    #[arg(long, global = true, env = "KEYWARD_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP API.
    Serve,
    /// Create or upgrade the database schema, then exit.
    Migrate,
    /// Walk the hash chain of the whole log: exit 0 if intact, 1 naming the first broken event.
    Verify(VerifyArgs),
    /// Rebuild every read model from the log, optionally only up to a moment or a position.
    Replay(ReplayArgs),
    /// Stream the log to stdout for a SIEM, oldest first.
    Export(ExportArgs),
    /// Measure the event store on a database named explicitly (never the configured one).
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Platform administration, decided by an operator on the server.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Serve MCP over stdio for a local client, as an agent of the keyward at --url
    /// (docs/mcp.md).
    Mcp(McpArgs),
}

/// 1claw's variables for its local MCP server, so a client's configuration carries over.
#[derive(Debug, Args)]
struct McpArgs {
    /// The keyward to call.
    #[arg(long, env = "ONECLAW_BASE_URL", default_value = "http://127.0.0.1:8080")]
    url: url::Url,
    /// The agent's API key (ocv_…), exchanged for short-lived tokens.
    #[arg(long, env = "ONECLAW_AGENT_API_KEY", hide_env_values = true)]
    api_key: String,
    /// The agent's id, when its key should be checked against it.
    #[arg(long, env = "ONECLAW_AGENT_ID")]
    agent_id: Option<String>,
    /// The vault tools use when not given `vault_id`.
    #[arg(long, env = "ONECLAW_VAULT_ID")]
    vault_id: Option<String>,
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Make the account of EMAIL a platform administrator, whether or not its address is
    /// among the config's admins or verified.
    Grant { email: String },
    /// Take platform administration granted with `grant` back (a verified address of the
    /// config's admins stays an administrator while it is listed there).
    Revoke { email: String },
}

#[derive(Debug, Args)]
struct VerifyArgs {
    /// Also fold the log up to the newest read-model snapshot and compare: exit 1 naming
    /// each difference, or if the snapshot is damaged or not of this log.
    #[arg(long)]
    snapshots: bool,
}

#[derive(Debug, Args)]
struct ReplayArgs {
    /// Only events recorded at or before this moment (RFC 3339, e.g. 2026-11-22T10:00:00Z).
    #[arg(long, value_parser = parse_time, conflicts_with = "position")]
    until: Option<DateTime<Utc>>,
    /// Only events up to and including this global position.
    #[arg(long)]
    position: Option<u64>,
    /// Also list who could read or write this secret at that moment: VAULT_ID/PATH.
    #[arg(long, value_name = "VAULT_ID/PATH", value_parser = parse_secret_ref)]
    access_review: Option<(VaultId, SecretPath)>,
}

#[derive(Debug, Args)]
struct ExportArgs {
    /// Output format; one JSON object per event and line.
    #[arg(long, value_enum, default_value = "jsonl")]
    format: ExportFormat,
    /// Only events recorded at or after this moment (RFC 3339).
    #[arg(long, value_parser = parse_time)]
    from: Option<DateTime<Utc>>,
    /// Only events recorded at or before this moment (RFC 3339).
    #[arg(long, value_parser = parse_time)]
    to: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ExportFormat {
    Jsonl,
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Concurrent single-event appends with expected versions; prints events/s per writer count.
    Append {
        #[arg(long, value_name = "URL")]
        database_url: String,
        /// Writer counts to measure, one run each.
        #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
        writers: Vec<usize>,
        /// Length of each run.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// Write `<position> <event id>` for every acknowledged append to this file.
        #[arg(long, value_name = "FILE")]
        ack_file: Option<PathBuf>,
    },
    /// Fill a log with synthetic events, to measure replay and verify on it.
    Seed {
        #[arg(long, value_name = "URL")]
        database_url: String,
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        /// The organization every seeded event belongs to (an existing one, so that its
        /// humans query a large history); by default each of 16 writers makes up its own.
        #[arg(long, value_name = "ORG_ID")]
        org: Option<OrgId>,
    },
}

fn parse_secret_ref(text: &str) -> Result<(VaultId, SecretPath), String> {
    let (vault, path) = text.split_once('/').ok_or("expected VAULT_ID/PATH")?;
    let vault = vault.parse().map_err(|e| format!("vault id: {e}"))?;
    let path = SecretPath::parse(path).map_err(|e| format!("path: {e}"))?;
    Ok((vault, path))
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|time| time.with_timezone(&Utc))
        .map_err(|e| format!("not an RFC 3339 time such as 2026-11-22T10:00:00Z: {e}"))
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Bench(command) => return run_bench(command).await.map(|()| ExitCode::SUCCESS),
        Command::Mcp(args) => {
            // Stdout is the protocol's: nothing else may be written there.
            crate::mcp::stdio::serve(crate::mcp::stdio::AgentCredentials {
                base_url: args.url,
                agent_id: args.agent_id,
                api_key: zeroize::Zeroizing::new(args.api_key),
                vault_id: args.vault_id,
            })
            .await?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Serve
        | Command::Migrate
        | Command::Verify(_)
        | Command::Replay(_)
        | Command::Export(_)
        | Command::Admin(_) => {}
    }
    let config = Config::load(cli.config.as_deref())?;
    let store = open_store(&config).await?;
    match cli.command {
        Command::Serve => serve(config, store).await,
        Command::Migrate => {
            let head = store.head().await?;
            say!(
                "{} is migrated; the log holds {} events",
                config::redacted(&config.database_url),
                head.position
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify(args) => {
            let chain = run_verify(store.clone()).await?;
            if args.snapshots && chain == ExitCode::SUCCESS {
                verify_snapshots(&config, store).await
            } else {
                Ok(chain)
            }
        }
        Command::Replay(args) => {
            let until = match (args.until, args.position) {
                (Some(moment), _) => Until::Time(moment),
                (None, Some(position)) => Until::Position(position),
                (None, None) => Until::End,
            };
            run_replay(store, until, args.access_review).await
        }
        Command::Export(args) => run_export(store, args).await,
        Command::Admin(command) => run_admin(&*store, command).await,
        Command::Bench(_) | Command::Mcp(_) => unreachable!("handled before the configuration is loaded"),
    }
}

async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn EventStore>> {
    // data_dir holds the embedded database and, whatever the database, the signing and
    // master keys generated on first start.
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data_dir {}", config.data_dir.display()))?;
    store::open(&config.database_url).await.with_context(|| {
        format!(
            "cannot open the event store at {}",
            config::redacted(&config.database_url)
        )
    })
}

async fn serve(config: Config, store: Arc<dyn EventStore>) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    crate::telemetry::install();
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let (listen, public_url) = (config.listen, config.public_url.clone());
    let state = app::AppState::start(config, store).await?;
    tracing::info!(listen = %listen, public_url = %public_url, elapsed_ms = started.elapsed().as_millis() as u64, "keyward is serving");
    let (projector, log) = (state.projector.clone(), state.store.clone());
    let app = crate::router::router(state);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await
    .context("the HTTP server failed")?;
    // The next start then folds nothing but what is appended after it: what workers still
    // record as they stop (a mail's outcome), or other processes. Everything committed so
    // far is folded first, so that the snapshot stands at the head.
    if let Ok(head) = log.head().await {
        let _ = tokio::time::timeout(Duration::from_secs(5), projector.caught_up_to(head.position)).await;
    }
    if let Err(error) = projector.write_snapshot().await {
        tracing::warn!(%error, "cannot write a read-model snapshot at shutdown");
    }
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
}

/// A progress bar on a terminal; nothing when output goes to a file or a pipe.
fn progress_bar(length: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(length);
    let template = format!("{what} [{{bar:40}}] {{pos}}/{{len}} events ({{per_sec}}, {{eta}} left)");
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

async fn run_admin(store: &dyn EventStore, command: AdminCommand) -> anyhow::Result<ExitCode> {
    let (email, granted) = match command {
        AdminCommand::Grant { email } => (email, true),
        AdminCommand::Revoke { email } => (email, false),
    };
    let email = Email::parse(&email).map_err(|e| anyhow::anyhow!("{email:?}: {e}"))?;
    match platform_admin::set(store, email.clone(), granted).await {
        Ok(user) => {
            let done = if granted { "is now" } else { "is no longer made" };
            say!("{email} (account {user}) {done} a platform administrator by grant");
            Ok(ExitCode::SUCCESS)
        }
        Err(platform_admin::AdminError::NoAccount(_)) => {
            say!("no account holds {email}: it must sign up first");
            Ok(ExitCode::FAILURE)
        }
        Err(other) => Err(other.into()),
    }
}

/// Compares the newest snapshot with a fold of the log up to its position.
async fn verify_snapshots(config: &Config, store: Arc<dyn EventStore>) -> anyhow::Result<ExitCode> {
    let Some(snapshots) = snapshot::open(&config.database_url).await? else {
        say!("an in-memory log keeps no snapshots");
        return Ok(ExitCode::SUCCESS);
    };
    let Some(&newest) = snapshots.positions().await?.first() else {
        say!("no read-model snapshot to verify");
        return Ok(ExitCode::SUCCESS);
    };
    let Some(bytes) = snapshots.read(newest).await? else {
        say!("the snapshot at position {newest} was replaced while being read; run again");
        return Ok(ExitCode::FAILURE);
    };
    let snapshot = match snapshot::verified(bytes, &*store).await? {
        Ok(snapshot) => snapshot,
        Err(unusable @ snapshot::Unusable::OtherSchema { .. }) => {
            say!("snapshot at position {newest}: {unusable}; the next start ignores it and folds the log");
            return Ok(ExitCode::SUCCESS);
        }
        Err(unusable) => {
            say!("snapshot at position {newest} is unusable: {unusable}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let bar = progress_bar(newest, "folding");
    let folded = replay::build(store, Until::Position(newest), |position| bar.set_position(position)).await?;
    bar.finish_and_clear();
    let differences = snapshot::differences(&folded, &snapshot.models, 20);
    if differences.is_empty() {
        say!("snapshot at position {newest} matches a fold of the log");
        return Ok(ExitCode::SUCCESS);
    }
    say!("snapshot at position {newest} differs from a fold of the log:");
    for difference in differences {
        say!("  {difference}");
    }
    Ok(ExitCode::FAILURE)
}

async fn run_verify(store: Arc<dyn EventStore>) -> anyhow::Result<ExitCode> {
    let head = store.head().await?;
    let bar = progress_bar(head.position, "verifying");
    let started = Instant::now();
    let verdict = verify::verify(&*store, |position| bar.set_position(position)).await?;
    bar.finish_and_clear();
    match verdict {
        verify::Verdict::Intact { events } => {
            say!(
                "chain intact: {events} events verified in {:.2}s, head {}",
                started.elapsed().as_secs_f64(),
                head.hash.to_hex()
            );
            Ok(ExitCode::SUCCESS)
        }
        verify::Verdict::Broken {
            events_verified,
            reason,
        } => {
            say!("chain broken: {reason}");
            say!("{events_verified} events before the break verified");
            Ok(ExitCode::FAILURE)
        }
    }
}

async fn run_replay(
    store: Arc<dyn EventStore>,
    until: Until,
    access_review: Option<(VaultId, SecretPath)>,
) -> anyhow::Result<ExitCode> {
    let head = store.head().await?;
    let bar = progress_bar(head.position, "replaying");
    let started = Instant::now();
    let models = replay::build(store, until, |position| bar.set_position(position)).await?;
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    let rate = models.position() as f64 / elapsed.as_secs_f64().max(f64::EPSILON);
    let as_of = models
        .last_recorded_at()
        .map_or_else(|| "the empty log".to_owned(), |at| at.to_rfc3339());
    say!(
        "replayed {} events in {:.3}s ({rate:.0} events/s), up to position {} as of {as_of}",
        models.position(),
        elapsed.as_secs_f64(),
        models.position()
    );
    for (name, count) in models.summary() {
        say!("  {name}: {count}");
    }
    if let Some((vault, path)) = access_review {
        let at = match until {
            Until::Time(moment) => moment,
            Until::End | Until::Position(_) => models.last_recorded_at().unwrap_or_else(Utc::now),
        };
        let Some(reviewed) = projections::access_review::review(&models.directory, &models.access, vault, &path, at)
        else {
            say!("access review of {vault}/{path}: no such vault at that moment");
            return Ok(ExitCode::FAILURE);
        };
        say!("access review of {vault}/{path} at {}:", at.to_rfc3339());
        for access in reviewed {
            let permissions: Vec<_> = access.permissions.iter().map(|p| p.as_str()).collect();
            let why = access
                .policy_id
                .map_or_else(|| "owner".to_owned(), |policy| format!("policy {policy}"));
            say!(
                "  {} {} {} ({why})",
                access.principal.kind,
                access.principal.id,
                permissions.join(",")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Streams the log as JSON lines. Password hashes are left out: a SIEM needs to know a
/// password changed, not what an attacker could try to crack. Secret values are never in
/// the log to begin with.
async fn run_export(store: Arc<dyn EventStore>, args: ExportArgs) -> anyhow::Result<ExitCode> {
    let ExportFormat::Jsonl = args.format;
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    let mut after = 0;
    loop {
        let events = store.read_all(after, 10_000).await?;
        let Some(last) = events.last() else { break };
        after = last.position;
        for event in &events {
            if args.from.is_some_and(|from| event.recorded_at < from) {
                continue;
            }
            if args.to.is_some_and(|to| event.recorded_at > to) {
                return Ok(ExitCode::SUCCESS);
            }
            let mut payload: serde_json::Value = serde_json::from_str(&event.payload)?;
            if let Some(fields) = payload.as_object_mut()
                && fields.contains_key("password_hash")
            {
                fields.insert("password_hash".into(), "[withheld]".into());
            }
            let line = serde_json::json!({
                "position": event.position,
                "event_id": event.event_id,
                "stream_id": event.stream_id.as_str(),
                "stream_version": event.stream_version,
                "event_type": event.event_type,
                "schema_version": event.schema_version,
                "recorded_at": event.recorded_at,
                "payload": payload,
                "metadata": serde_json::from_str::<serde_json::Value>(&event.metadata)?,
                "prev_hash": event.prev_hash.to_hex(),
                "hash": event.hash.to_hex(),
            });
            use std::io::Write as _;
            if writeln!(stdout, "{line}").is_err() {
                // The reader went away (`keyward export | head`): nothing more to do.
                return Ok(ExitCode::SUCCESS);
            }
        }
    }
    use std::io::Write as _;
    let _ = stdout.flush();
    Ok(ExitCode::SUCCESS)
}

async fn run_bench(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Append {
            database_url,
            writers,
            seconds,
            ack_file,
        } => {
            let store = bench::open(&database_url).await?;
            say!("{:>8} {:>10} {:>9} {:>12}", "writers", "events", "seconds", "events/s");
            for count in writers {
                let run = bench::append(store.clone(), count, Duration::from_secs(seconds), ack_file.clone()).await?;
                say!(
                    "{:>8} {:>10} {:>9.2} {:>12.0}",
                    run.writers,
                    run.events,
                    run.elapsed.as_secs_f64(),
                    run.events_per_second()
                );
            }
        }
        BenchCommand::Seed {
            database_url,
            events,
            org,
        } => {
            let store = bench::open(&database_url).await?;
            let bar = progress_bar(events, "seeding");
            let started = Instant::now();
            bench::seed(store, events, org, |written| bar.set_position(written)).await?;
            bar.finish_and_clear();
            say!("seeded {events} events in {:.2}s", started.elapsed().as_secs_f64());
        }
    }
    Ok(())
}
