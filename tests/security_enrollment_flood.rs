//! Threat: shutting agent enrollment for everyone, and deciding enrollments meant for
//! someone else (docs/security.md, "Enrollment floods" and "What an unverified account may
//! do"). Anyone may ask to enroll, so what waits for a decision used to be capped only as a
//! whole: a thousand requests from one host's addresses filled the cap in seconds, and every
//! real enrollment was refused for a day.

mod common;

use common::{Api, TestDb, mail};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// keyward behind a proxy on 127.0.0.1 that says, in X-Forwarded-For, where each request
/// comes from: how these tests play requesters on many networks.
async fn behind_a_proxy(db: &TestDb) -> Api {
    Api::start_with(db, &[("KEYWARD_TRUSTED_PROXIES", "127.0.0.1")]).await
}

/// An enrollment requested from `from`: the status, the body and the Retry-After, if any.
async fn enroll_from(api: &Api, from: &str, body: Value) -> (StatusCode, Value, Option<u64>) {
    let response = api
        .client
        .post(api.server.url("/v1/agents/enroll"))
        .header("x-forwarded-for", from)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|value| value.to_str().unwrap().parse().unwrap());
    (status, response.json().await.unwrap(), retry_after)
}

fn link_only() -> Value {
    json!({"name": "bot"})
}

fn naming(email: &str) -> Value {
    json!({"name": "bot", "human_email": email})
}

/// The id of the enrollment an `approval_url` is for.
fn enrollment_id(answer: &Value) -> String {
    let url = answer["approval_url"].as_str().unwrap();
    let path = url.split('?').next().unwrap();
    path.rsplit('/').next().unwrap().to_owned()
}

/// Requests link-only enrollments from addresses `address(0)`, `address(1)`, ... one
/// after another, waiting out the flood damping, until the cap answers: how many were
/// created, and the cap's Retry-After.
async fn fill_network(api: &Api, address: impl Fn(usize) -> String) -> (usize, u64) {
    let mut created = 0;
    for n in 0..100 {
        let (status, body, retry_after) = enroll_from(api, &address(n), link_only()).await;
        match (status, retry_after) {
            (StatusCode::CREATED, _) => created += 1,
            // The damping of a burst: a second's wait.
            (StatusCode::TOO_MANY_REQUESTS, Some(wait)) if wait <= 1 => {
                tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
            }
            (StatusCode::TOO_MANY_REQUESTS, Some(wait)) => return (created, wait),
            other => panic!("{other:?}: {body}"),
        }
    }
    panic!("{created} enrollments from {} and no cap", address(0));
}

