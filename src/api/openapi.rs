//! GET /v1/openapi.json: keyward's own OpenAPI document, cut from the 1claw subset it is
//! wire-compatible with (`api/1claw-openapi-subset.json`, MIT, 1Claw Contributors).
//!
//! Built once, at first request: the operations of `IMPLEMENTED` are kept, the components
//! no kept operation reaches are dropped, `info` and `servers` describe this server, error
//! responses carry the media type keyward sends, and keyward's own operations are added.

use std::collections::{BTreeSet, HashMap};
use std::sync::LazyLock;

use axum::http::header;
use axum::response::IntoResponse;
use serde_json::{Map, Value, json};

/// The 1claw OpenAPI subset, byte for byte as published.
const SOURCE: &str = include_str!("../../api/1claw-openapi-subset.json");

/// Every operation keyward routes and documents: (method, OpenAPI path). An entry either
/// exists in `SOURCE` or is one of keyward's own (`own_paths`). A new endpoint is one line
/// here; `tests/openapi_fuzz.rs` then checks it is routed and fuzzes it.
pub const IMPLEMENTED: &[(&str, &str)] = &[
    ("get", "/v1/health"),
    ("get", "/v1/openapi.json"),
    ("post", "/v1/auth/signup"),
    ("post", "/v1/auth/verify-email"),
    ("post", "/v1/auth/verify-email/resend"),
    ("post", "/v1/auth/token"),
    ("delete", "/v1/auth/token"),
    ("post", "/v1/auth/refresh"),
    ("get", "/v1/auth/me"),
    ("patch", "/v1/auth/me"),
    ("delete", "/v1/auth/me"),
    ("post", "/v1/auth/change-password"),
    ("get", "/v1/auth/jwt-public-key"),
    ("get", "/.well-known/jwks.json"),
    ("post", "/v1/auth/agent-token"),
    ("post", "/v1/auth/api-keys"),
    ("get", "/v1/auth/api-keys"),
    ("delete", "/v1/auth/api-keys/{key_id}"),
    ("post", "/v1/auth/api-key-token"),
    ("post", "/v1/agents"),
    ("get", "/v1/agents"),
    ("get", "/v1/agents/me"),
    ("get", "/v1/agents/{agent_id}"),
    ("patch", "/v1/agents/{agent_id}"),
    ("delete", "/v1/agents/{agent_id}"),
    ("post", "/v1/agents/{agent_id}/rotate-key"),
    ("post", "/v1/agents/{agent_id}/transactions"),
    ("get", "/v1/agents/{agent_id}/transactions"),
    ("get", "/v1/agents/{agent_id}/transactions/{tx_id}"),
    ("post", "/v1/agents/{agent_id}/transactions/simulate"),
    ("post", "/v1/agents/{agent_id}/transactions/simulate-bundle"),
    ("post", "/v1/agents/{agent_id}/signing-keys"),
    ("get", "/v1/agents/{agent_id}/signing-keys"),
    ("post", "/v1/agents/{agent_id}/signing-keys/{chain}/rotate"),
    ("delete", "/v1/agents/{agent_id}/signing-keys/{chain}"),
    ("post", "/v1/agents/{agent_id}/signing-keys/{chain}/export"),
    ("post", "/v1/agents/{agent_id}/signing-keys/{chain}/import"),
    ("get", "/v1/agents/{agent_id}/signing-keys/{chain}/balance"),
    ("post", "/v1/agents/{agent_id}/transactions/sign"),
    ("post", "/v1/agents/{agent_id}/sign"),
    ("post", "/v1/agents/enroll"),
    ("get", "/v1/agents/enrollments"),
    ("post", "/v1/agents/enrollments/{enrollment_id}/approve"),
    ("post", "/v1/agents/enrollments/{enrollment_id}/deny"),
    ("get", "/v1/org/members"),
    ("patch", "/v1/org/members/{user_id}"),
    ("delete", "/v1/org/members/{user_id}"),
    ("post", "/v1/authz/explain"),
    ("get", "/v1/audit/events"),
    ("get", "/v1/audit/verify"),
    ("get", "/v1/audit/access-review"),
    ("get", "/v1/chains"),
    ("get", "/v1/chains/{identifier}"),
    ("get", "/v1/admin/chains"),
    ("post", "/v1/admin/chains"),
    ("put", "/v1/admin/chains/{chain_id}"),
    ("delete", "/v1/admin/chains/{chain_id}"),
    ("post", "/v1/secrets/{secret_id}/share"),
    ("get", "/v1/share/{share_id}"),
    ("delete", "/v1/share/{share_id}"),
    ("get", "/v1/shares/outbound"),
    ("get", "/v1/shares/inbound"),
    ("post", "/v1/shares/{share_id}/accept"),
    ("post", "/v1/shares/{share_id}/decline"),
    ("post", "/v1/vaults"),
    ("get", "/v1/vaults"),
    ("get", "/v1/vaults/{vault_id}"),
    ("delete", "/v1/vaults/{vault_id}"),
    ("post", "/v1/vaults/{vault_id}/policies"),
    ("get", "/v1/vaults/{vault_id}/policies"),
    ("put", "/v1/vaults/{vault_id}/policies/{policy_id}"),
    ("delete", "/v1/vaults/{vault_id}/policies/{policy_id}"),
    ("get", "/v1/vaults/{vault_id}/secrets"),
    ("put", "/v1/vaults/{vault_id}/secrets/{path}"),
    ("get", "/v1/vaults/{vault_id}/secrets/{path}"),
    ("delete", "/v1/vaults/{vault_id}/secrets/{path}"),
    ("get", "/v1/vaults/{vault_id}/secret-versions/{path}"),
    ("get", "/v1/vaults/{vault_id}/secret-version/{path}/{version}"),
    ("post", "/v1/vaults/{vault_id}/secret-version-disable/{path}/{version}"),
    ("post", "/v1/vaults/{vault_id}/secret-rotate/{path}"),
];

