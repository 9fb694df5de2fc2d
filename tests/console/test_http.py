"""The console over plain HTTP against a real server (a real SQLite file, the gRPC server
and the console beside it, as `switchyard serve` runs them): the headers every answer
carries, the CSRF check on every write, sessions sealed into cookies and ended by
revoking their token, the Host names it answers, a server without authentication, the
live stream, and what the history records of a change made in the console. What a
browser does is in test_browser.py; this is what anyone with an HTTP client can try."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.protobuf import struct_pb2
from starlette.routing import Route

from switchyard.api.identity import LOCAL_OPERATOR
from switchyard.client import enum_name
from switchyard.console.app import ROUTES
from switchyard.console.guard import HEADERS
from switchyard.console.sessions import SESSION_COOKIE
from switchyard.gen.v1 import config_pb2 as pb
from switchyard.service.context import WriteContext

from ..e2e.conftest import Running, serving
from ..e2e.test_security import bearer
from .conftest import Team, csrf_of, http_sign_in, writing

KEY = "api.timeout"  # a demo key: a number, 30 at base (and so in staging), 60 in production

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=(), payment=()",
}
"""Written out here rather than read from guard.py, so that a weakened policy fails."""

REVOCATION_SECONDS = 5.0
"""How long a revoked token may keep working: the server reloads tokens within about a
second; this leaves room on a slow machine."""


def _client(url: str, **options: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=url, timeout=10.0, **options)


@pytest.fixture
async def alice(team: Team) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """A client signed in as alice (admin), and her session's CSRF token."""
    async with _client(team.url) as client:
        csrf = await http_sign_in(client, team.tokens["alice"])
        yield client, csrf


async def _value(running: Running, token: str | None, environment: str) -> Any:
    reply = await running.config.GetValue(
        pb.GetValueRequest(key=KEY, environment=environment),
        metadata=bearer(token) if token else None,
    )
    kind = reply.value.WhichOneof("kind")
    return getattr(reply.value, kind) if kind else None


async def _history(running: Running, token: str | None) -> list[pb.HistoryEntry]:
    reply = await running.config.GetHistory(
        pb.GetHistoryRequest(key=KEY, page_size=100),
        metadata=bearer(token) if token else None,
    )
    return list(reply.entries)


async def _version(running: Running, token: str | None) -> int:
    got = await running.config.GetConfig(
        pb.GetConfigRequest(key=KEY), metadata=bearer(token) if token else None
    )
    return int(got.config.version)


async def _edit(running: Running, token: str | None, value: str = "31") -> dict[str, str]:
    """The form the key page's edit form posts for staging."""
    return {
        "environment": "staging",
        "type": "number",
        "value": value,
        "expected_version": str(await _version(running, token)),
        "reason": "from the HTTP test",
    }


def _assert_guarded(response: httpx.Response, cache: str) -> None:
    for name, value in {**HEADERS, **SECURITY_HEADERS}.items():
        assert response.headers.get(name) == value, (response.url, name)
    assert response.headers["cache-control"] == cache, response.url
    assert "strict-transport-security" not in response.headers  # plain HTTP on loopback


def _session_cookies(response: httpx.Response) -> list[str]:
    return [
        line
        for line in response.headers.get_list("set-cookie")
        if line.startswith(f"{SESSION_COOKIE}=")
    ]


def _attributes(set_cookie: str) -> dict[str, str]:
    """The attributes of a Set-Cookie line, by lower-case name (flags map to "")."""
    attributes = {}
    for part in set_cookie.split(";")[1:]:
        name, _, value = part.strip().partition("=")
        attributes[name.lower()] = value
    return attributes


def _flip(text: str) -> str:
    """`text` with a character in its middle changed."""
    where = len(text) // 2
    return text[:where] + ("A" if text[where] != "A" else "B") + text[where + 1 :]


# --- headers --------------------------------------------------------------------------------


