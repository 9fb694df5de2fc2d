"""The console in a real browser (Debian's Chromium, driven by Playwright) against a real
server: what an operator does, and what the API and its history say afterwards."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from google.protobuf import struct_pb2
from playwright.async_api import Browser, Page, expect

from switchyard.gen.v1 import batch_pb2 as bpb
from switchyard.gen.v1 import batch_pb2_grpc, flag_pb2_grpc, rate_limit_pb2_grpc
from switchyard.gen.v1 import change_pb2 as cpb
from switchyard.gen.v1 import config_pb2 as pb
from switchyard.gen.v1 import flag_pb2 as fpb
from switchyard.gen.v1 import rate_limit_pb2 as rpb

from ..e2e.conftest import Running, serving
from ..e2e.test_security import bearer, make_token
from .conftest import PageFactory, Team, screenshot, sign_in

KEY = "api.timeout"  # a demo key: a number, 30 at base, 60 in production


async def _value(running: Running, token: str, environment: str, key: str = KEY) -> object:
    reply = await running.config.GetValue(
        pb.GetValueRequest(key=key, environment=environment), metadata=bearer(token)
    )
    kind = reply.value.WhichOneof("kind")
    return getattr(reply.value, kind) if kind else None


async def _history(running: Running, token: str, key: str = KEY) -> list[pb.HistoryEntry]:
    reply = await running.config.GetHistory(
        pb.GetHistoryRequest(key=key, page_size=100), metadata=bearer(token)
    )
    return list(reply.entries)


async def _set(running: Running, token: str, environment: str, number: float) -> None:
    await running.config.SetValue(
        pb.SetValueRequest(
            key=KEY, environment=environment, value=struct_pb2.Value(number_value=number)
        ),
        metadata=bearer(token),
    )


async def _edit(page: Page, layer: str) -> None:
    await page.get_by_role("button", name=f"Edit {KEY} in {layer}").click()
    await expect(page.get_by_role("heading", name=f"Edit in {layer}")).to_be_visible()


# --- signing in, finding and editing -------------------------------------------------


async def test_sign_in_with_a_token(team: Team, pages: PageFactory) -> None:
    page = await pages()
    await page.goto(team.url + "/flags")  # not signed in: sent to the sign-in page
    await expect(page).to_have_url(team.url + "/sign-in")
    await page.get_by_label("Token").fill("swy_not-a-token")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_contain_text("was not accepted")
    await expect(page.get_by_label("Token")).to_have_attribute("aria-invalid", "true")
    await screenshot(page, "sign-in")

    await page.get_by_label("Token").fill(team.tokens["alice"])
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(team.url + "/")
    await expect(page.locator(".user")).to_contain_text("alice")
    revision = team.running.application.config.revision
    await expect(page.locator("#revision")).to_contain_text(f"revision {revision}")
    await expect(page.locator("#live")).to_have_attribute("data-state", "live")

    await page.get_by_role("button", name="Sign out").click()
    await expect(page).to_have_url(team.url + "/sign-in")
    await page.goto(team.url + "/")
    await expect(page).to_have_url(team.url + "/sign-in")


async def test_find_a_key_and_edit_it_with_a_bad_value_then_a_good_one(
    team: Team, pages: PageFactory
) -> None:
    running, alice = team.running, team.tokens["alice"]
    page = await pages()
    await sign_in(page, team.url, alice)
    await expect(page.locator("table.keys tbody tr")).to_have_count(6)
    await screenshot(page, "keys")

    await page.get_by_label("Search").fill("timeout")
    await expect(page.locator("table.keys tbody tr")).to_have_count(1)
    await expect(page).to_have_url(team.url + "/?q=timeout&category=")
    await page.get_by_role("link", name=KEY).click()
    await expect(page.get_by_role("heading", name=KEY, exact=True)).to_be_visible()

    before = await _history(running, alice)
    await _edit(page, "staging")
    await page.get_by_label("New value").fill("abc")
    await page.get_by_role("button", name="Save").click()
    await expect(page.locator("#value-error")).to_contain_text("must be a number")
    await expect(page.get_by_label("New value")).to_have_attribute("aria-invalid", "true")
    await expect(page.get_by_label("New value")).to_have_value("abc")  # kept to correct
    assert await _value(running, alice, "staging") == 30
    assert len(await _history(running, alice)) == len(before), "a refusal records nothing"

    await page.get_by_label("New value").fill("45")
    await page.get_by_label("Reason").fill("load test")
    await page.get_by_label("Ticket").fill("OPS-7")
    await page.get_by_role("button", name="Save").click()
    await expect(page.get_by_role("status").filter(has_text="Saved at revision")).to_be_visible()
    assert await _value(running, alice, "staging") == 45
    newest = (await _history(running, alice))[0]
    assert (newest.changed_by_username, newest.changed_by_role) == ("alice", "admin")
    assert (newest.reason, newest.ticket, newest.environment) == ("load test", "OPS-7", "staging")
    assert newest.client_address.endswith("(console)"), newest.client_address
    # The page's own values and history follow, as they would for anyone else's change.
    staging = page.locator("#key-values tr[data-layer='staging']")
    await expect(staging).to_contain_text("45")
    first = page.locator("#key-history li").first
    await expect(first).to_contain_text(f"revision {newest.revision}")
    await expect(first).to_contain_text("alice")
    await expect(first).to_contain_text("load test")
    await screenshot(page, "key")


async def test_a_rollback_is_previewed_before_it_is_made(team: Team, pages: PageFactory) -> None:
    running, bob = team.running, team.tokens["bob"]
    await _set(running, bob, "staging", 40)
    await _set(running, bob, "staging", 45)
    page = await pages()
    await sign_in(page, team.url, bob)
    await page.goto(f"{team.url}/keys/{KEY}")
    await page.get_by_role("button", name="Roll back staging to before this…").first.click()

    preview = page.locator("#key-form")
    await expect(preview).to_contain_text("Nothing has changed yet")
    await expect(preview.locator(".diff .del")).to_contain_text("45")
    await expect(preview.locator(".diff .ins")).to_contain_text("40")
    await screenshot(page, "rollback-preview")
    assert await _value(running, bob, "staging") == 45, "a preview changes nothing"

    await preview.get_by_label("Reason").fill("45 was too slow")
    await preview.get_by_role("button", name="Roll back").click()
    await expect(preview.get_by_role("status")).to_contain_text("Rolled back at revision")
    assert await _value(running, bob, "staging") == 40
    newest = (await _history(running, bob))[0]
    assert newest.action == pb.HISTORY_ACTION_ROLLBACK
    assert (newest.changed_by_username, newest.reason) == ("bob", "45 was too slow")
    await expect(page.locator("#key-history li").first).to_contain_text("rollback")


# --- flags and limits -------------------------------------------------------------------


async def test_flip_a_flag_and_move_its_rollout(team: Team, pages: PageFactory) -> None:
    running, bob = team.running, team.tokens["bob"]
    flags = flag_pb2_grpc.FlagServiceStub(running.channel)
    for key, name, enabled, percentage in (
        ("dark-mode", "Dark mode", False, 0),
        ("new-checkout", "New checkout", True, 10),
        ("search-ranking-v2", "Search ranking v2", True, 50),
    ):
        await flags.UpsertFlag(
            fpb.UpsertFlagRequest(
                flag=fpb.FeatureFlag(
                    key=key,
                    name=name,
                    is_enabled=enabled,
                    rollout_percentage=percentage,
                    rollout_strategy=fpb.ROLLOUT_STRATEGY_PERCENTAGE,
                    owner_team="checkout" if "checkout" in key else "web",
                )
            ),
            metadata=bearer(bob),
        )
    for number in range(7):
        await flags.EvaluateFlag(
            fpb.EvaluateFlagRequest(
                flag_key="new-checkout", context=fpb.EvaluationContext(user_id=f"u{number}")
            ),
            metadata=bearer(bob),
        )
    await running.application.flags.flush_counts()  # written every few seconds

    page = await pages()
    await sign_in(page, team.url, bob)
    await page.get_by_role("link", name="Flags").click()
    row = page.locator("tr", has_text="new-checkout")
    await expect(row.locator("td.num")).to_have_text("7")
    await screenshot(page, "flags")

    await row.get_by_role("switch").click()  # the kill switch: confirmed, with a reason
    await expect(row.get_by_role("switch")).to_have_attribute("aria-checked", "false")
    got = await flags.GetFlag(fpb.GetFlagRequest(flag_key="new-checkout"), metadata=bearer(bob))
    assert not got.flag.is_enabled
    history = await running.config.GetHistory(
        pb.GetHistoryRequest(key="new-checkout", page_size=1), metadata=bearer(bob)
    )
    assert history.entries[0].reason == "from the browser test"
    assert history.entries[0].changed_by_username == "bob"

    await row.get_by_label("Rollout percentage of new-checkout").fill("25")
    await row.get_by_role("button", name="Set").click()
    await expect(row.get_by_role("status")).to_contain_text("Rollout 25%")
    got = await flags.GetFlag(fpb.GetFlagRequest(flag_key="new-checkout"), metadata=bearer(bob))
    assert got.flag.rollout_percentage == 25


async def test_edit_a_rate_limit(team: Team, pages: PageFactory) -> None:
    running, bob = team.running, team.tokens["bob"]
    limits = rate_limit_pb2_grpc.RateLimitServiceStub(running.channel)
    for key, name, requests, seconds, scope in (
        ("api.per-user", "Per user", 100, 60, rpb.SCOPE_TYPE_USER),
        ("login.per-ip", "Login attempts per address", 10, 300, rpb.SCOPE_TYPE_IP),
        ("search.global", "Search, everyone together", 5000, 1, rpb.SCOPE_TYPE_GLOBAL),
    ):
        await limits.UpsertRateLimit(
            rpb.UpsertRateLimitRequest(
                rate_limit=rpb.RateLimit(
                    key=key,
                    name=name,
                    max_requests=requests,
                    time_window_seconds=seconds,
                    scope_type=scope,
                    action_on_limit=rpb.LIMIT_ACTION_BLOCK,
                )
            ),
            metadata=bearer(bob),
        )
    page = await pages()
    await sign_in(page, team.url, bob)
    await page.get_by_role("link", name="Limits").click()
    await expect(page.locator("tr", has_text="api.per-user")).to_contain_text("100 / 60 s")
    await screenshot(page, "limits")

    await page.get_by_role("button", name="Edit api.per-user").click()
    editing = page.locator("tr.editing")
    await editing.get_by_label("Requests").fill("0")
    await editing.get_by_role("button", name="Save").click()  # the API's own check
    await expect(editing.locator(".field-error")).to_contain_text("must be positive")
    await expect(editing.get_by_label("Requests")).to_have_attribute("aria-invalid", "true")
    await editing.get_by_label("Requests").fill("250")
    await editing.get_by_label("Over the limit").select_option("throttle")
    await editing.get_by_role("button", name="Save").click()
    row = page.locator("tr", has_text="api.per-user")
    await expect(row).to_contain_text("250 / 60 s")
    await expect(row).to_contain_text("throttle")
    got = await limits.GetRateLimit(
        rpb.GetRateLimitRequest(limit_key="api.per-user"), metadata=bearer(bob)
    )
    assert (got.rate_limit.max_requests, got.rate_limit.action_on_limit) == (
        250,
        rpb.LIMIT_ACTION_THROTTLE,
    )


# --- four eyes ------------------------------------------------------------------------


async def test_a_change_request_is_approved_by_a_second_person(
    team: Team, pages: PageFactory
) -> None:
    running = team.running
    alice = await pages()
    await sign_in(alice, team.url, team.tokens["alice"])
    await alice.goto(f"{team.url}/keys/{KEY}")
    await _edit(alice, "production")
    await alice.get_by_label("New value").fill("90")
    await alice.get_by_label("Reason").fill("slow upstream")
    await alice.get_by_role("button", name="Save").click()  # an admin may only propose
    form = alice.locator("#key-form")
    await expect(form.get_by_role("alert")).to_contain_text("production is protected")
    await form.get_by_role("button", name="Propose for approval").click()
    await expect(form.get_by_role("status")).to_contain_text("Proposed as change request")
    assert await _value(running, team.tokens["bob"], "production") == 60, "not yet"

    await alice.goto(team.url + "/changes")
    card = alice.locator("article", has_text=f"set {KEY} in production")
    await expect(card.get_by_role("button", name="Approve")).to_be_disabled()

    bob = await pages()
    await sign_in(bob, team.url, team.tokens["bob"])
    await bob.get_by_role("link", name="Changes").click()
    card = bob.locator("article", has_text=f"set {KEY} in production")
    await expect(card).to_contain_text("alice")
    await expect(card.locator(".diff .del")).to_contain_text("60")
    await expect(card.locator(".diff .ins")).to_contain_text("90")
    await screenshot(bob, "changes")
    await card.get_by_label("Ticket").fill("CAB-3")
    await card.get_by_role("button", name="Approve").click()
    await expect(card.get_by_role("status")).to_contain_text("Approved and applied")

    assert await _value(running, team.tokens["bob"], "production") == 90
    newest = (await _history(running, team.tokens["bob"]))[0]
    assert (newest.changed_by_username, newest.approved_by_username) == ("alice", "bob")
    assert (newest.reason, newest.approval_ticket) == ("slow upstream", "CAB-3")


# --- live -----------------------------------------------------------------------------


async def test_a_change_made_elsewhere_appears_without_a_reload(
    team: Team, pages: PageFactory
) -> None:
    running, bob = team.running, team.tokens["bob"]
    page = await pages()
    await sign_in(page, team.url, bob)
    await page.evaluate("window.stillTheSamePage = true")
    row = page.locator("tr[data-live='config:api.timeout']")
    await expect(row).to_contain_text("30")

    await _set(running, bob, "staging", 77)  # another client, over gRPC
    staging = row.locator("td").nth(_column(await _columns(page), "staging"))
    await expect(staging).to_contain_text("77")
    await expect(staging.locator(".layer")).to_have_text("override")
    await expect(page.locator("#feed")).to_contain_text(KEY)
    await expect(page.locator("#revision-number")).to_have_text(
        str(running.application.config.revision)
    )

    batch = batch_pb2_grpc.BatchServiceStub(running.channel)
    await batch.ApplyWrites(
        bpb.ApplyWritesRequest(writes=[_new_key("brand.new_key")]), metadata=bearer(bob)
    )
    await expect(page.get_by_text("New keys were added elsewhere")).to_be_visible()
    await page.get_by_role("button", name="Show them").click()
    await expect(
        page.locator("table.keys").get_by_role("link", name="brand.new_key")
    ).to_be_visible()
    assert await page.evaluate("window.stillTheSamePage") is True, "the page was reloaded"


async def _columns(page: Page) -> list[str]:
    return [t.strip() for t in await page.locator("table.keys thead th").all_inner_texts()]


def _column(columns: list[str], name: str) -> int:
    """The index, among a row's cells (its key is a th), of the column `name`."""
    return next(i for i, title in enumerate(columns) if title.lower().startswith(name)) - 1