/// The attack as it was run: a thousand link-only enrollments from two hundred addresses
/// of one network. At most the network's share is created; every other network, and
/// every address, can enroll at once.
#[tokio::test]
async fn a_thousand_enrollments_from_one_network_leave_every_other_network_and_address_open() {
    let db = TestDb::sqlite();
    let api = behind_a_proxy(&db).await;
    let ada = api.signup_verified("ada@example.com", "correct horse").await;

    let flood = (0..1000).map(|n| {
        let api = &api;
        async move {
            enroll_from(api, &format!("203.0.113.{}", n % 200 + 1), link_only())
                .await
                .0
        }
    });
    let statuses: Vec<StatusCode> = futures::stream::iter(flood).buffer_unordered(32).collect().await;
    let created = statuses.iter().filter(|status| **status == StatusCode::CREATED).count();
    let refused = statuses
        .iter()
        .filter(|status| **status == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(created + refused, 1000, "{statuses:?}");
    assert!(
        (5..=10).contains(&created),
        "{created} created: a burst of five, then one a second, ten at most"
    );

    let (status, body, _) = enroll_from(&api, "198.51.100.7", link_only()).await;
    assert_eq!(status, StatusCode::CREATED, "another network: {body}");
    let (status, body, _) = enroll_from(&api, "198.51.100.8", naming("ada@example.com")).await;
    assert_eq!(status, StatusCode::CREATED, "an address, from another network: {body}");
    let (status, body, _) = enroll_from(&api, "2001:db8::7", naming("bob@example.com")).await;
    assert_eq!(status, StatusCode::CREATED, "an IPv6 network: {body}");
    let (_, listed) = api.call("GET", "/v1/agents/enrollments", Some(&ada), None).await;
    assert_eq!(listed["enrollments"].as_array().unwrap().len(), 1, "{listed}");
}

/// One network holds at most ten waiting enrollments, whatever addresses within it ask:
/// the eleventh waits for the first to expire, an hour after it was asked (a link-only
/// enrollment waits an hour). Another network is not held up.
#[tokio::test]
async fn one_network_holds_ten_waiting_enrollments_at_most() {
    let db = TestDb::sqlite();
    let api = behind_a_proxy(&db).await;
    let (created, retry_after) = fill_network(&api, |n| format!("203.0.113.{}", n + 1)).await;
    assert_eq!(created, 10);
    assert!(
        (3500..=3600).contains(&retry_after),
        "until the first expires: {retry_after} s"
    );
    // An address named from the full network waits too: the cap is the network's.
    let (status, _, _) = enroll_from(&api, "203.0.113.99", naming("carol@example.com")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    for from in ["203.0.114.1", "2001:db8:0:1::1"] {
        let (status, body, _) = enroll_from(&api, from, link_only()).await;
        assert_eq!(status, StatusCode::CREATED, "{from}: {body}");
    }
    // A network's IPv6 neighbours within its /64 are the same network.
    let (created, _) = fill_network(&api, |n| format!("2001:db8:0:2::{:x}", n + 1)).await;
    assert_eq!(created, 10);
    let (status, _, _) = enroll_from(&api, "2001:db8:0:2:ffff::9", link_only()).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}

/// An address has at most twenty-five enrollments waiting for it, and one network names it
/// at most once every ten minutes: shutting an address takes floods from many networks,
/// one network's cooldown holds no other network, and a full address holds no other one.
#[tokio::test]
async fn an_address_waits_for_twenty_five_enrollments_from_as_many_networks_at_most() {
    let db = TestDb::sqlite();
    let api = behind_a_proxy(&db).await;
    let (status, _, _) = enroll_from(&api, "192.0.2.1", naming("dave@example.com")).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _, retry_after) = enroll_from(&api, "192.0.2.2", naming("Dave@Example.com")).await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "the same network within ten minutes"
    );
    assert!((590..=600).contains(&retry_after.unwrap()), "{retry_after:?}");
    let (status, _, _) = enroll_from(&api, "192.0.3.1", naming("dave@example.com")).await;
    assert_eq!(status, StatusCode::CREATED, "another network names it at once");

    for n in 0..25 {
        let (status, body, _) = enroll_from(&api, &format!("10.0.{n}.1"), naming("carol@example.com")).await;
        assert_eq!(status, StatusCode::CREATED, "network {n}: {body}");
    }
    let (status, problem, retry_after) = enroll_from(&api, "10.0.25.1", naming("carol@example.com")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{problem}");
    assert!(
        (86_300..=86_400).contains(&retry_after.unwrap()),
        "until the first expires, a day after: {retry_after:?}"
    );
    assert_eq!(
        problem["detail"],
        format!("too many requests; retry in {} s", retry_after.unwrap())
    );
    let (status, _, _) = enroll_from(&api, "10.0.25.1", naming("erin@example.com")).await;
    assert_eq!(status, StatusCode::CREATED, "another address from the same network");
}

/// An account that has not shown it reads its address's mail is no holder of the address:
/// enrollments naming the address are not listed for it, not decided by it (through the
/// API or the page), not in its audit trail and not mailed to it. Once it verifies the
/// address, they are.
#[tokio::test]
async fn an_unverified_account_neither_sees_nor_decides_enrollments_naming_its_address() {
    let db = TestDb::sqlite();
    let api = behind_a_proxy(&db).await;
    let victim = "victim@example.com";
    let mallory = api.signup(victim, "correct horse").await;
    let (status, enrolled, _) = enroll_from(&api, "198.51.100.7", naming(victim)).await;
    assert_eq!(status, StatusCode::CREATED);
    let id = enrollment_id(&enrolled);

    let (_, listed) = api.call("GET", "/v1/agents/enrollments", Some(&mallory), None).await;
    assert_eq!(listed["enrollments"], json!([]), "not listed");
    for decision in ["approve", "deny"] {
        let (status, _) = api
            .call(
                "POST",
                &format!("/v1/agents/enrollments/{id}/{decision}"),
                Some(&mallory),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{decision}");
    }
    let browser = api.signed_in_browser(victim, "correct horse").await;
    let page = browser
        .get(api.server.url(&format!("/enroll/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::NOT_FOUND, "the page without the link's code");
    let (_, trail) = api
        .call("GET", "/v1/audit/events?action=agent.enroll", Some(&mallory), None)
        .await;
    assert_eq!(trail["events"], json!([]), "not in its trail");

    // The mailbox's reader proves the address: the account holds it now.
    let token = api.verification_tokens(victim, 1).await.remove(0);
    let (status, verified) = api.verify_email(&token).await;
    assert_eq!(status, StatusCode::OK, "{verified}");
    let holder = verified["access_token"].as_str().unwrap();
    let (status, later, _) = enroll_from(&api, "192.0.2.8", naming(victim)).await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, listed) = api.call("GET", "/v1/agents/enrollments", Some(holder), None).await;
    assert_eq!(listed["enrollments"].as_array().unwrap().len(), 2, "{listed}");
    let (status, approved) = api
        .call(
            "POST",
            &format!("/v1/agents/enrollments/{id}/approve"),
            Some(holder),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    // Only the enrollment requested once the address was verified was mailed.
    let mails = mail::wait_for_count(&api.outbox(), victim, "Approve agent", 1).await;
    assert!(mails[0].body().contains(&enrollment_id(&later)), "{}", mails[0].raw);
    let (_, trail) = api
        .call("GET", "/v1/audit/events?action=agent.enroll", Some(holder), None)
        .await;
    assert_eq!(trail["events"].as_array().unwrap().len(), 1, "{trail}");
}
