"""Drives a running keyward with the official 1claw Python SDK (PyPI `oneclaw`), changing
nothing but its base URL: what a 1claw user's code does against keyward.

    python tests/sdk/oneclaw_sdk.py http://127.0.0.1:8080

The server must be fresh (no account yet). Every step asserts exact values; the first failing
step prints its traceback and the script exits 1. tests/python_sdk.rs runs it; scripts/test
installs the SDK into .tools/venv.

Two lists keep steps out of the verdict, each with its reason:
- NOT_IMPLEMENTED_YET: steps whose endpoints keyward does not serve yet. Such a step is skipped
  while any endpoint it names is missing from the server's own GET /v1/openapi.json, and runs
  from the moment the server lists them all: adding an endpoint turns its SDK step on.
- KNOWN_WIRE_MISMATCHES: steps that fail because what the SDK sends or expects differs from
  what keyward does. They run and must fail (strict expected failure): once one passes, the
  script fails and asks for its entry to be removed.
"""

from __future__ import annotations

import datetime
import json
import sys
import traceback
import urllib.request
import uuid
from typing import Any, Callable

import oneclaw
from oneclaw import AuthError, NotFoundError, OneclawError, ValidationError, create_client

# step name -> the endpoints it needs ("METHOD /openapi/path"); reason: endpoint not implemented yet.
NOT_IMPLEMENTED_YET: dict[str, list[str]] = {
}

# step name -> what differs between the SDK and keyward.
KNOWN_WIRE_MISMATCHES: dict[str, str] = {
    "refresh_with_the_sdk": (
        "oneclaw's auth.refresh() POSTs /v1/auth/refresh with the access token as Bearer and no body; "
        "keyward (like the 1claw spec) wants {\"refresh_token\": ...} and answers 400"
    ),
}

EMAIL = "ada@example.com"
PASSWORD = "correct horse battery"
NEW_PASSWORD = "staple battery horse"


class State:
    """What the steps hand on to each other."""

    base_url: str
    client: oneclaw.OneclawClient
    user_id: str
    refresh_token: str
    vault_id: str
    secret_id: str
    agent_id: str
    agent_key: str
    policy_id: str


S = State()
STEPS: list[tuple[str, Callable[[], None]]] = []


def step(function: Callable[[], None]) -> Callable[[], None]:
    STEPS.append((function.__name__, function))
    return function


# -- assertions ----------------------------------------------------------------------------


def ok(response: Any, status: int) -> Any:
    assert response.error is None, f"expected {status}, got {response.meta.status}: {response.error}"
    assert response.meta.status == status, f"expected {status}, got {response.meta.status}: {response.data}"
    return response.data


def fails(response: Any, status: int, error_type: str, message: str | None = None) -> None:
    assert response.error is not None, f"expected an error {status}, got {response.meta.status}: {response.data}"
    assert (response.meta.status, response.error.type) == (status, error_type), (
        f"expected {status} {error_type}, got {response.meta.status} {response.error}"
    )
    if message is not None:
        assert response.error.message == message, f"expected message {message!r}, got {response.error.message!r}"


def raises(error: type[OneclawError], status: int, call: Callable[[], Any]) -> OneclawError:
    try:
        result = call()
    except error as raised:
        assert raised.status == status, f"expected {error.__name__} {status}, got {raised.status}: {raised}"
        return raised
    raise AssertionError(f"expected {error.__name__} {status}, got a result: {result!r}")


def is_uuid(value: Any) -> bool:
    try:
        return str(uuid.UUID(value)) == value
    except (TypeError, ValueError):
        return False


def recent(timestamp: str) -> bool:
    """An RFC 3339 time within the last ten minutes."""
    moment = datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    age = datetime.datetime.now(datetime.timezone.utc) - moment
    return datetime.timedelta(seconds=-5) <= age <= datetime.timedelta(minutes=10)


def user_client() -> oneclaw.OneclawClient:
    return create_client(base_url=S.base_url)


