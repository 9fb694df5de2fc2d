"""The console as an ASGI application: its routes, in one table, and what wraps them."""

from __future__ import annotations

from collections.abc import Sequence
from importlib.resources import files

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from switchyard.console.catalog import Catalogs
from switchyard.console.gateway import Gateway, Refusal
from switchyard.console.guard import Guard
from switchyard.console.pages import changes, flags, key, keys, limits, live, signin
from switchyard.console.sessions import SessionSealer
from switchyard.console.web import Console, SignInRequired, refusal_page, sign_in_page

KEY = "{key:str}"


async def healthz(request: Request) -> Response:
    """Answers without the API: the console itself serves (and the benchmark's null)."""
    return PlainTextResponse("ok")


ROUTES = [
    Route("/healthz", healthz),
    Route("/sign-in", signin.sign_in_form, methods=["GET"]),
    Route("/sign-in", signin.sign_in, methods=["POST"]),
    Route("/sign-out", signin.sign_out, methods=["POST"]),
    Route("/", keys.key_list),
    Route(f"/keys/{KEY}/row", keys.key_row),
    Route(f"/keys/{KEY}/values", key.key_values),
    Route(f"/keys/{KEY}/history", key.key_history),
    Route(f"/keys/{KEY}/form", key.edit_form),
    Route(f"/keys/{KEY}/value", key.save_value, methods=["POST"]),
    Route(f"/keys/{KEY}/rollback", key.roll_back, methods=["POST"]),
    Route(f"/keys/{KEY}", key.key_page),
    Route("/flags", flags.flag_list),
    Route(f"/flags/{KEY}/row", flags.flag_row),
    Route(f"/flags/{KEY}/enabled", flags.set_enabled, methods=["POST"]),
    Route(f"/flags/{KEY}/rollout", flags.set_rollout, methods=["POST"]),
    Route("/limits", limits.limit_list),
    Route(f"/limits/{KEY}/row", limits.limit_row),
    Route(f"/limits/{KEY}", limits.save_limit, methods=["POST"]),
    Route("/changes", changes.change_list),
    Route("/changes/{id:str}", changes.change_card),
    Route("/changes/{id:str}/decision", changes.decide, methods=["POST"]),
    Route("/live", live.live),
    Mount("/static", StaticFiles(directory=str(files("switchyard.console") / "static"))),
]


def build_app(
    gateway: Gateway,
    sealer: SessionSealer,
    *,
    https: bool,
    authenticates: bool,
    allowed_hosts: Sequence[str] = ("*",),
) -> Starlette:
    """The console over `gateway`. `allowed_hosts` are the Host headers it answers (a
    console on loopback answers only loopback names, so that a web page cannot reach it
    through a name it rebinds to 127.0.0.1)."""
    app = Starlette(
        routes=ROUTES,
        middleware=[  # the first wraps the others: every answer gets the Guard's headers
            Middleware(Guard, sealer=sealer, https=https),
            Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts)),
        ],
        exception_handlers={Refusal: refusal_page, SignInRequired: sign_in_page},
    )
    app.state.console = Console(
        gateway=gateway,
        sealer=sealer,
        catalogs=Catalogs(),
        https=https,
        authenticates=authenticates,
    )
    return app


__all__ = ["ROUTES", "build_app", "healthz"]