async def test_every_kind_of_answer_carries_the_security_headers(
    team: Team, alice: tuple[httpx.AsyncClient, str]
) -> None:
    """The policy that forbids inline script, framing and sniffing only protects a page
    if it is on every answer, errors and refusals included; and no page or fragment (they
    hold configuration values) may be kept in a browser's or a proxy's cache."""
    client, _ = alice
    answers = {
        "page": await client.get("/"),
        "key page": await client.get(f"/keys/{KEY}"),
        "fragment": await client.get(f"/keys/{KEY}/values", headers={"hx-request": "true"}),
        "refusal": await client.post(f"/keys/{KEY}/value", data={"value": "1"}),
        "not found": await client.get("/keys/no.such.key"),
        "no route": await client.get("/no/such/page"),
        "health": await client.get("/healthz"),
    }
    async with _client(team.url) as stranger:
        answers["sign-in page"] = await stranger.get("/sign-in")
        answers["redirect to sign in"] = await stranger.get("/flags")
    assert answers["page"].status_code == 200
    assert answers["fragment"].status_code == 200
    assert "<html" not in answers["fragment"].text, "a fragment, not a page"
    assert answers["refusal"].status_code == 403
    assert answers["not found"].status_code == 404
    assert answers["no route"].status_code == 404
    assert answers["sign-in page"].status_code == 200
    assert answers["redirect to sign in"].status_code == 303
    for response in answers.values():
        _assert_guarded(response, "no-store")


async def test_static_files_carry_the_headers_and_are_revalidated(team: Team) -> None:
    """Static files may be kept but must be checked before use (an upgrade ships new
    scripts at the same path), and carry the same policy as the pages."""
    async with _client(team.url) as client:
        for path in ("/static/console.js", "/static/console.css", "/static/vendor/htmx.min.js"):
            response = await client.get(path)
            assert response.status_code == 200, path
            _assert_guarded(response, "no-cache")
            assert response.headers["etag"], path
            again = await client.get(path, headers={"if-none-match": response.headers["etag"]})
            assert again.status_code == 304, path
            _assert_guarded(again, "no-cache")
        assert (await client.get("/static/no-such.js")).status_code == 404


# --- cross-site request forgery ------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "headers"),
    [
        ("no CSRF header", {"hx-request": "true"}),
        ("a wrong CSRF header", {"x-csrf-token": "not-the-token", "hx-request": "true"}),
        ("an empty CSRF header", {"x-csrf-token": "", "hx-request": "true"}),
        ("another site, right token", {"sec-fetch-site": "cross-site"}),
        ("a sibling site, right token", {"sec-fetch-site": "same-site"}),
        ("another origin, right token", {"origin": "https://evil.example"}),
        ("our host over another scheme", {"origin": "https://127.0.0.1"}),
    ],
)
async def test_a_forged_write_is_refused_and_changes_nothing(
    team: Team, alice: tuple[httpx.AsyncClient, str], case: str, headers: dict[str, str]
) -> None:
    """A page on another site can make a signed-in browser send a POST with its cookie:
    without the page's CSRF token, or coming from another site or origin (even with the
    token), the write must be refused before it reaches the API."""
    client, csrf = alice
    running, bob = team.running, team.tokens["bob"]
    if "right token" in case:
        headers = {**writing(csrf), **headers}
    before = await _history(running, bob)
    response = await client.post(
        f"/keys/{KEY}/value", data=await _edit(running, bob), headers=headers
    )
    assert response.status_code == 403, case
    assert response.text.startswith("refused: "), response.text
    assert await _value(running, bob, "staging") == 30
    assert len(await _history(running, bob)) == len(before), "a refusal records nothing"


async def test_the_same_write_from_the_console_page_is_made(
    team: Team, alice: tuple[httpx.AsyncClient, str]
) -> None:
    """The refusals above are not refusing everything: the page's own write (its token,
    and the headers a browser adds to a same-origin request) goes through."""
    client, csrf = alice
    running, bob = team.running, team.tokens["bob"]
    response = await client.post(
        f"/keys/{KEY}/value",
        data=await _edit(running, bob),
        headers=writing(csrf, origin=team.url, **{"sec-fetch-site": "same-origin"}),
    )
    assert response.status_code == 200, response.text
    assert "Saved at revision" in response.text
    assert response.headers["hx-trigger"] == "key-changed"
    assert await _value(running, bob, "staging") == 31


async def test_every_route_that_writes_needs_the_csrf_token(
    team: Team, alice: tuple[httpx.AsyncClient, str]
) -> None:
    """Walks the route table, so that a write route added later is checked too: each
    refuses a signed-in request without the token, and nothing changes."""
    client, _ = alice
    values = {"key": KEY, "id": "00000000-0000-0000-0000-000000000000"}
    revision = team.running.application.config.revision
    posts = [route for route in ROUTES if isinstance(route, Route) and "POST" in route.methods]
    paths = {route.path for route in posts}
    assert {"/sign-in", "/sign-out", "/keys/{key:str}/value", "/limits/{key:str}"} <= paths
    assert len(posts) >= 8
    for route in posts:
        path = re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: values[m.group(1)], route.path)
        response = await client.post(
            path, data={"value": "1", "enabled": "0"}, headers={"hx-request": "true"}
        )
        assert response.status_code == 403, (path, response.status_code, response.text)
        assert response.text.startswith("refused: "), path
    assert team.running.application.config.revision == revision
    assert (await client.get("/")).status_code == 200, "still signed in: sign-out was refused"