# -- humans --------------------------------------------------------------------------------


@step
def sign_up() -> None:
    S.client = user_client()
    data = ok(S.client.auth.signup(" Ada@Example.com ", PASSWORD, display_name="Ada"), 200)
    assert data["email"] == EMAIL, data
    assert data["token_type"] == "Bearer", data
    assert data["access_token"].count(".") == 2, data
    fails(S.client.auth.signup(EMAIL, PASSWORD), 409, "unknown", "an account with this email already exists")
    fails(S.client.auth.signup("bob@example.com", "short"), 400, "validation_error")


@step
def log_in() -> None:
    fails(S.client.auth.login(EMAIL, "wrong password"), 401, "auth_error", "invalid or missing credentials")
    fails(S.client.auth.me(), 401, "auth_error")
    data = ok(S.client.auth.login(EMAIL, PASSWORD), 200)
    assert (data["token_type"], data["expires_in"]) == ("Bearer", 3600), data
    assert S.client._http.get_token() == data["access_token"], "the SDK keeps the token it logged in with"
    S.refresh_token = data["refresh_token"]


@step
def profile() -> None:
    me = ok(S.client.auth.me(), 200)
    assert is_uuid(me["id"]), me
    S.user_id = me["id"]
    assert (me["email"], me["display_name"], me["role"], me["auth_method"]) == (EMAIL, "Ada", "owner", "password"), me
    assert recent(me["created_at"]), me
    members = ok(S.client.org.members(), 200)["members"]
    assert [(m["id"], m["email"], m["role"]) for m in members] == [(S.user_id, EMAIL, "owner")], members


@step
def refresh_with_the_sdk() -> None:
    data = ok(S.client.auth.refresh(), 200)
    assert data["token_type"] == "Bearer", data
    ok(S.client.auth.me(), 200)


@step
def change_password() -> None:
    fails(S.client.auth.change_password("not my password", NEW_PASSWORD), 400, "validation_error")
    assert ok(S.client.auth.change_password(PASSWORD, NEW_PASSWORD), 204) is None
    fails(user_client().auth.login(EMAIL, PASSWORD), 401, "auth_error")
    ok(S.client.auth.login(EMAIL, NEW_PASSWORD), 200)


@step
def revoke_token() -> None:
    other = user_client()
    ok(other.auth.login(EMAIL, NEW_PASSWORD), 200)
    assert ok(other.auth.revoke_token(), 204) is None
    fails(other.auth.me(), 401, "auth_error")
    ok(S.client.auth.me(), 200)  # only the revoked token stops working


@step
def personal_api_keys() -> None:
    created = ok(S.client.api_keys.create("ci key"), 201)
    key = created["api_key"]
    assert key.startswith("1ck_"), created
    assert created["key"]["name"] == "ci key" and created["key"]["is_active"] is True, created
    assert key.startswith(created["key"]["key_prefix"]), created
    listed = ok(S.client.api_keys.list(), 200)["keys"]
    assert [k["id"] for k in listed] == [created["key"]["id"]], listed
    assert key not in json.dumps(listed), "a listing never shows the key itself"

    # create_client(api_key="1ck_…") exchanges the key for a token at /v1/auth/api-key-token.
    with_key = create_client(base_url=S.base_url, api_key=key)
    assert with_key._http.get_token() is not None, "the SDK exchanged the 1ck_ key for a token"
    assert ok(with_key.auth.me(), 200)["email"] == EMAIL
    exchanged = ok(user_client().auth.api_key_token(key), 200)
    assert exchanged["token_type"] == "Bearer", exchanged

    assert ok(S.client.api_keys.delete(created["key"]["id"]), 204) is None
    assert ok(S.client.api_keys.list(), 200)["keys"] == []
    fails(user_client().auth.api_key_token(key), 401, "auth_error")


# -- vaults and secrets --------------------------------------------------------------------


