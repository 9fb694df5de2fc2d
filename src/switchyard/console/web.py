"""What every page shares: the templates, who is signed in, and how a refusal is shown.

A page handler reads `signed_in(request)` for the session and the API as that user,
makes its calls, and returns `render(...)`. A call the API refuses raises `Refusal`:
`refusal_page` turns the ones a page cannot handle itself into a page that says what
happened (the sign-in page for a token that stopped working).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc
import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.templating import Jinja2Templates

from switchyard.console import formatting
from switchyard.console.catalog import Catalogs
from switchyard.console.gateway import Api, Gateway, Refusal
from switchyard.console.sessions import SESSION_COOKIE, Session, SessionSealer

_STATUS = {
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.ABORTED: 409,
}


@dataclass(frozen=True)
class Console:
    """What the pages need, kept on the Starlette app's state."""

    gateway: Gateway
    sealer: SessionSealer
    catalogs: Catalogs
    https: bool
    authenticates: bool
    """Whether the server asks callers for credentials: the sign-in page asks for a token,
    or offers to go on as the local operator."""


class SignInRequired(Exception):
    """No session, an expired one, or a token the API no longer accepts."""

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message


def console_of(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


def session_of(request: Request) -> Session | None:
    return console_of(request).sealer.open(request.cookies.get(SESSION_COOKIE))


def signed_in(request: Request) -> tuple[Session, Api]:
    """The session of `request` and the API as its user. Raises SignInRequired."""
    session = session_of(request)
    if session is None:
        raise SignInRequired
    client = request.client.host if request.client else None
    return session, console_of(request).gateway.as_user(session.token, client)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("switchyard.console", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        auto_reload=False,  # package files: no stat of every template on every render
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = formatting.when
    env.filters["short"] = formatting.short
    env.filters["display"] = formatting.display
    return env


templates = Jinja2Templates(env=_environment())


def is_fragment(request: Request) -> bool:
    """Whether htmx asked for a part of a page (not a whole page)."""
    return request.headers.get("hx-request") == "true" and (
        request.headers.get("hx-history-restore-request") != "true"
    )


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    session = session_of(request)
    return templates.TemplateResponse(
        request,
        name,
        {"session": session, "fragment": is_fragment(request), **context},
        status_code=status_code,
    )


def redirect(request: Request, url: str) -> Response:
    """A redirect a browser follows whether the page or htmx asked."""
    if request.headers.get("hx-request") == "true":
        return Response(status_code=204, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


async def refusal_page(request: Request, refusal: Exception) -> Response:
    assert isinstance(refusal, Refusal)
    if refusal.code == grpc.StatusCode.UNAUTHENTICATED:
        return await sign_in_page(request, SignInRequired(refusal.message))
    return render(
        request,
        "refused_notice.html" if is_fragment(request) else "refused.html",
        status_code=_STATUS.get(refusal.code, 500),
        refusal=refusal,
    )


async def sign_in_page(request: Request, required: Exception) -> Response:
    assert isinstance(required, SignInRequired)
    url = "/sign-in"
    if required.message:
        url += "?expired=1"
    response = redirect(request, url)
    if required.message:
        response.delete_cookie(SESSION_COOKIE, path="/")
    return response


__all__ = [
    "Console",
    "SignInRequired",
    "console_of",
    "is_fragment",
    "redirect",
    "refusal_page",
    "render",
    "session_of",
    "sign_in_page",
    "signed_in",
    "templates",
]
