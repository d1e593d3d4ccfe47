//! The README's "Five minutes with curl", run as written: its shell blocks, in order, in one
//! bash, against a keyward of the test's own whose default chain is the run's anvil. Only
//! the line that names keyward's address changes (the test's server listens on a free
//! port). The book's first page includes the same walk-through from the README.

mod common;

use std::process::Command;
use std::time::Duration;

use common::process::run_bounded;
use common::{Server, TestDb, chain};
use serde_json::Value;

const README: &str = include_str!("../README.md");
const BOOK_FIRST_PAGE: &str = include_str!("../docs/introduction.md");
const BEGIN: &str = "<!-- ANCHOR: walk-through -->";
const END: &str = "<!-- ANCHOR_END: walk-through -->";
/// The line of the walk-through that names keyward's address.
const ADDRESS_LINE: &str = "K=http://127.0.0.1:8080";
/// The address of anvil's first development account, whose key the walk-through stores.
const SIGNER: &str = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266";

/// The `sh` blocks between the walk-through's anchors, in order.
fn walk_through_blocks() -> Vec<&'static str> {
    let start = README.find(BEGIN).expect("the README marks its walk-through's start") + BEGIN.len();
    let end = README[start..]
        .find(END)
        .expect("the README marks its walk-through's end")
        + start;
    let mut blocks = Vec::new();
    let mut rest = &README[start..end];
    while let Some(open) = rest.find("```sh\n") {
        let body = &rest[open + "```sh\n".len()..];
        let close = body.find("```").expect("every sh block is closed");
        blocks.push(&body[..close]);
        rest = &body[close + 3..];
    }
    blocks
}

fn require(tool: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|output| output.status.success());
    assert!(
        found,
        "{tool} is not on PATH: the walk-through needs it (scripts/test installs it)"
    );
}

#[test]
fn the_book_shows_the_readmes_walk_through() {
    assert!(BOOK_FIRST_PAGE.contains("{{#include ../README.md:walk-through}}"));
    assert!(BOOK_FIRST_PAGE.contains("{{#include ../README.md:what}}"));
    assert!(README.contains("<!-- ANCHOR: what -->") && README.contains("<!-- ANCHOR_END: what -->"));
    assert_eq!(
        walk_through_blocks().len(),
        8,
        "the walk-through's blocks changed: update this test"
    );
}

#[tokio::test]
async fn the_readmes_walk_through_runs_as_written() {
    require("curl");
    require("jq");
    let script = walk_through_blocks().concat();
    assert_eq!(script.matches(ADDRESS_LINE).count(), 1, "{script}");
    let db = TestDb::sqlite();
    let data_dir = tempfile::tempdir().unwrap();
    let chains = chain::chains_setting(&[]);
    let server = Server::start(&[
        ("KEYWARD_DATABASE_URL", db.url().as_str()),
        ("KEYWARD_DATA_DIR", data_dir.path().to_str().unwrap()),
        ("KEYWARD_CHAINS", chains.as_str()),
    ])
    .await;
    // The run's anvil is shared: make sure the development account can pay, whatever ran.
    chain::set_balance(SIGNER, 100 * chain::ETH).await;
    let script = script.replace(ADDRESS_LINE, &format!("K={}", server.base_url));

    let mut bash = Command::new("bash");
    bash.args(["-euo", "pipefail", "-c", &script])
        .current_dir(data_dir.path());
    let (succeeded, output) = tokio::task::spawn_blocking(move || run_bounded(bash, Duration::from_secs(120)))
        .await
        .unwrap();
    assert!(succeeded, "the walk-through failed:\n{output}");

    let lines: Vec<&str> = output.lines().collect();
    assert_eq!(lines.len(), 15, "{output}");
    assert_eq!(
        lines[..6],
        [
            r#"{"path":"weather/api-key","version":1}"#,
            r#"{"secret_path_pattern":"weather/*","permissions":["read"]}"#,
            "wx-5f2a9c",
            r#"{"path":"keys/anvil-signer","version":1}"#,
            r#"{"secret_path_pattern":"keys/*","permissions":["read"]}"#,
            "agents with the Intents API enabled sign through keyward and never read key material",
        ],
        "{output}"
    );
    // What the README says the commands print.
    let refusal = format!("`{}`", lines[7]);
    for claim in ["`wx-5f2a9c`", "`broadcast` from `0xf39f…2266`", refusal.as_str()] {
        assert!(README.contains(claim), "the README no longer says {claim}");
    }
    let sent: Value = serde_json::from_str(lines[6]).unwrap_or_else(|_| panic!("{output}"));
    assert_eq!(sent["status"], "broadcast", "{output}");
    assert_eq!(sent["from"], SIGNER, "{output}");
    assert_eq!(sent["value_wei"], "10000000000000000", "{output}");
    assert_eq!(chain::mined_status(sent["tx_hash"].as_str().unwrap()).await, 1);
    assert_eq!(
        lines[7..],
        [
            "tx_max_value_eth: 5 ETH is over the per-transaction cap of 1 ETH",
            "transaction.reject",
            "transaction.broadcast",
            "transaction.nonce_reserve",
            "transaction.sign",
            "auth.success",
            "secret.read",
            "auth.success",
        ],
        "{output}"
    );
}
