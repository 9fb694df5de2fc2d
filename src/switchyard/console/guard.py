"""What the console does for every request before a page sees it.

- Headers a browser-facing service sends: a content security policy that admits only
  the console's own scripts and styles (no inline code, no framing), no caching of
  anything but the static files, no sniffing, no referrer, HSTS over HTTPS.
- Cross-site request forgery: a request that changes something must come from the
  console's own page. Browsers say where a request comes from (`Sec-Fetch-Site`,
  `Origin`), and the page sends its session's CSRF token in the `X-CSRF-Token` header,
  which another site can neither read nor set. The sign-in form, which has no session
  yet, sends the token of its own short-lived cookie instead.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from switchyard.console.sessions import SESSION_COOKIE, SIGN_IN_COOKIE, SessionSealer, same_token

CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SIGN_IN_PATH = "/sign-in"

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    )
)
HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=(), payment=()",
}
NO_STORE = "no-store"
REVALIDATE = "no-cache"  # static files: kept, but checked (ETag) before each use


class Guard:
    """ASGI middleware: the headers above on every response, and the CSRF check on every
    request that is not GET, HEAD or OPTIONS."""

    def __init__(self, app: ASGIApp, sealer: SessionSealer, *, https: bool) -> None:
        self._app = app
        self._sealer = sealer
        self._headers = dict(HEADERS)
        if https:
            self._headers["strict-transport-security"] = "max-age=31536000"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        static = scope["path"].startswith("/static/")

        async def send_guarded(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self._headers.items():
                    headers[name] = value
                headers["cache-control"] = REVALIDATE if static else NO_STORE
            await send(message)

        request = Request(scope)
        if request.method not in SAFE_METHODS:
            refusal = self._forgery(request)
            if refusal is not None:
                response = PlainTextResponse(refusal, status_code=403)
                await response(scope, receive, send_guarded)
                return
        await self._app(scope, receive, send_guarded)

    def _forgery(self, request: Request) -> str | None:
        """Why `request` does not come from the console's page; None when it does."""
        site = request.headers.get("sec-fetch-site")
        if site is not None and site not in {"same-origin", "none"}:
            return f"refused: this request came from another site ({site})"
        origin = request.headers.get("origin")
        if origin is not None and urlsplit(origin).netloc != request.headers.get("host"):
            return "refused: this request came from another origin"
        given = request.headers.get(CSRF_HEADER)
        if request.url.path == SIGN_IN_PATH:
            expected = request.cookies.get(SIGN_IN_COOKIE)
        else:
            session = self._sealer.open(request.cookies.get(SESSION_COOKIE))
            expected = session.csrf if session is not None else None
        if expected is None:
            return "refused: no session (sign in again)"
        if not same_token(given, expected):
            return "refused: the request lacks the page's CSRF token (reload the page)"
        return None


__all__ = [
    "CONTENT_SECURITY_POLICY",
    "CSRF_HEADER",
    "HEADERS",
    "NO_STORE",
    "SAFE_METHODS",
    "Guard",
]