const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// The served document, serialized once.
static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    let source: Value = serde_json::from_str(SOURCE).expect("api/1claw-openapi-subset.json is JSON (unit-tested)");
    build(&source).to_string()
});

pub async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT.as_str())
}

/// The served document from the 1claw subset.
fn build(source: &Value) -> Value {
    let own = own_paths();
    let own_parameters = own_parameters();
    let own_responses = own_responses();
    let mut paths = Map::new();
    for (method, path) in IMPLEMENTED {
        let operation = source["paths"][path]
            .get(method)
            .or_else(|| own.get(path).and_then(|item| item.get(method)))
            .cloned();
        let Some(mut operation) = operation else { continue };
        for (_, _, parameter) in own_parameters.iter().filter(|(m, p, _)| (m, p) == (method, path)) {
            if let Some(Value::Array(parameters)) = operation
                .as_object_mut()
                .map(|fields| fields.entry("parameters").or_insert_with(|| json!([])))
            {
                parameters.push(parameter.clone());
            }
        }
        for (_, _, status, response) in own_responses.iter().filter(|(m, p, _, _)| (m, p) == (method, path)) {
            if let Some(Value::Object(responses)) = operation
                .as_object_mut()
                .map(|fields| fields.entry("responses").or_insert_with(|| json!({})))
            {
                responses.insert(status.to_string(), response.clone());
            }
        }
        let item = paths
            .entry(path.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(item) = item {
            item.insert(method.to_string(), operation);
        }
    }
    // Path-level fields (shared parameters, summaries) of the kept paths come along.
    for (path, item) in &mut paths {
        if let (Some(Value::Object(source_item)), Value::Object(item)) = (source["paths"].get(path), item) {
            for (key, value) in source_item {
                if !METHODS.contains(&key.as_str()) {
                    item.insert(key.clone(), value.clone());
                }
            }
        }
    }

    let mut components = source["components"].as_object().cloned().unwrap_or_default();
    if let Some(Value::Object(schemas)) = components.get_mut("schemas") {
        for (name, schema) in own_schemas() {
            schemas.insert(name.into(), schema);
        }
    }
    let mut paths = Value::Object(paths);
    let reachable = reachable_components(&paths, &components);
    for (section, entries) in components.iter_mut() {
        // securitySchemes are named by `security`, never by $ref: they all stay.
        if section == "securitySchemes" {
            continue;
        }
        if let Value::Object(entries) = entries {
            entries.retain(|name, _| reachable.contains(&format!("#/components/{section}/{name}")));
        }
    }
    components.retain(|_, entries| entries.as_object().is_none_or(|e| !e.is_empty()));
    let mut components = Value::Object(components);
    problem_media_type(&mut paths);
    problem_media_type(&mut components);

    let mut document = Map::new();
    document.insert("openapi".into(), source["openapi"].clone());
    document.insert(
        "info".into(),
        json!({
            "title": "keyward",
            "version": env!("CARGO_PKG_VERSION"),
            "description": concat!(
                "keyward, a self-hosted secrets vault and signing proxy for AI agents. It follows the ",
                "1claw REST API v1: the operations below are those of the 1claw OpenAPI specification ",
                "(0.53.2, MIT License, Copyright (c) 2026 1Claw Contributors) that keyward implements, ",
                "plus keyward's own (tag `keyward`). Every error is RFC 7807 application/problem+json.",
            ),
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        }),
    );
    document.insert("servers".into(), json!([{"url": "/"}]));
    document.insert("paths".into(), paths);
    document.insert("components".into(), components);
    if let Some(security) = source.get("security") {
        document.insert("security".into(), security.clone());
    }
    Value::Object(document)
}

/// The component refs (`#/components/<section>/<name>`) reachable from `root`, following
/// refs through the components themselves.
fn reachable_components(root: &Value, components: &Map<String, Value>) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut pending = Vec::new();
    collect_refs(root, &mut pending);
    while let Some(reference) = pending.pop() {
        if !seen.insert(reference.clone()) {
            continue;
        }
        if let Some(target) = resolve(components, &reference) {
            collect_refs(target, &mut pending);
        }
    }
    seen
}

