//! Opening a share, in process: the application layer's use case called directly, with no
//! server spawned, for each way an opening goes (a passphrase, an address allowlist, an
//! access limit, a revocation, someone with a link only). The human, the vault, the secret
//! and the share are set up through the JSON API's router, also in process.

mod common;

use std::net::IpAddr;

use axum::http::Method;
use chrono::{Duration, Utc};
use common::TestDb;
use common::in_process::InProcess;
use domain::share::{AccessRefused, Accessor};
use domain::{ActorType, Metadata, ShareId};
use keyward::app::AppError;
use keyward::app::shares::{OpenShare, OpenedShare, open_share};
use serde_json::{Value, json};
use zeroize::Zeroizing;

const VALUE: &str = "wx-5f2a9c";
const PASSPHRASE: &str = "correct horse battery";

/// A new human's secret and a link share of it made with `settings` (recipient and
/// expiry added): the human's token and the share's id.
async fn link_share(keyward: &InProcess, settings: Value) -> (String, ShareId) {
    let human = keyward.human("ada@example.com").await;
    let vault = keyward
        .call(Method::POST, "/v1/vaults", Some(&human), json!({"name": "prod"}))
        .await;
    let vault = vault["id"].as_str().unwrap();
    let secret = keyward
        .call(
            Method::PUT,
            &format!("/v1/vaults/{vault}/secrets/weather/api-key"),
            Some(&human),
            json!({"value": VALUE, "type": "api_key"}),
        )
        .await;
    let secret = secret["id"].as_str().unwrap();
    let mut settings = settings;
    settings["recipient_type"] = json!("anyone_with_link");
    settings["expires_at"] = json!((Utc::now() + Duration::hours(1)).to_rfc3339());
    let share = keyward
        .call(
            Method::POST,
            &format!("/v1/secrets/{secret}/share"),
            Some(&human),
            settings,
        )
        .await;
    (human, ShareId(share["id"].as_str().unwrap().parse().unwrap()))
}

/// An opening by someone with the link only, from `client`.
fn anonymous(share_id: ShareId, passphrase: Option<&str>, client: &str) -> OpenShare {
    let client_ip: IpAddr = client.parse().unwrap();
    OpenShare {
        share_id,
        accessor: Accessor::Anonymous,
        passphrase: passphrase.map(|text| Zeroizing::new(text.to_owned())),
        claim: None,
        client_ip,
        now: Utc::now(),
        metadata: Metadata {
            actor_type: ActorType::Anonymous,
            actor_id: None,
            org_id: None,
            client_ip: Some(client_ip),
            request_id: None,
            timestamp: Utc::now(),
        },
    }
}

fn refusal(outcome: Result<OpenedShare, AppError>) -> AccessRefused {
    match outcome {
        Err(AppError::ShareRefused(refusal)) => refusal,
        Err(other) => panic!("failed for another reason: {other}"),
        Ok(_) => panic!("opened"),
    }
}

/// A share with a passphrase opens with it only; a wrong or missing one opens nothing and
/// counts no access; the right one opens the value and counts one.
#[tokio::test]
async fn a_passphrase_share_opens_with_its_passphrase_only() {
    let db = TestDb::sqlite();
    let keyward = InProcess::start(&db).await;
    let (_, share) = link_share(&keyward, json!({"passphrase": PASSPHRASE})).await;
    let client = "203.0.113.7";

    for presented in [None, Some("open sesame")] {
        let outcome = open_share(&keyward.state, anonymous(share, presented, client)).await;
        assert_eq!(refusal(outcome), AccessRefused::Passphrase, "{presented:?}");
    }
    let opened = open_share(&keyward.state, anonymous(share, Some(PASSPHRASE), client))
        .await
        .unwrap();
    assert_eq!(opened.value.as_str(), VALUE);
    assert_eq!(opened.access_count, 1, "refusals count no access");
}

/// An address allowlist refuses a client outside it, whatever the passphrase, and opens
/// for one inside.
#[tokio::test]
async fn an_address_allowlist_refuses_outside_it_even_with_the_passphrase() {
    let db = TestDb::sqlite();
    let keyward = InProcess::start(&db).await;
    let settings = json!({"passphrase": PASSPHRASE, "ip_allowlist": ["198.51.100.0/24"]});
    let (_, share) = link_share(&keyward, settings).await;

    let outside = open_share(&keyward.state, anonymous(share, Some(PASSPHRASE), "203.0.113.7")).await;
    assert_eq!(refusal(outside), AccessRefused::Address);
    let inside = open_share(&keyward.state, anonymous(share, Some(PASSPHRASE), "198.51.100.20"))
        .await
        .unwrap();
    assert_eq!(inside.value.as_str(), VALUE);
}

/// A share allowed two openings opens twice, then is used up.
#[tokio::test]
async fn a_share_allowed_two_openings_is_used_up_at_the_third() {
    let db = TestDb::sqlite();
    let keyward = InProcess::start(&db).await;
    let (_, share) = link_share(&keyward, json!({"max_access_count": 2})).await;
    let client = "203.0.113.7";

    for count in 1..=2 {
        let opened = open_share(&keyward.state, anonymous(share, None, client))
            .await
            .unwrap();
        assert_eq!((opened.access_count, opened.max_access_count), (count, Some(2)));
    }
    let third = open_share(&keyward.state, anonymous(share, None, client)).await;
    assert_eq!(refusal(third), AccessRefused::UsedUp(2));
}

/// A share its sharer revoked is not found.
#[tokio::test]
async fn a_revoked_share_is_not_found() {
    let db = TestDb::sqlite();
    let keyward = InProcess::start(&db).await;
    let (sharer, share) = link_share(&keyward, json!({})).await;
    let client = "203.0.113.7";
    open_share(&keyward.state, anonymous(share, None, client))
        .await
        .unwrap();

    keyward
        .call(
            Method::DELETE,
            &format!("/v1/share/{}", share.0),
            Some(&sharer),
            Value::Null,
        )
        .await;
    let outcome = open_share(&keyward.state, anonymous(share, None, client)).await;
    assert_eq!(refusal(outcome), AccessRefused::NotFound);
}

/// Someone with a link only is recorded in the share's organization: the opening and the
/// sharer's read it lends are both in its audit trail.
#[tokio::test]
async fn an_anonymous_opening_is_recorded_in_the_shares_organization() {
    let db = TestDb::sqlite();
    let keyward = InProcess::start(&db).await;
    let (_, share) = link_share(&keyward, json!({})).await;
    let org = keyward
        .state
        .projector
        .read(|models| models.shares.get(share).unwrap().org_id);
    let head = keyward.state.store.head().await.unwrap().position;

    open_share(&keyward.state, anonymous(share, None, "203.0.113.7"))
        .await
        .unwrap();
    // The mail worker may record the outcome of an earlier mail meanwhile: the opening's
    // own events are the share's access and the read it lends.
    let opening: Vec<_> = keyward
        .state
        .store
        .read_all(head, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|event| ["share.accessed", "secret.read"].contains(&event.event_type.as_str()))
        .collect();
    assert_eq!(opening.len(), 2, "one access and one read");
    assert_ne!(opening[0].event_type, opening[1].event_type);
    for event in &opening {
        let metadata = event.metadata().unwrap();
        assert_eq!(metadata.org_id, Some(org.0), "{}", event.event_type);
        assert_eq!(metadata.actor_type, ActorType::Anonymous, "{}", event.event_type);
    }
}