def _new_key(key: str) -> cpb.ProposedWrite:
    return cpb.ProposedWrite(
        create_config=pb.CreateConfigRequest(
            config=pb.ConfigDefinition(
                key=key,
                type=pb.CONFIG_TYPE_STRING,
                category=key.split(".", maxsplit=1)[0],
                display_name=f"Key {key}",
                value=struct_pb2.Value(string_value="v"),
                is_active=True,
                is_editable=True,
                is_deletable=True,
            )
        )
    )


async def test_the_live_indicator_shows_a_drop_and_the_stream_resumes(
    tmp_path: Path, browser: Browser, pages: PageFactory
) -> None:
    """The server restarts under an open page: the indicator says so, and the stream
    resumes from the revision the page had, so a change made while it was down arrives."""
    database = tmp_path / "restart.db"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    options = {
        "auth": True,
        "console_listen": f"127.0.0.1:{port}",
        "console_session_key": "q2Vx7Rt4Wp9Ks3Nd6Hb1Zq8Lm2Vx7Rt4Wp9Ks3Nd6Hk=",
    }
    page = await pages()
    async with serving(database, console=True, **options) as running:
        token = await make_token(running, "bob", "site_admin")
        assert running.console is not None
        url = running.console.url
        await sign_in(page, url, token)
        await page.evaluate("window.stillTheSamePage = true")
    await expect(page.locator("#live")).to_have_attribute("data-state", "reconnecting")
    await screenshot(page, "reconnecting")

    async with serving(database, **{**options, "console_listen": None}) as running:
        await _set(running, token, "staging", 66)  # while no console is up
    async with serving(database, console=True, **options) as running:
        row = page.locator("tr[data-live='config:api.timeout']")
        staging = row.locator("td").nth(_column(await _columns(page), "staging"))
        await expect(page.locator("#live")).to_have_attribute("data-state", "live", timeout=15_000)
        await expect(staging).to_contain_text("66")
        await expect(page.locator("#feed")).to_contain_text(KEY)
    assert await page.evaluate("window.stillTheSamePage") is True


