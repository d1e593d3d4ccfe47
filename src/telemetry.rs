//! Prometheus metrics (docs/operations/metrics.md): what an operator watches of a running keyward.
//! Recorded through the `metrics` facade into one process-wide recorder, which `GET
//! /metrics` renders in the Prometheus text format for whoever holds the metrics token.
//!
//! Labels name route templates (`/v1/vaults/{vault_id}`), never paths, and methods from a
//! fixed set, so that neither ids nor secret paths reach the exposition and its size stays
//! bounded whatever clients send.

use std::sync::OnceLock;
use std::time::Duration;

use axum::extract::{MatchedPath, Request};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const HTTP_REQUESTS: &str = "keyward_http_requests_total";
pub const HTTP_DURATION: &str = "keyward_http_request_duration_seconds";
pub const AUTHENTICATION_REFUSALS: &str = "keyward_authentication_refusals_total";
pub const APPEND_BATCH_EVENTS: &str = "keyward_append_batch_events";
pub const APPEND_COMMIT: &str = "keyward_append_commit_seconds";
pub const LOG_POSITION: &str = "keyward_log_position";
pub const PROJECTOR_LAG: &str = "keyward_projector_lag_events";
pub const INTENTS: &str = "keyward_intents_broadcast_total";
pub const NODE_SEND: &str = "keyward_node_send_seconds";
pub const MAIL_QUEUED: &str = "keyward_mail_queue_depth";
pub const MAILS: &str = "keyward_mail_total";

/// Latencies from 100 µs to 10 s.
const SECONDS_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];
/// Events per group commit, up to the writer's largest batch.
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0];

static RECORDER: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process's recorder, once; later calls (another server in the same
/// process) find it installed. Without it, every metric is a no-op.
pub fn install() {
    RECORDER.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
            .and_then(|builder| {
                builder.set_buckets_for_metric(Matcher::Full(APPEND_BATCH_EVENTS.into()), BATCH_BUCKETS)
            })
            .unwrap_or_else(|_| unreachable!("the bucket lists are not empty"));
        let handle = builder
            .install_recorder()
            .unwrap_or_else(|error| panic!("a metrics recorder was installed elsewhere: {error}"));
        describe();
        keep_up(handle.clone());
        handle
    });
}

/// How often histogram samples are folded into their buckets.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Folds the histograms' samples into their buckets every [`UPKEEP_EVERY`], in a thread of
/// its own. The recorder keeps every sample of a histogram until then: without it memory
/// grew with every request (about 20 MB a minute under the audited-read benchmark) until
/// someone scraped `/metrics`, and without a scraper, for ever.
fn keep_up(handle: PrometheusHandle) {
    let upkeep = move || {
        loop {
            std::thread::sleep(UPKEEP_EVERY);
            handle.run_upkeep();
        }
    };
    if let Err(error) = std::thread::Builder::new().name("metrics-upkeep".into()).spawn(upkeep) {
        panic!("cannot start the metrics upkeep thread: {error}");
    }
}

fn describe() {
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by method, route template and status"
    );
    describe_histogram!(
        HTTP_DURATION,
        metrics::Unit::Seconds,
        "Time to answer an HTTP request, by method and route template"
    );
    describe_counter!(
        AUTHENTICATION_REFUSALS,
        "Requests refused for their credentials (401), by route template"
    );
    describe_histogram!(APPEND_BATCH_EVENTS, "Events written by one group commit of the log");
    describe_histogram!(
        APPEND_COMMIT,
        metrics::Unit::Seconds,
        "Time one group commit took, its fsync included"
    );
    describe_counter!(
        INTENTS,
        "Signed transactions sent to their chain's node, by outcome: taken, refused, or unanswered (sent again)"
    );
    describe_histogram!(
        NODE_SEND,
        metrics::Unit::Seconds,
        "Time a chain's node took to answer one batch of sends"
    );
    describe_gauge!(
        MAIL_QUEUED,
        "Emails queued in this process and not yet sent or given up"
    );
    describe_counter!(MAILS, "Emails this process finished, by outcome: sent or failed");
    describe_gauge!(LOG_POSITION, "The position of the last event the read models folded");
    describe_gauge!(
        PROJECTOR_LAG,
        "Events committed to the log that the read models have not folded yet"
    );
}

/// The exposition, in the Prometheus text format; `None` if no recorder was installed.
pub fn render() -> Option<String> {
    RECORDER.get().map(PrometheusHandle::render)
}

/// Middleware: counts and times every request by its route template.
pub async fn track(request: Request, next: Next) -> Response {
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    let status = response.status();
    histogram!(HTTP_DURATION, "method" => method, "route" => route.clone()).record(started.elapsed());
    if status == StatusCode::UNAUTHORIZED {
        counter!(AUTHENTICATION_REFUSALS, "route" => route.clone()).increment(1);
    }
    counter!(HTTP_REQUESTS, "method" => method, "route" => route, "status" => status.as_str().to_owned()).increment(1);
    response
}

/// The method as a label: one of the methods keyward serves, or `other`. A client may send
/// any token as a method, and each label value is a series kept for the life of the
/// process, so the labels must come from a fixed set.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// One group commit of `events` events, which took `took`.
pub fn record_commit(events: usize, took: Duration) {
    histogram!(APPEND_BATCH_EVENTS).record(events as f64);
    histogram!(APPEND_COMMIT).record(took);
}

/// A batch of signed transactions the node answered after `took`.
pub fn record_node_send(took: Duration) {
    histogram!(NODE_SEND).record(took);
}

/// One signed transaction's send: `"taken"`, `"refused"` or `"unanswered"`.
pub fn record_intent(outcome: &'static str) {
    counter!(INTENTS, "outcome" => outcome).increment(1);
}

/// An email entered this process's queue.
pub fn mail_queued() {
    gauge!(MAIL_QUEUED).increment(1.0);
}

/// A queued email left it: sent, or given up after its retries.
pub fn mail_finished(sent: bool) {
    gauge!(MAIL_QUEUED).decrement(1.0);
    counter!(MAILS, "outcome" => if sent { "sent" } else { "failed" }).increment(1);
}

/// The read models' place in the log, as of a scrape.
pub fn record_projection(applied: u64, committed: u64) {
    gauge!(LOG_POSITION).set(applied as f64);
    gauge!(PROJECTOR_LAG).set(committed.saturating_sub(applied) as f64);
}
