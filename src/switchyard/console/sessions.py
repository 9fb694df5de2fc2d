"""Console sessions: the signed-in user's token, sealed into a cookie.

A session is the bearer token the user signed in with, who it belongs to, and the
session's CSRF token, encrypted and authenticated with AES-GCM under the console's key
and kept by the browser in an HttpOnly, SameSite=Strict cookie. Nothing is kept on the
server, so any replica that has the key serves any session, and revoking the token (or
its expiry) ends every session made with it at the next call, because every call
presents the token to the API again.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SESSION_COOKIE = "switchyard_session"
SIGN_IN_COOKIE = "switchyard_sign_in"
"""A sign-in form's own CSRF token: the form has no session yet to take one from."""
SESSION_SECONDS = 8 * 3600
"""How long a sign-in lasts, at most: a working day. The token's own expiry or
revocation ends it sooner."""
_PURPOSE = b"switchyard console session v1"
_NONCE_BYTES = 12


@dataclass(frozen=True)
class Session:
    """Who is signed in: `token` is None when the server runs without authentication,
    and the user then acts as its local operator."""

    token: str | None
    user_id: str
    username: str
    role: str
    csrf: str
    expires_at: float

    @property
    def authenticated(self) -> bool:
        return self.token is not None


class SessionSealer:
    """Seals sessions into cookie values and opens them again."""

    def __init__(self, key: bytes, *, clock: Callable[[], float] = time.time) -> None:
        if len(key) != 32:
            raise ValueError("the console session key must be 32 bytes")
        self._aead = AESGCM(key)
        self._clock = clock

    @classmethod
    def from_setting(cls, text: str | None) -> SessionSealer:
        """The sealer for `Settings.console_session_key`: base64 of 32 bytes, or a fresh
        random key when unset. Raises ValueError for a key that is not that."""
        if text is None:
            return cls(AESGCM.generate_key(bit_length=256))
        try:
            key = base64.b64decode(text.strip(), validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if len(key) != 32:
            raise ValueError(
                "SWITCHYARD_CONSOLE_SESSION_KEY must be base64 of 32 random bytes "
                "(for example the output of `openssl rand -base64 32`)"
            )
        return cls(key)

    def new(self, token: str | None, user_id: str, username: str, role: str) -> Session:
        return Session(
            token=token,
            user_id=user_id,
            username=username,
            role=role,
            csrf=secrets.token_urlsafe(32),
            expires_at=self._clock() + SESSION_SECONDS,
        )

    def seal(self, session: Session) -> str:
        nonce = secrets.token_bytes(_NONCE_BYTES)
        plain = json.dumps(asdict(session), separators=(",", ":")).encode()
        sealed = nonce + self._aead.encrypt(nonce, plain, _PURPOSE)
        return base64.urlsafe_b64encode(sealed).decode().rstrip("=")

    def open(self, text: str | None) -> Session | None:
        """The session a cookie value seals; None for a value that was not sealed with
        this key, was altered, or has expired."""
        if not text:
            return None
        try:
            sealed = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            plain = self._aead.decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], _PURPOSE)
            session = Session(**json.loads(plain))
        except (binascii.Error, ValueError, TypeError, InvalidTag):
            return None
        return session if session.expires_at > self._clock() else None

    def max_age(self, session: Session) -> int:
        """The cookie's Max-Age: the session's remaining life."""
        return max(0, int(session.expires_at - self._clock()))


def same_token(given: str | None, expected: str) -> bool:
    """Whether a request's CSRF token is the expected one, in constant time."""
    return given is not None and secrets.compare_digest(given.encode(), expected.encode())


__all__ = [
    "SESSION_COOKIE",
    "SESSION_SECONDS",
    "SIGN_IN_COOKIE",
    "Session",
    "SessionSealer",
    "same_token",
]