# --- many keys, keyboard, phone ----------------------------------------------------------


async def test_many_keys_are_searched_and_paged_without_a_reload(
    team: Team, pages: PageFactory
) -> None:
    running, bob = team.running, team.tokens["bob"]
    batch = batch_pb2_grpc.BatchServiceStub(running.channel)
    await batch.ApplyWrites(
        bpb.ApplyWritesRequest(writes=[_new_key(f"bulk.key_{n:04}") for n in range(250)]),
        metadata=bearer(bob),
    )
    page = await pages()
    await sign_in(page, team.url, bob)
    await page.evaluate("window.stillTheSamePage = true")
    rows = page.locator("table.keys tbody tr[data-live]")
    await expect(rows).to_have_count(100)
    await expect(page.locator(".count")).to_contain_text("256 keys")
    await page.get_by_role("button", name="Show 100 more").click()
    await expect(rows).to_have_count(200)
    await page.get_by_role("button", name="Show 56 more").click()
    await expect(rows).to_have_count(256)

    await page.get_by_label("Category").select_option("bulk")
    await expect(page.locator(".count")).to_contain_text("250 of 256 keys match")
    await page.get_by_label("Search").fill("key_012")
    await expect(rows).to_have_count(10)  # key_0120 … key_0129
    await page.get_by_label("Search").fill("no such words")
    await expect(page.get_by_role("heading", name="No key matches")).to_be_visible()
    assert await page.evaluate("window.stillTheSamePage") is True