fn collect_refs(value: &Value, into: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("$ref", Value::String(reference)) => into.push(reference.clone()),
                    _ => collect_refs(value, into),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_refs(item, into)),
        _ => {}
    }
}

fn resolve<'a>(components: &'a Map<String, Value>, reference: &str) -> Option<&'a Value> {
    let (section, name) = reference.strip_prefix("#/components/")?.split_once('/')?;
    components.get(section)?.get(name)
}

/// The 1claw document lists its RFC 7807 errors as `application/json`; keyward sends them as
/// `application/problem+json`, and its document says so.
fn problem_media_type(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::Object(content)) = map.get_mut("content") {
                let is_problem = content
                    .get("application/json")
                    .is_some_and(|media| media["schema"]["$ref"] == "#/components/schemas/ProblemDetails");
                if is_problem && let Some(media) = content.remove("application/json") {
                    content.insert("application/problem+json".into(), media);
                }
            }
            map.values_mut().for_each(problem_media_type);
        }
        Value::Array(items) => items.iter_mut().for_each(problem_media_type),
        _ => {}
    }
}

/// keyward's own operations, which 1claw does not have, written in the style of the 1claw
/// document.
fn own_paths() -> HashMap<&'static str, Value> {
    let problem = |description: &str| {
        json!({
            "description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ProblemDetails"}}}
        })
    };
    HashMap::from([
        (
            "/v1/auth/verify-email/resend",
            json!({
                "post": {
                    "tags": ["keyward"],
                    "summary": "Mail a new email verification token",
                    "operationId": "keywardResendVerification",
                    "description": concat!(
                        "Mails a new token to the signed-in account's address; the earlier one no longer works. ",
                        "One a minute (429 with Retry-After); 409 once the address is verified.\n"
                    ),
                    "responses": {
                        "202": {
                            "description": "Mailed",
                            "content": {"application/json": {"schema": {
                                "type": "object",
                                "properties": {"message": {"type": "string"}, "email": {"type": "string"}}
                            }}}
                        },
                        "401": problem("No valid credentials"),
                        "409": problem("The address is already verified"),
                        "429": problem("A token was mailed less than a minute ago")
                    }
                }
            }),
        ),
        (
            "/v1/health",
            json!({
                "get": {
                    "tags": ["keyward"],
                    "summary": "Liveness, and how far the read models have folded the log",
                    "operationId": "keywardHealth",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "The service is up",
                            "content": {"application/json": {
                                "schema": {"$ref": "#/components/schemas/KeywardHealthResponse"}
                            }}
                        }
                    }
                }
            }),
        ),
        (
            "/v1/openapi.json",
            json!({
                "get": {
                    "tags": ["keyward"],
                    "summary": "This OpenAPI document",
                    "operationId": "keywardOpenApi",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "The OpenAPI 3.1 document of this server",
                            "content": {"application/json": {"schema": {"type": "object"}}}
                        }
                    }
                }
            }),
        ),
        (
            "/v1/authz/explain",
            json!({
                "post": {
                    "tags": ["keyward"],
                    "summary": "Explain how an access to a secret would be decided",
                    "operationId": "keywardExplainAccess",
                    "description": concat!(
                        "For the humans who manage the vault: runs the same decision as a real request ",
                        "(vault binding, scope ceiling, policies, owner bypass) for a principal, a path and a ",
                        "permission, and tells which layer decides and why. Changes nothing and records nothing.\n"
                    ),
                    "requestBody": {
                        "required": true,
                        "content": {"application/json": {
                            "schema": {"$ref": "#/components/schemas/KeywardExplainRequest"}
                        }}
                    },
                    "responses": {
                        "200": {
                            "description": "The decision",
                            "content": {"application/json": {
                                "schema": {"$ref": "#/components/schemas/KeywardDecision"}
                            }}
                        },
                        "400": {"$ref": "#/components/responses/BadRequest"},
                        "401": {"$ref": "#/components/responses/Unauthorized"},
                        "403": {"$ref": "#/components/responses/Forbidden"},
                        "404": {"$ref": "#/components/responses/NotFound"}
                    }
                }
            }),
        ),
        (
            "/v1/audit/access-review",
            json!({
                "get": {
                    "tags": ["keyward"],
                    "summary": "Who could reach a secret at a moment",
                    "operationId": "keywardAccessReview",
                    "description": concat!(
                        "Every principal that could read or write the secret at `at` (default now), from the ",
                        "log replayed up to that moment. For the vault's owner and the org's owners and ",
                        "admins, checked before the replay; a vault the org never had is 404. Ten per ",
                        "organization, then one every 10 seconds.\n"
                    ),
                    "parameters": [
                        {"name": "vault_id", "in": "query", "required": true,
                         "schema": {"type": "string", "format": "uuid"}},
                        {"name": "path", "in": "query", "required": true, "schema": {"type": "string"},
                         "description": "Secret path (e.g. \"db/credentials\")"},
                        {"name": "at", "in": "query", "required": false,
                         "schema": {"type": "string", "format": "date-time"}}
                    ],
                    "responses": {
                        "200": {
                            "description": "The principals with access",
                            "content": {"application/json": {
                                "schema": {"$ref": "#/components/schemas/KeywardAccessReviewResponse"}
                            }}
                        },
                        "400": {"$ref": "#/components/responses/BadRequest"},
                        "401": {"$ref": "#/components/responses/Unauthorized"},
                        "403": problem("Not the vault's owner nor an owner or admin of the org"),
                        "404": {"$ref": "#/components/responses/NotFound"},
                        "429": problem("The organization's access reviews ran out (Retry-After)"),
                        "503": problem("The server is replaying the log for other requests (Retry-After)")
                    }
                }
            }),
        ),
        (
            "/v1/agents/enrollments",
            json!({
                "get": {
                    "tags": ["keyward"],
                    "summary": "Agent enrollments of your organization",
                    "operationId": "keywardListEnrollments",
                    "description": concat!(
                        "Enrollments that name a member of the caller's organization by email, and those ",
                        "approved into it; newest first. Pending ones expire 24 hours after the request.\n"
                    ),
                    "responses": {
                        "200": {
                            "description": "The enrollments",
                            "content": {"application/json": {
                                "schema": {"$ref": "#/components/schemas/KeywardEnrollmentList"}
                            }}
                        },
                        "401": {"$ref": "#/components/responses/Unauthorized"},
                        "403": {"$ref": "#/components/responses/Forbidden"}
                    }
                }
            }),
        ),
        (
            "/v1/agents/enrollments/{enrollment_id}/approve",
            json!({
                "post": {
                    "tags": ["keyward"],
                    "summary": "Approve an agent's enrollment",
                    "operationId": "keywardApproveEnrollment",
                    "description": concat!(
                        "Registers the agent in the caller's organization with no access (no policies, no ",
                        "scopes). The API key is in this response, once, and is also emailed to the caller. ",
                        "A second decision on the same enrollment is 409; an expired one is 410.\n"
                    ),
                    "parameters": [enrollment_id_parameter()],
                    "responses": {
                        "200": {
                            "description": "The agent and its one-time API key",
                            "content": {"application/json": {
                                "schema": {"$ref": "#/components/schemas/AgentCreatedResponse"}
                            }}
                        },
                        "400": {"$ref": "#/components/responses/BadRequest"},
                        "401": {"$ref": "#/components/responses/Unauthorized"},
                        "403": {"$ref": "#/components/responses/Forbidden"},
                        "404": {"$ref": "#/components/responses/NotFound"},
                        "409": {"$ref": "#/components/responses/Conflict"},
                        "410": problem("The enrollment expired")
                    }
                }
            }),
        ),
        (
            "/v1/agents/enrollments/{enrollment_id}/deny",
            json!({
                "post": {
                    "tags": ["keyward"],
                    "summary": "Deny an agent's enrollment",
                    "operationId": "keywardDenyEnrollment",
                    "parameters": [enrollment_id_parameter()],
                    "responses": {
                        "200": {
                            "description": "Denied; no agent was created",
                            "content": {"application/json": {
                                "schema": {"$ref": "#/components/schemas/KeywardEnrollmentDenied"}
                            }}
                        },
                        "400": {"$ref": "#/components/responses/BadRequest"},
                        "401": {"$ref": "#/components/responses/Unauthorized"},
                        "403": {"$ref": "#/components/responses/Forbidden"},
                        "404": {"$ref": "#/components/responses/NotFound"},
                        "409": {"$ref": "#/components/responses/Conflict"},
                        "410": problem("The enrollment expired")
                    }
                }
            }),
        ),
    ])
}