async def test_signing_in_needs_the_sign_in_forms_own_token(team: Team) -> None:
    """The sign-in form has no session yet: a forged sign-in (logging the victim's browser
    in as the attacker, so that what they type lands in the attacker's account) is
    refused unless it carries the nonce of the form's own cookie."""
    token = team.tokens["alice"]
    async with _client(team.url) as attacker:
        response = await attacker.post(
            "/sign-in", data={"token": token}, headers={"x-csrf-token": "made-up"}
        )
        assert response.status_code == 403
        assert _session_cookies(response) == []
    async with _client(team.url) as client, _client(team.url) as other:
        form = await client.get("/sign-in")
        nonce = csrf_of(form.text)
        other_nonce = csrf_of((await other.get("/sign-in")).text)
        assert nonce != other_nonce
        for headers in ({}, {"x-csrf-token": other_nonce}, {"x-csrf-token": nonce + "x"}):
            response = await client.post("/sign-in", data={"token": token}, headers=headers)
            assert response.status_code == 403, headers
            assert _session_cookies(response) == []
        assert (await client.get("/")).status_code == 303, "still not signed in"
        response = await client.post(
            "/sign-in", data={"token": token}, headers={"x-csrf-token": nonce}
        )
        assert response.status_code == 303
        assert response.headers["location"] == "/"


# --- sessions -------------------------------------------------------------------------------


async def test_the_session_cookie_is_http_only_strict_and_holds_no_token(team: Team) -> None:
    """The cookie is the user's token, sealed: script must not read it (HttpOnly), no
    other site's request may carry it (SameSite=Strict), it covers the whole console
    (Path=/), and the token itself must not be readable in it."""
    token = team.tokens["alice"]
    async with _client(team.url) as client:
        form = await client.get("/sign-in")
        response = await client.post(
            "/sign-in",
            data={"token": token},
            headers={"x-csrf-token": csrf_of(form.text), "hx-request": "true"},
        )
        assert response.status_code == 204
        (line,) = _session_cookies(response)
        value = line.split(";", 1)[0].removeprefix(f"{SESSION_COOKIE}=")
        attributes = _attributes(line)
        assert "httponly" in attributes
        assert attributes["samesite"].lower() == "strict"
        assert attributes["path"] == "/"
        assert 0 < int(attributes["max-age"]) <= 8 * 3600
        assert "secure" not in attributes  # plain HTTP on loopback; HTTPS sets it
        assert token not in line
        assert token.removeprefix("swy_") not in value
        assert "alice" not in value
        assert len(value) > 40
        page = await client.get("/")
        assert page.status_code == 200
        assert "alice" in page.text


async def test_a_tampered_session_cookie_signs_no_one_in(
    team: Team, alice: tuple[httpx.AsyncClient, str]
) -> None:
    """A browser may change its cookie: a changed one must be no session at all (to the
    sign-in page), whether a page or htmx asks, and must not make a write either."""
    client, csrf = alice
    sealed = client.cookies[SESSION_COOKIE]
    tampered = {"cookie": f"{SESSION_COOKIE}={_flip(sealed)}"}
    async with _client(team.url) as browser:
        page = await browser.get("/", headers=tampered)
        assert page.status_code == 303
        assert page.headers["location"] == "/sign-in"
        fragment = await browser.get(
            f"/keys/{KEY}/values", headers={**tampered, "hx-request": "true"}
        )
        assert fragment.status_code == 204
        assert fragment.headers["hx-redirect"] == "/sign-in"
        write = await browser.post(
            f"/keys/{KEY}/value",
            data=await _edit(team.running, team.tokens["bob"]),
            headers={**tampered, **writing(csrf)},
        )
        assert write.status_code == 403
        assert "no session" in write.text
        untouched = await browser.get("/", headers={"cookie": f"{SESSION_COOKIE}={sealed}"})
        assert untouched.status_code == 200, "the cookie as sealed still works"
    assert await _value(team.running, team.tokens["bob"], "staging") == 30