async def test_the_console_is_usable_by_keyboard(team: Team, pages: PageFactory) -> None:
    page = await pages()
    await sign_in(page, team.url, team.tokens["alice"])
    await page.keyboard.press("/")  # the search box's shortcut
    await expect(page.get_by_label("Search")).to_be_focused()
    await page.keyboard.type("support")
    await expect(page.locator("table.keys tbody tr")).to_have_count(1)
    link = page.get_by_role("link", name="support.email")
    await link.focus()
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name="support.email", exact=True)).to_be_visible()
    edit = page.get_by_role("button", name="Edit support.email in staging")
    await edit.focus()
    await page.keyboard.press("Enter")
    await expect(page.get_by_label("New value")).to_be_visible()


async def test_the_console_reads_on_a_phone(team: Team, pages: PageFactory) -> None:
    page = await pages(width=390, height=844)
    await sign_in(page, team.url, team.tokens["alice"])
    overflow = await page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 1, "the page itself must not scroll sideways (the table does)"
    await screenshot(page, "phone")


async def test_a_reader_sees_the_refusal_and_nothing_changes(
    team: Team, pages: PageFactory
) -> None:
    running = team.running
    page = await pages()
    await sign_in(page, team.url, team.tokens["rita"])
    await page.goto(f"{team.url}/keys/{KEY}")
    await _edit(page, "staging")
    await page.get_by_label("New value").fill("31")
    await page.get_by_role("button", name="Save").click()
    await expect(page.locator("#key-form").get_by_role("alert")).to_contain_text(
        "PERMISSION_DENIED"
    )
    assert await _value(running, team.tokens["bob"], "staging") == 30
    await asyncio.sleep(0)  # the page stays as it was: no script error (checked by `pages`)