@step
def vaults() -> None:
    vault = ok(S.client.vaults.create("prod", "Production secrets"), 201)
    S.vault_id = vault["id"]
    assert is_uuid(S.vault_id), vault
    assert (vault["name"], vault["description"], vault["created_by"], vault["created_by_type"]) == (
        "prod",
        "Production secrets",
        S.user_id,
        "user",
    ), vault
    assert recent(vault["created_at"]), vault
    assert ok(S.client.vaults.get(S.vault_id), 200) == vault
    assert ok(S.client.vaults.list(), 200) == {"vaults": [vault]}
    fails(S.client.vaults.get(str(uuid.uuid4())), 404, "not_found", "vault not found")
    fails(S.client.vaults.create(""), 400, "validation_error")


@step
def secrets() -> None:
    created = ok(S.client.secrets.set(S.vault_id, "db/password", "hunter2 s3cret", type="password"), 201)
    assert (created["path"], created["type"], created["version"]) == ("db/password", "password", 1), created
    assert "value" not in created, "a write never echoes the value"
    S.secret_id = created["id"]
    again = ok(S.client.secrets.set(S.vault_id, "db/password", "hunter3 s3cret", type="password"), 201)
    assert (again["id"], again["version"]) == (S.secret_id, 2), again
    ok(S.client.secrets.set(S.vault_id, "db/url", "postgres://db.internal/app"), 201)  # SDK default type "generic"
    ok(S.client.secrets.set(S.vault_id, "app/flag", "on", metadata={"owner": "ada"}), 201)

    secret = ok(S.client.secrets.get(S.vault_id, "db/password"), 200)
    assert (secret["id"], secret["path"], secret["type"], secret["value"], secret["version"]) == (
        S.secret_id,
        "db/password",
        "password",
        "hunter3 s3cret",
        2,
    ), secret
    assert ok(S.client.secrets.get(S.vault_id, "db/url"), 200)["type"] == "generic"
    assert ok(S.client.secrets.get(S.vault_id, "app/flag"), 200)["metadata"] == {"owner": "ada"}

    listed = ok(S.client.secrets.list(S.vault_id, prefix="db/"), 200)["secrets"]
    assert sorted(s["path"] for s in listed) == ["db/password", "db/url"], listed
    assert all("value" not in s for s in listed), "a listing never shows values"
    assert len(ok(S.client.secrets.list(S.vault_id), 200)["secrets"]) == 3

    assert ok(S.client.secrets.delete(S.vault_id, "app/flag"), 204) is None
    fails(S.client.secrets.get(S.vault_id, "app/flag"), 404, "not_found")


# -- agents and policies -------------------------------------------------------------------


@step
def agents() -> None:
    created = ok(
        S.client.agents.create("ci-bot", description="CI", vault_ids=[S.vault_id], scopes=["db/**"]),
        201,
    )
    agent = created["agent"]
    S.agent_id, S.agent_key = agent["id"], created["api_key"]
    assert S.agent_key.startswith("ocv_"), created
    assert (agent["name"], agent["description"], agent["scopes"], agent["vault_ids"], agent["is_active"]) == (
        "ci-bot",
        "CI",
        ["db/**"],
        [S.vault_id],
        True,
    ), agent
    assert (agent["auth_method"], agent["intents_api_enabled"], agent["shroud_enabled"]) == ("api_key", False, False)
    assert ok(S.client.agents.get(S.agent_id), 200) == agent
    assert [a["id"] for a in ok(S.client.agents.list(), 200)["agents"]] == [S.agent_id]
    updated = ok(S.client.agents.update(S.agent_id, description="CI runner"), 200)
    assert (updated["description"], updated["name"]) == ("CI runner", "ci-bot"), updated
    fails(S.client.agents.get(str(uuid.uuid4())), 404, "not_found")


