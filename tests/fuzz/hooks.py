"""schemathesis hooks for tests/openapi_fuzz.rs (loaded through SCHEMATHESIS_HOOKS).

Authentication: every request carries a bearer token of the user the Rust test signed up
(KEYWARD_FUZZ_BASE_URL, KEYWARD_FUZZ_EMAIL, KEYWARD_FUZZ_PASSWORD). DELETE /v1/auth/token
revokes the token it is called with, so it gets a fresh one of its own each time; DELETE
/v1/auth/me may delete the account it is called for, so it gets an account of its own each
time, signed up for it, with that account's password re-entered in X-Auth-Confirm (a wrong
one would count as a refused credential, and enough of them make keyward refuse every
sign-in from the fuzzer's address for a while: a sign-in refused so waits as told). Sign-ups
run out per client (ten, then one a minute), so each throwaway account is signed up as a
client of its own: the server trusts this host as a proxy, and the sign-up names a random
address of 198.18.0.0/15 (benchmarking, RFC 2544) in X-Forwarded-For. Every other operation
shares one session token, logged in again if a 401 says it was revoked.

Checks, on top of schemathesis's not_a_server_error:
- errors_are_problem_json: every 4xx/5xx is RFC 7807 application/problem+json with string
  type/title/detail and the response's status, as keyward promises.
"""

import json
import os
import secrets
import time
import uuid

import requests
import schemathesis

BASE_URL = os.environ["KEYWARD_FUZZ_BASE_URL"].rstrip("/")
EMAIL = os.environ["KEYWARD_FUZZ_EMAIL"]
PASSWORD = os.environ["KEYWARD_FUZZ_PASSWORD"]


def _login(email=EMAIL, password=PASSWORD):
    # The fuzzing presents wrong credentials (API keys, refresh tokens, passwords) often
    # enough to use up the address's allowance of refusals, after which keyward hears no
    # sign-in from it until one refusal's worth returns: wait as it says, within reason.
    for _ in range(10):
        response = requests.post(
            f"{BASE_URL}/v1/auth/token", json={"email": email, "password": password}, timeout=10
        )
        if response.status_code != 429:
            break
        time.sleep(int(response.headers.get("Retry-After", "1")))
    if response.status_code != 200:
        raise RuntimeError(f"fuzz hooks: login failed: {response.status_code} {response.text}")
    return response.json()["access_token"]


def _throwaway_account():
    """A new account, signed in: (its sign-in token, its password)."""
    email = f"fuzz-{uuid.uuid4().hex}@example.com"
    password = f"throwaway {uuid.uuid4().hex}"
    # Not `random`: hypothesis seeds it alike for every example.
    client = f"198.{18 + secrets.randbelow(2)}.{secrets.randbelow(256)}.{1 + secrets.randbelow(254)}"
    response = requests.post(
        f"{BASE_URL}/v1/auth/signup",
        json={"email": email, "password": password},
        headers={"X-Forwarded-For": client},
        timeout=10,
    )
    if response.status_code not in (200, 201):
        raise RuntimeError(f"fuzz hooks: sign-up failed: {response.status_code} {response.text}")
    return _login(email, password), password


def _set_bearer(case, token):
    if case.headers is None:
        case.headers = {}
    case.headers["Authorization"] = f"Bearer {token}"


@schemathesis.auth(refresh_interval=None).apply_to(method="DELETE", path="/v1/auth/token")
class ThrowawayToken:
    """A token that the call about to be made may revoke."""

    def get(self, case, ctx):
        return _login()

    def set(self, case, data, ctx):
        _set_bearer(case, data)


@schemathesis.auth(refresh_interval=None).apply_to(method="DELETE", path="/v1/auth/me")
class ThrowawayAccount:
    """An account that the call about to be made may delete, and its password."""

    def get(self, case, ctx):
        return _throwaway_account()

    def set(self, case, data, ctx):
        token, password = data
        _set_bearer(case, token)
        case.headers["X-Auth-Confirm"] = password


@schemathesis.auth().skip_for(method="DELETE", path_regex="^/v1/auth/(token|me)$")
class SessionToken:
    def get(self, case, ctx):
        return _login()

    def set(self, case, data, ctx):
        _set_bearer(case, data)


def _content_type(response):
    for name, values in response.headers.items():
        if name.lower() == "content-type":
            return values[0] if isinstance(values, list) else values
    return None


def _describe(case, response):
    return f"{case.method} {case.formatted_path} -> {response.status_code} {_content_type(response)}: {response.text[:500]}"


@schemathesis.check
def errors_are_problem_json(ctx, response, case):
    if response.status_code < 400:
        return None
    content_type = _content_type(response)
    if content_type != "application/problem+json":
        raise AssertionError(f"error is not application/problem+json: {_describe(case, response)}")
    try:
        body = json.loads(response.content)
    except ValueError as error:
        raise AssertionError(f"problem+json body does not parse ({error}): {_describe(case, response)}")
    if not isinstance(body, dict):
        raise AssertionError(f"problem+json body is not an object: {_describe(case, response)}")
    for field in ("type", "title", "detail"):
        if not isinstance(body.get(field), str):
            raise AssertionError(f"problem+json lacks a string {field!r}: {_describe(case, response)}")
    if body.get("status") != response.status_code:
        raise AssertionError(f"problem+json status is not the response's: {_describe(case, response)}")
    return None
