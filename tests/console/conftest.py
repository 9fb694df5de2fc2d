"""The web console against a real server: a real SQLite file, the gRPC server on
loopback, and the console beside it exactly as `switchyard serve` runs it (uvicorn in the
same event loop, calling the API over the server's private socket). Browser tests drive
Debian's Chromium with Playwright; HTTP tests speak to the console with httpx."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Dialog, Page, async_playwright

from ..e2e.conftest import Running, serving
from ..e2e.test_security import make_token

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(os.environ.get("SWITCHYARD_SCREENSHOTS", ROOT / "build" / "screenshots"))
"""Where the browser tests save pictures of the main screens (`make screenshots` copies
them into docs/console for the README)."""

CHROMIUM_FLAGS = [
    "--no-sandbox",  # the tests may run as root, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # No calls home: this machine's network is closed, and they would only slow starts.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium() -> str:
    """Debian's Chromium (`make test` installs it); never a browser Playwright downloads."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "Chromium is missing: `make test` installs Debian's package `chromium`"
    return found


@dataclass
class Team:
    """A server with authentication on, its console, and a token per person."""

    running: Running
    tokens: dict[str, str]

    @property
    def url(self) -> str:
        assert self.running.console is not None
        return self.running.console.url


@pytest.fixture
async def team(tmp_path: Path) -> AsyncIterator[Team]:
    async with serving(tmp_path / "console.db", auth=True, console=True) as running:
        tokens = {
            "alice": await make_token(running, "alice", "admin"),
            "bob": await make_token(running, "bob", "site_admin"),
            "rita": await make_token(running, "rita", "reader"),
        }
        yield Team(running, tokens)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_FLAGS)
        try:
            yield launched
        finally:
            await launched.close()


PageFactory = Callable[..., Awaitable[Page]]


@pytest.fixture
async def pages(browser: Browser) -> AsyncIterator[PageFactory]:
    """Makes pages, each in a browser context of its own (its own cookies), that answer
    htmx's prompts and confirmations as a person would. A script error on any of them
    fails the test."""
    errors: list[str] = []

    async def new_page(width: int = 1360, height: int = 860) -> Page:
        context = await browser.new_context(viewport={"width": width, "height": height})
        page = await context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))

        async def answer(dialog: Dialog) -> None:
            if dialog.type == "prompt":
                await dialog.accept("from the browser test")
            else:
                await dialog.accept()

        page.on("dialog", answer)
        return page

    yield new_page
    assert errors == [], f"script errors in the console: {errors}"


async def sign_in(page: Page, url: str, token: str) -> None:
    await page.goto(url + "/")
    await page.get_by_label("Token").fill(token)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(url + "/")
    await page.locator("#live[data-state='live']").wait_for()


async def screenshot(page: Page, name: str) -> None:
    """Saves the page whole (Playwright makes the folder)."""
    await page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)


# --- plain HTTP ----------------------------------------------------------------------

_CSRF = re.compile(r'<meta name="csrf-token" content="([^"]*)">')


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "the page has no CSRF token"
    return found.group(1)


async def http_sign_in(client: httpx.AsyncClient, token: str | None) -> str:
    """Signs `client` in as a browser would; returns the session's CSRF token."""
    form = await client.get("/sign-in")
    response = await client.post(
        "/sign-in",
        data={"token": token or ""},
        headers={"x-csrf-token": csrf_of(form.text), "hx-request": "true"},
    )
    assert response.status_code == 204, response.text
    assert response.headers["hx-redirect"] == "/"
    page = await client.get("/")
    assert page.status_code == 200
    return csrf_of(page.text)


def writing(csrf: str, **extra: Any) -> dict[str, str]:
    """The headers of a write the console's own page makes."""
    return {"x-csrf-token": csrf, "hx-request": "true", **extra}