/// Parameters keyward takes beyond 1claw's on 1claw's operations: (method, path, parameter).
fn own_parameters() -> Vec<(&'static str, &'static str, Value)> {
    let raw_signing_confirmation = json!({
        "name": "X-Auth-Confirm",
        "in": "header",
        "required": false,
        "description": concat!(
            "keyward: the human's account password, required (with `raw_signing_acknowledgement`: ",
            "\"RAW SIGNING HANDS OVER THE KEY\" in the body) when the request turns `raw_signing_enabled` ",
            "on. An agent that has any digest signed can sign any transaction with its keys, outside every ",
            "guardrail; turning it on is audited as `agent.enable_raw_signing`.",
        ),
        "schema": {"type": "string"},
    });
    let transactions_page = [
        json!({
            "name": "limit",
            "in": "query",
            "required": false,
            "description": "keyward: how many transactions, newest first (1 to 1000; 100 if not given). A page shorter than this is the last.",
            "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
        }),
        json!({
            "name": "offset",
            "in": "query",
            "required": false,
            "description": "keyward: how many of the newest transactions to skip.",
            "schema": {"type": "integer", "minimum": 0, "default": 0},
        }),
    ];
    let mut parameters = vec![
        ("post", "/v1/agents", raw_signing_confirmation.clone()),
        ("patch", "/v1/agents/{agent_id}", raw_signing_confirmation),
        (
            "post",
            "/v1/agents/{agent_id}/transactions",
            json!({
                "name": "Prefer",
                "in": "header",
                "required": false,
                "description": concat!(
                    "keyward: `respond-async` (RFC 7240) answers once the transaction is signed and durably ",
                    "queued for broadcast, with status `signed` and `Preference-Applied: respond-async`, ",
                    "instead of waiting for the node; the outcome (`broadcast` or `failed`) shows on GET. ",
                    "A transaction still queued when keyward stops is sent when it starts again.",
                ),
                "schema": {"type": "string"},
            }),
        ),
        (
            "post",
            "/v1/agents/{agent_id}/transactions/sign",
            json!({
                "name": "Idempotency-Key",
                "in": "header",
                "required": false,
                "description": concat!(
                    "keyward: as on POST /v1/agents/{agent_id}/transactions. A repeat of the same request ",
                    "within 24 hours gets the first answer and signs nothing; the key used for a different ",
                    "request is 422.",
                ),
                "schema": {"type": "string"},
            }),
        ),
    ];
    for parameter in transactions_page {
        parameters.push(("get", "/v1/agents/{agent_id}/transactions", parameter));
    }
    parameters
}