@step
def policies_decide_what_an_agent_reads() -> None:
    # The agent's client: create_client(api_key="ocv_…") exchanges the key at /v1/auth/agent-token.
    agent = create_client(base_url=S.base_url, api_key=S.agent_key)
    me = ok(agent.agents.me(), 200)
    assert (me["id"], me["name"], me["scopes"], me["is_active"]) == (S.agent_id, "ci-bot", ["db/**"], True), me
    assert agent.resolved_agent_id == S.agent_id
    fails(agent.secrets.get(S.vault_id, "db/password"), 403, "auth_error")  # no policy yet

    policy = ok(
        S.client.policies.create(
            S.vault_id,
            principal_type="agent",
            principal_id=S.agent_id,
            secret_path_pattern="db/**",
            permissions=["read"],
        ),
        201,
    )
    S.policy_id = policy["id"]
    assert (
        policy["vault_id"],
        policy["principal_type"],
        policy["principal_id"],
        policy["secret_path_pattern"],
        policy["permissions"],
    ) == (S.vault_id, "agent", S.agent_id, "db/**", ["read"]), policy
    assert ok(S.client.policies.list(S.vault_id), 200) == {"policies": [policy]}

    assert ok(agent.secrets.get(S.vault_id, "db/password"), 200)["value"] == "hunter3 s3cret"
    fails(agent.secrets.set(S.vault_id, "db/password", "mine now"), 403, "auth_error")  # read only

    updated = ok(S.client.policies.update(S.vault_id, S.policy_id, permissions=["read", "write"]), 200)
    assert updated["permissions"] == ["read", "write"], updated
    assert ok(agent.secrets.set(S.vault_id, "db/token", "t0ken"), 201)["path"] == "db/token"

    assert ok(S.client.policies.delete(S.vault_id, S.policy_id), 204) is None
    assert ok(S.client.policies.list(S.vault_id), 200) == {"policies": []}
    fails(agent.secrets.get(S.vault_id, "db/password"), 403, "auth_error")  # revoked at once


@step
def agent_key_rotation_and_deactivation() -> None:
    agent = create_client(base_url=S.base_url, api_key=S.agent_key)
    ok(agent.agents.me(), 200)
    rotated = ok(S.client.agents.rotate_key(S.agent_id), 200)
    assert rotated["api_key"].startswith("ocv_") and rotated["api_key"] != S.agent_key, rotated
    fails(agent.agents.me(), 401, "auth_error")  # the token of the old key dies with it
    raises(OneclawError, 401, lambda: create_client(base_url=S.base_url, api_key=S.agent_key).agents.me())

    fresh = create_client(base_url=S.base_url, api_key=rotated["api_key"])
    ok(fresh.agents.me(), 200)
    assert ok(S.client.agents.delete(S.agent_id), 204) is None
    fails(fresh.agents.me(), 401, "auth_error")
    assert ok(S.client.agents.get(S.agent_id), 200)["is_active"] is False


# -- audit ---------------------------------------------------------------------------------


@step
def audit_trail() -> None:
    events = ok(S.client.audit.list(limit=500), 200)
    assert events["count"] == len(events["events"]) > 0, events
    actions = {e["action"] for e in events["events"]}
    assert {"secret.read", "agent.rotate_key"} <= actions, sorted(actions)
    reads = [e for e in events["events"] if e["action"] == "secret.read" and e["actor_type"] == "agent"]
    assert reads and all(e["actor_id"] == S.agent_id for e in reads), reads
    assert "hunter" not in json.dumps(events), "the audit trail never holds a secret value"
    page = ok(S.client.audit.list(action="agent.rotate_key"), 200)
    assert [e["resource_id"] for e in page["events"]] == [S.agent_id], page

    verdict = ok(S.client.audit.verify(), 200)
    assert verdict["chain_valid"] is True and verdict["broken_at_event_id"] is None, verdict
    assert verdict["events_verified"] == verdict["events_checked"] > 0, verdict


# -- enrollment, versions, rotation, chains, sharing; and what is not served yet (NOT_IMPLEMENTED_YET)