async def test_revoking_the_token_ends_the_session(
    team: Team, alice: tuple[httpx.AsyncClient, str]
) -> None:
    """Nothing is kept on the server: a session ends because the token inside it stops
    working. Revoked, the next page sends the browser to sign in again, says why, and
    clears the cookie."""
    client, _ = alice
    access = team.running.application.access
    (token,) = [t for t in await access.list_tokens() if t.username == "alice"]
    await access.revoke_token(token.id, WriteContext(actor=LOCAL_OPERATOR, reason="test"))
    deadline = time.monotonic() + REVOCATION_SECONDS
    while True:
        response = await client.get("/")
        if response.status_code != 200 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert response.status_code == 303, "the revoked token still signs pages in"
    assert response.headers["location"] == "/sign-in?expired=1"
    (cleared,) = _session_cookies(response)
    attributes = _attributes(cleared)
    assert attributes["max-age"] == "0"
    assert attributes["path"] == "/"
    assert SESSION_COOKIE not in client.cookies
    signin = await client.get(response.headers["location"])
    assert signin.status_code == 200
    assert "Your session ended" in signin.text


async def test_revoking_the_token_ends_an_htmx_session_too(team: Team) -> None:
    """A page left open makes htmx requests, not page loads: those must send the
    browser to sign in too (with HX-Redirect, which htmx follows)."""
    async with _client(team.url) as client:
        await http_sign_in(client, team.tokens["rita"])
        access = team.running.application.access
        (token,) = [t for t in await access.list_tokens() if t.username == "rita"]
        await access.revoke_token(token.id, WriteContext(actor=LOCAL_OPERATOR, reason="test"))
        deadline = time.monotonic() + REVOCATION_SECONDS
        while True:
            response = await client.get(f"/keys/{KEY}/values", headers={"hx-request": "true"})
            if response.status_code != 200 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        assert response.status_code == 204
        assert response.headers["hx-redirect"] == "/sign-in?expired=1"
        assert _attributes(_session_cookies(response)[0])["max-age"] == "0"


async def test_signing_out_clears_the_cookie(
    team: Team, alice: tuple[httpx.AsyncClient, str]
) -> None:
    """Sign out (a write, so it needs the token too) removes the session from the
    browser."""
    client, csrf = alice
    response = await client.post("/sign-out", headers=writing(csrf))
    assert response.status_code == 204
    assert response.headers["hx-redirect"] == "/sign-in"
    assert _attributes(_session_cookies(response)[0])["max-age"] == "0"
    assert (await client.get("/")).status_code == 303


# --- Host names -------------------------------------------------------------------------------


async def test_a_host_name_that_is_not_loopback_is_refused(team: Team) -> None:
    """A console on loopback must not answer a name an attacker's DNS points at
    127.0.0.1 (DNS rebinding would give their page the console as same-origin)."""
    port = team.running.console.port if team.running.console else 0
    async with _client(team.url) as client:
        for host in ("evil.example", f"evil.example:{port}", "127.0.0.1.evil.example"):
            response = await client.get("/sign-in", headers={"host": host})
            assert response.status_code == 400, host
            assert "switchyard_sign_in" not in response.headers.get("set-cookie", "")
            # The refusal is an answer like any other: it carries the Guard's headers.
            assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        for host in (f"localhost:{port}", f"127.0.0.1:{port}"):
            response = await client.get("/sign-in", headers={"host": host})
            assert response.status_code == 200, host


# --- without authentication -----------------------------------------------------------------


async def test_a_server_without_authentication_signs_in_its_local_operator(
    tmp_path: Path,
) -> None:
    """Without authentication everyone acts as the local operator: the console says so
    and signs in without a token, and its writes are recorded as that operator's."""
    async with serving(tmp_path / "open.db", console=True) as running:
        assert running.console is not None
        async with _client(running.console.url) as client:
            form = await client.get("/sign-in")
            assert form.status_code == 200
            assert "Continue as the local operator" in form.text
            assert 'name="token"' not in form.text
            csrf = await http_sign_in(client, None)
            page = await client.get("/")
            assert "local-operator" in page.text
            response = await client.post(
                f"/keys/{KEY}/value", data=await _edit(running, None, "32"), headers=writing(csrf)
            )
            assert response.status_code == 200
            assert "Saved at revision" in response.text
        assert await _value(running, None, "staging") == 32
        newest = (await _history(running, None))[0]
        assert newest.changed_by_username == "local-operator"
        assert newest.changed_by == LOCAL_OPERATOR.user_id
        assert newest.client_address.endswith("(console)"), newest.client_address


