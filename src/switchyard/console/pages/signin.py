"""Signing in with a token, and out.

The token is checked by asking the API who it belongs to (`AccessService/WhoAmI`), the
call any caller may make. A server without authentication answers for its local
operator whatever is sent: its sign-in page offers to continue as that operator.
"""

from __future__ import annotations

import secrets

import grpc
from starlette.requests import Request
from starlette.responses import Response

from switchyard.console.gateway import Refusal
from switchyard.console.sessions import SESSION_COOKIE, SIGN_IN_COOKIE
from switchyard.console.web import console_of, redirect, render, session_of
from switchyard.gen.v1 import access_pb2 as apb

SIGN_IN_SECONDS = 600
"""How long a sign-in form may stay open before it must be loaded again."""


async def sign_in_form(request: Request) -> Response:
    if session_of(request) is not None:
        return redirect(request, "/")
    console = console_of(request)
    nonce = secrets.token_urlsafe(32)
    response = render(
        request,
        "sign_in.html",
        csrf=nonce,
        open_server=not console.authenticates,
        expired=request.query_params.get("expired") == "1",
        error=None,
    )
    response.set_cookie(
        SIGN_IN_COOKIE,
        nonce,
        max_age=SIGN_IN_SECONDS,
        path="/sign-in",
        httponly=True,
        samesite="strict",
        secure=console.https,
    )
    return response


async def sign_in(request: Request) -> Response:
    """Takes the token of the form (the Guard has checked the form's CSRF token)."""
    console = console_of(request)
    form = await request.form()
    token = str(form.get("token") or "").strip() or None
    if token is not None and token.split() != [token]:
        return _failed(request, "A token has no spaces or line breaks: paste it again.")
    api = console.gateway.as_user(token)
    try:
        me = await api(api.access.WhoAmI, apb.WhoAmIRequest())
    except Refusal as refusal:
        if refusal.code == grpc.StatusCode.UNAUTHENTICATED:
            message = (
                "That token was not accepted: it is unknown, expired or revoked."
                if token
                else "This server requires a token."
            )
            return _failed(request, message)
        return _failed(request, f"The API did not answer: {refusal}")
    session = console.sealer.new(
        token if me.authenticated else None, me.user_id, me.username, me.role
    )
    response = redirect(request, "/")
    response.set_cookie(
        SESSION_COOKIE,
        console.sealer.seal(session),
        max_age=console.sealer.max_age(session),
        path="/",
        httponly=True,
        samesite="strict",
        secure=console.https,
    )
    response.delete_cookie(SIGN_IN_COOKIE, path="/sign-in")
    return response


def _failed(request: Request, message: str) -> Response:
    return render(
        request,
        "sign_in_form.html",
        status_code=200,  # htmx swaps 2xx answers: the form comes back with its error
        csrf=request.cookies.get(SIGN_IN_COOKIE, ""),
        open_server=False,
        expired=False,
        error=message,
    )


async def sign_out(request: Request) -> Response:
    response = redirect(request, "/sign-in")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


__all__ = ["sign_in", "sign_in_form", "sign_out"]