/// Responses keyward gives on 1claw's operations that 1claw's document leaves out or
/// describes otherwise: (method, path, status, response), replacing any of that status.
fn own_responses() -> Vec<(&'static str, &'static str, &'static str, Value)> {
    // 1claw documents a reverted simulation as a TransactionResponse; keyward answers it,
    // like every error, as a problem.
    let problem = |description: &str| {
        json!({
            "description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ProblemDetails"}}}
        })
    };
    let unprocessable = problem(concat!(
        "Nothing was signed: the simulation reverted (`simulate_first`), the node cannot estimate ",
        "the call (it reverts), or the Idempotency-Key was used in the last 24 hours for a different ",
        "request (the other endpoint, or another chain, `to`, `value`, `data`, `signing_key_path`, ",
        "`nonce`, gas, fees or `simulate_first`).",
    ));
    let mut responses = vec![
        (
            "post",
            "/v1/agents/{agent_id}/transactions",
            "422",
            unprocessable.clone(),
        ),
        (
            "post",
            "/v1/agents/{agent_id}/transactions/sign",
            "422",
            unprocessable.clone(),
        ),
        ("post", "/v1/agents/{agent_id}/sign", "422", unprocessable),
        (
            "delete",
            "/v1/auth/me",
            "403",
            problem(concat!(
                "Not the token of a sign-in with a password (an API key, a token exchanged for one, an ",
                "agent), or X-Auth-Confirm (the account's password) missing or wrong.",
            )),
        ),
        (
            "delete",
            "/v1/auth/me",
            "409",
            problem("The organization has other members: its vaults and agents are theirs too."),
        ),
        (
            "post",
            "/v1/auth/signup",
            "409",
            problem("An account with this email already exists."),
        ),
        (
            "post",
            "/v1/auth/signup",
            "429",
            problem("This client's sign-ups ran out: ten, then one a minute (Retry-After)."),
        ),
        (
            "post",
            "/v1/auth/token",
            "429",
            problem(concat!(
                "Not checked: this client's refused sign-ins ran out (twenty, then one every 5 seconds; ",
                "a right password gives back what it took), or it has two passwords being checked.",
            )),
        ),
        (
            "get",
            "/v1/audit/verify",
            "400",
            problem("`limit` is not between 1 and 10000."),
        ),
        (
            "get",
            "/v1/audit/verify",
            "429",
            problem(concat!(
                "The organization's verifications ran out (five, then one a minute), or a platform ",
                "administrator's walks of the whole log (two, then one every 5 minutes).",
            )),
        ),
        (
            "get",
            "/v1/audit/verify",
            "503",
            problem("The audit index is catching up, or the server is walking the log for others (Retry-After)."),
        ),
        (
            "patch",
            "/v1/org/members/{user_id}",
            "400",
            problem("The body is not an UpdateMemberRoleRequest, or the role is not owner, admin or member."),
        ),
    ];
    // A request that turns raw digest signing on asks what an export of the key asks.
    for (method, path) in [("post", "/v1/agents"), ("patch", "/v1/agents/{agent_id}")] {
        responses.extend([
            (
                method,
                path,
                "400",
                problem(concat!(
                    "The body is invalid, or it turns `raw_signing_enabled` on without ",
                    "`raw_signing_acknowledgement`: \"RAW SIGNING HANDS OVER THE KEY\".",
                )),
            ),
            (
                method,
                path,
                "403",
                problem(concat!(
                    "An agent, or a scoped API key or a token issued for one; or the request turns ",
                    "`raw_signing_enabled` on and X-Auth-Confirm (the account's password) is missing or wrong.",
                )),
            ),
        ]);
    }
    for method in ["patch", "delete"] {
        let path = "/v1/org/members/{user_id}";
        responses.extend([
            (
                method,
                path,
                "403",
                problem(concat!(
                    "Not a human owner or admin of the organization (an agent, a member, a scoped API key ",
                    "or a token issued for one), or an admin making, changing or removing an owner.",
                )),
            ),
            (
                method,
                path,
                "404",
                problem("No member of the caller's organization has this id."),
            ),
            (
                method,
                path,
                "409",
                problem(concat!(
                    "The member is the organization's last owner: it must keep one. The last owner leaves ",
                    "by deleting the account (DELETE /v1/auth/me).",
                )),
            ),
        ]);
    }
    responses
}