# --- live changes -----------------------------------------------------------------------------


async def _events(lines: AsyncIterator[str]) -> AsyncIterator[dict[str, str]]:
    """Server-sent events, each as its fields (`event`, `id`, `data`)."""
    fields: dict[str, str] = {}
    async for line in lines:
        if not line:
            if fields:
                yield fields
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")


async def _next_change(events: AsyncIterator[dict[str, str]]) -> dict[str, str]:
    async def find() -> dict[str, str]:
        async for event in events:
            if event.get("event") == "change":
                return event
        raise AssertionError("the stream ended without a change")

    return await asyncio.wait_for(find(), timeout=10)


async def test_the_live_stream_sends_a_change_and_replays_it_after_a_reconnect(
    team: Team,
) -> None:
    """The page follows changes made anywhere through this stream, and after a drop the
    browser reconnects with the last id it saw: the change must arrive, named well
    enough to refresh what it touched, and be sent again on resuming from that id."""
    running, bob = team.running, team.tokens["bob"]
    async with _client(team.url) as client:
        await http_sign_in(client, bob)
        start = running.application.config.revision
        async with client.stream("GET", f"/live?from={start}") as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            _assert_guarded(stream, "no-store")
            lines = stream.aiter_lines()
            first = await asyncio.wait_for(anext(lines), timeout=10)
            assert first == ": watching"
            reply = await running.config.SetValue(
                pb.SetValueRequest(
                    key=KEY, environment="staging", value=struct_pb2.Value(number_value=77)
                ),
                metadata=bearer(bob),
            )
            change = await _next_change(_events(lines))
        revision = int(reply.revision)
        entry = (await _history(running, bob))[0]
        assert entry.revision == revision
        assert json.loads(change["data"]) == {
            "revision": revision,
            "kind": "config",
            "key": KEY,
            "environment": "staging",
            "action": enum_name(pb.HistoryAction, entry.action),
        }
        assert change["id"] == str(revision - 1)

        # `from` says the page was read after the change: the browser's Last-Event-ID wins.
        async with client.stream(
            "GET", f"/live?from={revision}", headers={"last-event-id": change["id"]}
        ) as stream:
            assert stream.status_code == 200
            replayed = await _next_change(_events(stream.aiter_lines()))
        assert replayed["id"] == change["id"]
        assert json.loads(replayed["data"]) == json.loads(change["data"])


async def test_the_live_stream_needs_a_session(team: Team) -> None:
    """The stream shows every change the user may read: without a session it must not
    open at all."""
    async with _client(team.url) as client:
        response = await client.get("/live?from=0")
        assert response.status_code == 303
        assert response.headers["location"] == "/sign-in"


# --- what the history records ------------------------------------------------------------------


async def test_a_change_made_in_the_console_names_the_user_and_the_browser(
    team: Team, alice: tuple[httpx.AsyncClient, str]
) -> None:
    """The console is a client like any other: its writes are recorded as the signed-in
    user's, from the browser's address (marked as relayed by the console), not as the
    console's own."""
    client, csrf = alice
    running, bob = team.running, team.tokens["bob"]
    response = await client.post(
        f"/keys/{KEY}/value", data=await _edit(running, bob, "33"), headers=writing(csrf)
    )
    assert response.status_code == 200
    assert "Saved at revision" in response.text
    newest = (await _history(running, bob))[0]
    assert (newest.changed_by_username, newest.changed_by_role) == ("alice", "admin")
    assert (newest.environment, newest.reason) == ("staging", "from the HTTP test")
    assert newest.client_address == "127.0.0.1 (console)", newest.client_address


async def test_a_client_cannot_claim_an_address_without_the_relay_key(team: Team) -> None:
    """Only the console holds the key that lets a call name another address: any other
    client that sends the metadata (with a guessed key) is recorded from its own
    address, so the history's addresses cannot be forged."""
    running, bob = team.running, team.tokens["bob"]
    await running.config.SetValue(
        pb.SetValueRequest(key=KEY, environment="staging", value=struct_pb2.Value(number_value=34)),
        metadata=(
            *bearer(bob),
            ("x-switchyard-relay-key", "anything"),
            ("x-switchyard-client-address", "1.2.3.4"),
        ),
    )
    newest = (await _history(running, bob))[0]
    assert newest.changed_by_username == "bob"
    assert "1.2.3.4" not in newest.client_address
    assert "(console)" not in newest.client_address
    assert "127.0.0.1" in newest.client_address, newest.client_address
