//! Threat: guessing a link share's passphrase (docs/security.md, "Guessing a share's
//! passphrase"). Whoever holds a link share's URL may present passphrases without signing
//! in. Each client is heard five times, then one attempt every 12 seconds; a share is heard
//! ten times at once, whoever sends them; and the tenth wrong passphrase locks the share for
//! good, decided on the log, however the guesses are spread over clients and replicas. A
//! passphrase has at least 8 characters.

mod common;

use std::collections::BTreeMap;

use chrono::{Duration, Utc};
use common::{Api, Service, TestDb};
use reqwest::StatusCode;
use serde_json::{Value, json};

const PASSPHRASE: &str = "correct horse battery staple";
const WRONG: &str = "incorrect horse battery staple";
const VALUE: &str = "the vault code is 4711";

/// Every client a test plays sends through the proxy keyward trusts (the test's own).
const BEHIND_A_PROXY: (&str, &str) = ("KEYWARD_TRUSTED_PROXIES", "127.0.0.1");

/// A human, and a link share of one of their secrets behind `PASSPHRASE`.
struct Shared {
    owner: String,
    share_id: String,
}

async fn link_share(api: &Api) -> Shared {
    let email = format!("ada-{}@example.com", uuid::Uuid::now_v7().simple());
    let owner = api.signup(&email, "correct horse").await;
    let (_, vault) = api
        .call("POST", "/v1/vaults", Some(&owner), Some(json!({"name": "prod"})))
        .await;
    let vault = vault["id"].as_str().unwrap();
    let (status, secret) = api
        .call(
            "PUT",
            &format!("/v1/vaults/{vault}/secrets/office/safe"),
            Some(&owner),
            Some(json!({"value": VALUE})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{secret}");
    let (status, share) = create_share(api, &owner, secret["id"].as_str().unwrap(), PASSPHRASE).await;
    assert_eq!(status, StatusCode::CREATED, "{share}");
    Shared {
        owner,
        share_id: share["id"].as_str().unwrap().to_owned(),
    }
}

async fn create_share(api: &Api, owner: &str, secret_id: &str, passphrase: &str) -> (StatusCode, Value) {
    api.call(
        "POST",
        &format!("/v1/secrets/{secret_id}/share"),
        Some(owner),
        Some(json!({
            "recipient_type": "anyone_with_link",
            "passphrase": passphrase,
            "expires_at": (Utc::now() + Duration::hours(1)).to_rfc3339(),
        })),
    )
    .await
}

/// Opens the share without signing in, presenting `passphrase` from `client`.
async fn guess(api: &Api, share_id: &str, client: &str, passphrase: &str) -> (StatusCode, Value) {
    api.call_with_headers(
        "GET",
        &format!("/v1/share/{share_id}"),
        None,
        Some(json!({ "passphrase": passphrase })),
        &[("x-forwarded-for", client)],
    )
    .await
}

/// How many of the owner's org's audit events have `action` (for this share).
async fn audited(api: &Api, owner: &str, action: &str, share_id: &str) -> Vec<Value> {
    let (status, trail) = api
        .call(
            "GET",
            &format!("/v1/audit/events?action={action}&resource_id={share_id}"),
            Some(owner),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{trail}");
    let events = trail["events"].as_array().unwrap().clone();
    assert_eq!(trail["count"], events.len(), "{trail}");
    events
}

fn tally(statuses: impl IntoIterator<Item = StatusCode>) -> BTreeMap<u16, usize> {
    let mut counts = BTreeMap::new();
    for status in statuses {
        *counts.entry(status.as_u16()).or_default() += 1;
    }
    counts
}

#[tokio::test]
async fn a_passphrase_shorter_than_eight_characters_is_refused_when_sharing() {
    let db = TestDb::sqlite();
    let api = Api::start(&db).await;
    let shared = link_share(&api).await;
    let (_, share) = api.call("GET", "/v1/shares/outbound", Some(&shared.owner), None).await;
    let secret_id = share["shares"][0]["secret_id"].as_str().unwrap().to_owned();
    for short in ["x", "", "1234567", "ééééééé"] {
        let (status, problem) = create_share(&api, &shared.owner, &secret_id, short).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{short:?}: {problem}");
        assert_eq!(
            problem["detail"], "passphrase must be at least 8 characters",
            "{short:?}"
        );
    }
    let (status, problem) = create_share(&api, &shared.owner, &secret_id, &"a".repeat(1025)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(problem["detail"], "passphrase must be at most 1024 bytes");
    let (_, outbound) = api.call("GET", "/v1/shares/outbound", Some(&shared.owner), None).await;
    assert_eq!(outbound["shares"].as_array().unwrap().len(), 1, "nothing was shared");
    for enough in ["12345678", "éééééééé"] {
        let (status, created) = create_share(&api, &shared.owner, &secret_id, enough).await;
        assert_eq!(status, StatusCode::CREATED, "{enough:?}: {created}");
    }
}

#[tokio::test]
async fn one_client_guessing_a_passphrase_gets_429_after_five_wrong_guesses_even_with_the_right_one() {
    let db = TestDb::sqlite();
    let api = Api::start_with(&db, &[BEHIND_A_PROXY]).await;
    let shared = link_share(&api).await;
    let attacker = "203.0.113.7";
    for n in 1..=5 {
        let (status, problem) = guess(&api, &shared.share_id, attacker, &format!("{WRONG} {n}")).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "guess {n}: {problem}");
        assert_eq!(problem["detail"], "a valid passphrase is required to open this share");
    }
    let response = api
        .client
        .get(api.server.url(&format!("/v1/share/{}", shared.share_id)))
        .header("x-forwarded-for", attacker)
        .json(&json!({ "passphrase": PASSPHRASE }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "not even the right passphrase is checked"
    );
    // The next attempt is due once the bucket has refilled one, at most 12 seconds on.
    let retry_after = common::retry_after(&response);
    assert!((1..=12).contains(&retry_after), "{retry_after}");
    assert_eq!(
        guess(&api, &shared.share_id, attacker, WRONG).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );

    // Another client is heard, and the right passphrase counts against no allowance.
    let recipient = "198.51.100.9";
    for _ in 0..6 {
        let (status, opened) = guess(&api, &shared.share_id, recipient, PASSPHRASE).await;
        assert_eq!(status, StatusCode::OK, "{opened}");
        assert_eq!(opened["value"], VALUE);
    }
    // Only the guesses that were checked are in the trail; the share is not locked.
    assert_eq!(
        audited(&api, &shared.owner, "share.access_denied", &shared.share_id)
            .await
            .len(),
        5
    );
    assert!(
        audited(&api, &shared.owner, "share.locked", &shared.share_id)
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn sixteen_concurrent_wrong_guesses_from_one_client_get_five_checked() {
    let db = TestDb::sqlite();
    let api = Api::start_with(&db, &[BEHIND_A_PROXY]).await;
    let shared = link_share(&api).await;
    let guesses = (0..16).map(|n| {
        let (api, share_id) = (&api, &shared.share_id);
        async move { guess(api, share_id, "203.0.113.7", &format!("{WRONG} {n}")).await.0 }
    });
    let statuses = futures::future::join_all(guesses).await;
    assert_eq!(
        tally(statuses),
        BTreeMap::from([(403, 5), (429, 11)]),
        "the allowance is taken before the check, so only five are checked"
    );
    assert_eq!(
        audited(&api, &shared.owner, "share.access_denied", &shared.share_id)
            .await
            .len(),
        5
    );
}

#[tokio::test]
async fn ten_wrong_guesses_from_ten_clients_lock_the_share_even_against_the_right_passphrase() {
    let db = TestDb::sqlite();
    let api = Api::start_with(&db, &[BEHIND_A_PROXY]).await;
    let shared = link_share(&api).await;
    for n in 1..=10 {
        let (status, problem) = guess(&api, &shared.share_id, &format!("203.0.113.{n}"), WRONG).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "guess {n}: {problem}");
    }
    // Locked: as if revoked, for everyone, the right passphrase included.
    let (status, problem) = guess(&api, &shared.share_id, "198.51.100.9", PASSPHRASE).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{problem}");
    assert_eq!(problem["detail"], "share not found");

    // The trail of the share's org says who locked it, from where, after how many guesses.
    let locked = audited(&api, &shared.owner, "share.locked", &shared.share_id).await;
    assert_eq!(locked.len(), 1, "{locked:?}");
    assert_eq!(
        (
            &locked[0]["actor_type"],
            &locked[0]["ip_address"],
            &locked[0]["resource_type"],
            &locked[0]["details"]
        ),
        (
            &json!("anonymous"),
            &json!("203.0.113.10"),
            &json!("share"),
            &json!({"wrong_passphrases": 10})
        )
    );
    let denied = audited(&api, &shared.owner, "share.access_denied", &shared.share_id).await;
    assert_eq!(denied.len(), 10);
    assert!(denied.iter().all(|event| event["details"]["wrong_passphrase"] == true));

    // Its owner sees it locked, and ends it; there is no unlocking, only sharing anew.
    let (_, outbound) = api.call("GET", "/v1/shares/outbound", Some(&shared.owner), None).await;
    let listed = &outbound["shares"][0];
    assert_eq!(
        (listed["id"].as_str(), &listed["is_locked"]),
        (Some(shared.share_id.as_str()), &json!(true))
    );
    assert_eq!(
        api.call(
            "DELETE",
            &format!("/v1/share/{}", shared.share_id),
            Some(&shared.owner),
            None
        )
        .await
        .0,
        StatusCode::NO_CONTENT
    );
    let (_, outbound) = api.call("GET", "/v1/shares/outbound", Some(&shared.owner), None).await;
    assert_eq!(outbound["shares"], json!([]));
}

/// Each replica damps guesses with buckets of its own, so together they check more than
/// ten at once; the lock still counts exactly ten, on the log.
#[tokio::test]
async fn thirty_concurrent_guesses_over_two_replicas_count_exactly_ten_and_lock_once() {
    let db = TestDb::postgres().await;
    let service = Service::new(&db, &[BEHIND_A_PROXY]);
    let first = service.start().await;
    let second = service.start().await;
    let shared = link_share(&first).await;
    let guesses = (0..30).map(|n| {
        let (replica, share_id) = (if n % 2 == 0 { &first } else { &second }, &shared.share_id);
        async move { guess(replica, share_id, &format!("203.0.113.{n}"), WRONG).await.0 }
    });
    let statuses = tally(futures::future::join_all(guesses).await);
    assert_eq!(statuses.get(&403), Some(&10), "{statuses:?}");
    // Those checked after the tenth find the share locked; the rest are damped.
    assert!(
        statuses.keys().all(|status| [403, 404, 429].contains(status)),
        "{statuses:?}"
    );
    assert!(statuses.get(&404).copied().unwrap_or(0) >= 10, "{statuses:?}");
    for replica in [&first, &second] {
        assert_eq!(
            audited(replica, &shared.owner, "share.locked", &shared.share_id)
                .await
                .len(),
            1
        );
        assert_eq!(
            audited(replica, &shared.owner, "share.access_denied", &shared.share_id)
                .await
                .len(),
            10
        );
        assert_eq!(
            guess(replica, &shared.share_id, "198.51.100.9", PASSPHRASE).await.0,
            StatusCode::NOT_FOUND
        );
    }
}