@step
def agent_self_enrollment() -> None:
    data = ok(user_client().agents.enroll("self-enrolled", description="asks to join"), 201)
    assert isinstance(data["message"], str), data
    pending = [a for a in ok(S.client.agents.list(), 200)["agents"] if a["name"] == "self-enrolled"]
    assert pending == [], "an enrolled agent is not in the org before a human approves it"


@step
def secret_versions() -> None:
    versions = ok(S.client.secrets.list_versions(S.vault_id, "db/password"), 200)["versions"]
    assert sorted(v["version"] for v in versions) == [1, 2], versions
    first = ok(S.client.secrets.get_version(S.vault_id, "db/password", 1), 200)
    assert (first["version"], first["value"]) == (1, "hunter2 s3cret"), first


@step
def secret_rotation_by_the_server() -> None:
    rotated = ok(S.client.secrets.rotate_generate(S.vault_id, "db/url", length=40), 201)
    assert (rotated["path"], rotated["version"]) == ("db/url", 2), rotated
    value = ok(S.client.secrets.get(S.vault_id, "db/url"), 200)["value"]
    assert len(value) == 40 and value != "postgres://db.internal/app", "a new random value of the asked length"


@step
def chains() -> None:
    chains = ok(S.client.chains.list(), 200)["chains"]
    assert chains and all(isinstance(c["chain_id"], int) for c in chains), chains
    first = chains[0]
    assert ok(S.client.chains.get(first["name"]), 200)["chain_id"] == first["chain_id"]
    fails(S.client.chains.get("no-such-chain"), 404, "not_found")


@step
def share_a_secret_by_link() -> None:
    expires = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)).isoformat()
    share = ok(
        S.client.sharing.create(S.secret_id, recipient_type="anyone_with_link", expires_at=expires, max_access_count=2),
        201,
    )
    assert (share["recipient_type"], share["max_access_count"]) == ("anyone_with_link", 2), share
    outbound = ok(S.client.sharing.list_outbound(), 200)["shares"]
    assert [s["id"] for s in outbound] == [share["id"]], outbound
    opened = ok(user_client().sharing.access(share["id"]), 200)
    assert (opened["path"], opened["value"]) == ("db/password", "hunter3 s3cret"), opened
    assert ok(S.client.sharing.revoke(share["id"]), 204) is None
    fails(user_client().sharing.access(share["id"]), 404, "not_found")


@step
def signing_keys() -> None:
    created = ok(S.client.agents.create("signer", intents_api_enabled=True), 201)
    signer = created["agent"]["id"]
    key = ok(S.client.signing_keys.create(signer, "ethereum"), 201)
    assert (key["agent_id"], key["chain"], key["is_active"]) == (signer, "ethereum", True), key
    assert key["address"].startswith("0x") and len(key["address"]) == 42, key
    assert [k["id"] for k in ok(S.client.signing_keys.list(signer), 200)["keys"]] == [key["id"]]
    fails(S.client.signing_keys.export(signer, "ethereum", "not my password"), 403, "auth_error")
    exported = ok(S.client.signing_keys.export(signer, "ethereum", NEW_PASSWORD), 200)
    assert (exported["address"], exported["key_version"]) == (key["address"], 1), exported
    assert len(exported["private_key"]) == 2 + 64, "a 0x-prefixed 32-byte hex key"
    # The exported key imported back becomes version 2 of the same address.
    imported = ok(
        S.client.signing_keys.import_key(signer, "ethereum", private_key=exported["private_key"], password=NEW_PASSWORD),
        201,
    )
    assert (imported["address"], imported["key_version"], imported["is_active"]) == (key["address"], 2, True)
    assert "private_key" not in imported, imported
    balance = ok(S.client.signing_keys.balance(signer, "ethereum"), 200)
    assert (balance["address"], balance["balance_wei"], balance["balance_display"]) == (key["address"], "0", "0")