fn enrollment_id_parameter() -> Value {
    json!({"name": "enrollment_id", "in": "path", "required": true, "schema": {"type": "string", "format": "uuid"}})
}

fn own_schemas() -> Vec<(&'static str, Value)> {
    let principal_type = json!({"type": "string", "enum": ["user", "agent"]});
    let permission = json!({"type": "string", "enum": ["read", "write"]});
    let nullable_uuid = json!({"type": ["string", "null"], "format": "uuid"});
    let enrollment_status = json!({"type": "string", "enum": ["pending", "approved", "denied", "expired"]});
    vec![
        (
            "KeywardEnrollment",
            json!({
                "type": "object",
                "required": ["id", "name", "status", "requested_from", "created_at", "expires_at"],
                "properties": {
                    "id": {"type": "string", "format": "uuid"},
                    "name": {"type": "string"},
                    "description": {"type": "string"},
                    "status": enrollment_status,
                    "human_email": {"type": "string", "format": "email"},
                    "requested_from": {"type": "string", "description": "The client address of the request"},
                    "created_at": {"type": "string", "format": "date-time"},
                    "expires_at": {"type": "string", "format": "date-time"},
                    "agent_id": {"type": "string", "format": "uuid", "description": "Once approved"},
                    "decided_at": {"type": "string", "format": "date-time"}
                }
            }),
        ),
        (
            "KeywardEnrollmentList",
            json!({
                "type": "object",
                "required": ["enrollments"],
                "properties": {
                    "enrollments": {"type": "array", "items": {"$ref": "#/components/schemas/KeywardEnrollment"}}
                }
            }),
        ),
        (
            "KeywardEnrollmentDenied",
            json!({
                "type": "object",
                "required": ["id", "status"],
                "properties": {
                    "id": {"type": "string", "format": "uuid"},
                    "status": enrollment_status
                }
            }),
        ),
        (
            "KeywardHealthResponse",
            json!({
                "type": "object",
                "required": ["status", "version", "log_position"],
                "properties": {
                    "status": {"type": "string", "enum": ["ok"]},
                    "version": {"type": "string", "description": "keyward's version"},
                    "log_position": {
                        "type": "integer",
                        "minimum": 0,
                        "description": "Position of the last event of the log the read models include"
                    }
                }
            }),
        ),
        (
            "KeywardExplainRequest",
            json!({
                "type": "object",
                "required": ["vault_id", "path", "principal_type", "principal_id", "permission"],
                "properties": {
                    "vault_id": {"type": "string", "format": "uuid"},
                    "path": {"type": "string", "description": "Secret path (e.g. \"db/credentials\")"},
                    "principal_type": principal_type,
                    "principal_id": {"type": "string", "format": "uuid"},
                    "permission": permission,
                    "client_ip": {
                        "type": "string",
                        "description": "The client address to judge ip_allowlists by; the caller's own if absent"
                    },
                    "at": {
                        "type": "string",
                        "format": "date-time",
                        "description": "The moment to judge expiry and time windows at; now if absent"
                    }
                }
            }),
        ),
        (
            "KeywardDecision",
            json!({
                "type": "object",
                "required": ["allowed", "layer", "policy_id", "reason"],
                "properties": {
                    "allowed": {"type": "boolean"},
                    "layer": {
                        "type": "string",
                        "enum": ["vault_binding", "scope_ceiling", "policy", "owner_bypass"],
                        "description": "The layer that decided"
                    },
                    "policy_id": nullable_uuid,
                    "reason": {"type": "string"}
                }
            }),
        ),
        (
            "KeywardAccessReviewResponse",
            json!({
                "type": "object",
                "required": ["vault_id", "path", "at", "principals"],
                "properties": {
                    "vault_id": {"type": "string", "format": "uuid"},
                    "path": {"type": "string"},
                    "at": {"type": "string", "format": "date-time"},
                    "principals": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["principal_type", "principal_id", "permissions", "policy_id"],
                            "properties": {
                                "principal_type": principal_type,
                                "principal_id": {"type": "string", "format": "uuid"},
                                "permissions": {"type": "array", "items": permission},
                                "policy_id": nullable_uuid,
                                "conditions": {"type": "object", "additionalProperties": true}
                            }
                        }
                    }
                }
            }),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> Value {
        serde_json::from_str(SOURCE).unwrap()
    }

    fn served() -> Value {
        serde_json::from_str(&DOCUMENT).unwrap()
    }

    #[test]
    fn every_implemented_operation_is_in_the_1claw_spec_or_keywards_own() {
        let source = source();
        let own = own_paths();
        for (method, path) in IMPLEMENTED {
            assert!(METHODS.contains(method), "{method} {path}: methods are lower case");
            let in_source = source["paths"][path].get(method).is_some();
            let in_own = own.get(path).is_some_and(|item| item.get(method).is_some());
            assert!(
                in_source ^ in_own,
                "{method} {path}: must be in api/1claw-openapi-subset.json or keyward's own, exactly one"
            );
        }
        let mut unique = BTreeSet::new();
        for entry in IMPLEMENTED {
            assert!(unique.insert(entry), "{entry:?} is listed twice");
        }
    }

    #[test]
    fn every_own_operation_is_listed_and_own_schemas_do_not_shadow_1claws() {
        for (path, item) in own_paths() {
            for method in item.as_object().unwrap().keys() {
                assert!(
                    IMPLEMENTED.contains(&(method.as_str(), path)),
                    "{method} {path} is written but not in IMPLEMENTED"
                );
            }
        }
        let source = source();
        for (name, _) in own_schemas() {
            assert!(
                source["components"]["schemas"].get(name).is_none(),
                "{name} exists in 1claw's spec"
            );
        }
    }

    #[test]
    fn the_served_document_holds_exactly_the_implemented_operations() {
        let document = served();
        let mut served_ops = BTreeSet::new();
        for (path, item) in document["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                if METHODS.contains(&method.as_str()) {
                    served_ops.insert((method.clone(), path.clone()));
                }
            }
        }
        let implemented: BTreeSet<_> = IMPLEMENTED
            .iter()
            .map(|(method, path)| (method.to_string(), path.to_string()))
            .collect();
        assert_eq!(served_ops, implemented);
        assert_eq!(document["info"]["title"], "keyward");
        assert_eq!(document["info"]["version"], env!("CARGO_PKG_VERSION"));
        assert!(document["info"]["description"].as_str().unwrap().contains("1claw"));
        assert_eq!(document["servers"], json!([{"url": "/"}]));
        assert_eq!(document["openapi"], "3.1.0");
        assert_eq!(
            document["paths"]["/v1/health"]["get"]["responses"]["200"]["content"]["application/json"]["schema"],
            json!({"$ref": "#/components/schemas/KeywardHealthResponse"})
        );
    }

    #[test]
    fn the_served_document_has_no_dangling_ref_and_no_unused_component() {
        let document = served();
        let components = document["components"].as_object().unwrap();
        let mut refs = Vec::new();
        collect_refs(&document, &mut refs);
        assert!(!refs.is_empty());
        for reference in &refs {
            assert!(resolve(components, reference).is_some(), "dangling $ref {reference}");
        }
        let reachable = reachable_components(&document["paths"], components);
        for (section, entries) in components {
            if section == "securitySchemes" {
                continue;
            }
            for name in entries.as_object().unwrap().keys() {
                let reference = format!("#/components/{section}/{name}");
                assert!(reachable.contains(&reference), "{reference} is served but unused");
            }
        }
        // The subset's operations keyward does not serve yet are left out, and the schemas
        // only they reach with them.
        let subset: Value = serde_json::from_str(SOURCE).unwrap();
        for (path, item) in subset["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                assert_eq!(
                    document["paths"][path].get(method).is_some(),
                    IMPLEMENTED.contains(&(method.as_str(), path.as_str())),
                    "{method} {path}"
                );
            }
        }
        let pruned: Vec<&String> = subset["components"]["schemas"]
            .as_object()
            .unwrap()
            .keys()
            .filter(|name| components["schemas"].get(name.as_str()).is_none())
            .collect();
        assert!(!pruned.is_empty(), "some schema of an unserved operation is pruned");
    }

    #[test]
    fn keywards_own_parameters_join_1claws_on_the_same_operation() {
        let document = served();
        let names: Vec<&str> = document["paths"]["/v1/agents/{agent_id}/transactions"]["post"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|parameter| parameter["name"].as_str().unwrap_or("(a $ref)"))
            .collect();
        assert!(names.contains(&"Idempotency-Key"), "{names:?}");
        assert!(names.contains(&"Prefer"), "{names:?}");
    }

    #[test]
    fn a_key_used_for_a_different_request_is_documented_as_a_422_problem_on_submit_and_sign() {
        let document = served();
        for path in [
            "/v1/agents/{agent_id}/transactions",
            "/v1/agents/{agent_id}/transactions/sign",
        ] {
            let operation = &document["paths"][path]["post"];
            let unprocessable = &operation["responses"]["422"];
            assert_eq!(
                unprocessable["content"],
                json!({"application/problem+json": {"schema": {"$ref": "#/components/schemas/ProblemDetails"}}}),
                "{path}"
            );
            assert!(
                unprocessable["description"]
                    .as_str()
                    .unwrap()
                    .contains("Idempotency-Key was used in the last 24 hours for a different request"),
                "{path}: {unprocessable}"
            );
            let parameters = operation["parameters"].as_array().unwrap();
            assert_eq!(
                parameters.iter().filter(|p| p["name"] == "Idempotency-Key").count(),
                1,
                "{path}: {parameters:?}"
            );
        }
    }

    #[test]
    fn errors_are_documented_as_problem_json() {
        let document = served();
        assert_eq!(
            document["components"]["responses"]["NotFound"]["content"]["application/problem+json"]["schema"],
            json!({"$ref": "#/components/schemas/ProblemDetails"})
        );
        assert!(
            !document
                .to_string()
                .contains(r##""application/json":{"schema":{"$ref":"#/components/schemas/ProblemDetails"}}"##)
        );
    }
}