@step
def transactions() -> None:
    created = ok(S.client.agents.create("trader", intents_api_enabled=True), 201)
    trader = created["agent"]["id"]
    assert ok(S.client.agents.list_transactions(trader), 200) == {"transactions": []}
    # Fee budget and daily count, set through the SDK's pass-through update; the agent
    # shows them beside what it used of them.
    limited = ok(S.client.agents.update(trader, tx_overhead_budget={"anvil": "0.01"}, tx_max_per_day=50), 200)
    assert (limited["tx_overhead_budget"], limited["tx_max_per_day"]) == ({"anvil": "0.01"}, 50), limited
    used = ok(S.client.agents.get(trader), 200)
    assert (used["tx_spent_today_eth"], used["tx_count_today"], used["tx_overhead_today_by_chain"]) == ("0", 0, {})
    # The unified signing intent: personal_sign is off until the human turns it on.
    key = ok(S.client.signing_keys.create(trader, "ethereum"), 201)
    assert ok(S.client.agents.get(trader), 200)["signing_chains"] == ["ethereum"]
    signer = create_client(base_url=S.base_url, api_key=created["api_key"])
    hello = {"intent_type": "personal_sign", "chain": "anvil", "message": "0x68656c6c6f"}
    fails(signer.agents.sign_intent(trader, **hello), 403, "auth_error")
    ok(S.client.agents.update(trader, message_signing_enabled=True), 200)
    signed = ok(signer.agents.sign_intent(trader, **hello), 200)
    assert (signed["intent_type"], signed["from"]) == ("personal_sign", key["address"].lower()), signed
    assert signed["signature"].startswith("0x") and len(signed["signature"]) == 2 + 130, signed


# -- running -------------------------------------------------------------------------------


def served_operations(base_url: str) -> set[str]:
    with urllib.request.urlopen(f"{base_url}/v1/openapi.json", timeout=10) as response:
        document = json.load(response)
    return {f"{method.upper()} {path}" for path, item in document["paths"].items() for method in item}


def main() -> int:
    if len(sys.argv) != 2:
        print(f"usage: {sys.argv[0]} BASE_URL", file=sys.stderr)
        return 2
    S.base_url = sys.argv[1].rstrip("/")
    print(f"oneclaw {oneclaw.__version__} against {S.base_url}")
    names = {name for name, _ in STEPS}
    for listed in (*NOT_IMPLEMENTED_YET, *KNOWN_WIRE_MISMATCHES):
        assert listed in names, f"{listed} is listed but there is no such step"
    served = served_operations(S.base_url)

    passed = skipped = expected_failures = 0
    for name, function in STEPS:
        missing = [endpoint for endpoint in NOT_IMPLEMENTED_YET.get(name, []) if endpoint not in served]
        if missing:
            print(f"SKIP  {name}: endpoint not implemented yet: {', '.join(missing)}")
            skipped += 1
            continue
        mismatch = KNOWN_WIRE_MISMATCHES.get(name)
        try:
            function()
        except Exception:
            if mismatch is not None:
                print(f"XFAIL {name}: known wire mismatch: {mismatch}")
                print("      " + traceback.format_exc().strip().splitlines()[-1])
                expected_failures += 1
                continue
            print(f"FAIL  {name}")
            traceback.print_exc(file=sys.stdout)
            print(f"oneclaw SDK run FAILED at step {name} ({passed} steps passed before it)")
            return 1
        if mismatch is not None:
            print(f"FAIL  {name}: passes now; remove it from KNOWN_WIRE_MISMATCHES ({mismatch})")
            return 1
        note = " (was in NOT_IMPLEMENTED_YET; its endpoints are served now)" if name in NOT_IMPLEMENTED_YET else ""
        print(f"ok    {name}{note}")
        passed += 1
    print(
        f"oneclaw SDK run: {passed} steps ok, {skipped} skipped (not implemented yet), "
        f"{expected_failures} known mismatches"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
