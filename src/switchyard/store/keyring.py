"""Master keys: the keys that wrap the data keys of encrypted values.

Values of `is_encrypted` keys are sealed with a data key of their own config key
(`store.sealing`), and only the wrapped form of each data key is stored. The master keys
that wrap them never reach the database: they come from a keyring, a list of
`key_id:base64key` entries (32 random bytes each, AES-256), first from
SWITCHYARD_ENCRYPTION_KEYS or else from the file SWITCHYARD_ENCRYPTION_KEY_FILE names.

The first entry is current: new data keys are wrapped with it, and `switchyard keys
rotate` rewraps every data key under it. The others only unwrap, so that an old key stays
in the keyring until rotation has moved every data key off it, and a replica that has
not heard of the new key yet can still read what the others wrote before.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
import stat
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import structlog
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from switchyard.domain.errors import FailedPrecondition

log = structlog.get_logger(__name__)

KEY_BYTES = 32
"""AES-256."""
NONCE_BYTES = 12
"""AES-GCM's 96-bit nonce, random for every encryption."""
KEYS_VARIABLE = "SWITCHYARD_ENCRYPTION_KEYS"
KEY_FILE_VARIABLE = "SWITCHYARD_ENCRYPTION_KEY_FILE"
SETTINGS_HINT = f"set {KEYS_VARIABLE} (or {KEY_FILE_VARIABLE})"

_KEY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class KeyringError(FailedPrecondition):
    """A keyring text or key file that cannot be used (at start-up, never mid-request)."""


@dataclass(frozen=True)
class Keyring:
    """Master keys by id, the current one first."""

    entries: tuple[tuple[str, bytes], ...] = field(repr=False)
    source: str = "the keyring"
    """Where the keys came from, for messages: a setting's name or a file's path."""
    _ciphers: dict[str, AESGCM] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.entries:
            raise KeyringError(f"{self.source} holds no key")
        ciphers = {}
        for key_id, key in self.entries:
            if not _KEY_ID.fullmatch(key_id):
                raise KeyringError(
                    f"{self.source}: key id {key_id!r} must be 1 to 64 letters, digits, "
                    "'.', '_' or '-'"
                )
            if len(key) != KEY_BYTES:
                raise KeyringError(
                    f"{self.source}: key {key_id!r} has {len(key)} bytes; AES-256 needs "
                    f"{KEY_BYTES} (make one with `switchyard keys generate`)"
                )
            if key_id in ciphers:
                raise KeyringError(f"{self.source}: key id {key_id!r} is listed twice")
            ciphers[key_id] = AESGCM(key)
        object.__setattr__(self, "_ciphers", ciphers)

    @property
    def current_id(self) -> str:
        return self.entries[0][0]

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(key_id for key_id, _ in self.entries)

    def holds(self, key_id: str) -> bool:
        return key_id in self._ciphers

    def wrap(self, secret: bytes, aad: bytes) -> tuple[str, str]:
        """`secret` encrypted under the current key: (key id, base64 of nonce|ciphertext)."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[self.current_id].encrypt(nonce, secret, aad)
        return self.current_id, base64.b64encode(nonce + sealed).decode("ascii")

    def unwrap(self, key_id: str, wrapped: str, aad: bytes, *, what: str) -> bytes:
        """What `wrap` wrapped. Raises FailedPrecondition when the key id is not in the
        keyring or the text was altered (or wrapped for another place)."""
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise FailedPrecondition(
                f"{what} is wrapped by master key {key_id!r}, which {self.source} does not "
                f"hold (it holds {', '.join(self.key_ids)}): add that key back, or "
                "run `switchyard keys rotate` while it is still there"
            )
        try:
            blob = base64.b64decode(wrapped, validate=True)
            return cipher.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
        except (InvalidTag, binascii.Error, ValueError):
            raise FailedPrecondition(
                f"{what} does not decrypt under master key {key_id!r} of {self.source}: "
                "the key is not the one it was wrapped with, or the stored text was altered"
            ) from None

    @classmethod
    def parse(cls, text: str, *, source: str) -> Keyring:
        """Entries `key_id:base64key`, separated by commas or new lines; blank lines and
        `#` comments are skipped. Raises KeyringError."""
        entries = []
        lines = (line.split("#", 1)[0] for line in text.splitlines())
        for raw in (part for line in lines for part in line.split(",")):
            entry = raw.strip()
            if not entry:
                continue
            key_id, sep, encoded = entry.partition(":")
            if not sep:
                raise KeyringError(f"{source}: an entry must be KEY_ID:BASE64KEY")
            try:
                key = base64.b64decode(
                    _padded(encoded.strip()), altchars=_altchars(encoded), validate=True
                )
            except (binascii.Error, ValueError):
                raise KeyringError(f"{source}: key {key_id.strip()!r} is not base64") from None
            entries.append((key_id.strip(), key))
        return cls(tuple(entries), source=source)

    @classmethod
    def generate(cls, *, source: str = "a generated keyring") -> Keyring:
        key_id, key = new_key()
        return cls(((key_id, key),), source=source)


def new_key() -> tuple[str, bytes]:
    """A fresh master key and an id that says when it was made."""
    stamp = datetime.now(UTC).strftime("%Y%m%d")
    return f"k{stamp}-{secrets.token_hex(3)}", os.urandom(KEY_BYTES)


def key_line(key_id: str, key: bytes) -> str:
    """One keyring entry, as SWITCHYARD_ENCRYPTION_KEYS and key files hold it."""
    return f"{key_id}:{base64.b64encode(key).decode('ascii')}"


def _padded(encoded: str) -> str:
    return encoded + "=" * (-len(encoded) % 4)


def _altchars(encoded: str) -> bytes | None:
    """Accepts URL-safe base64 too."""
    return b"-_" if ("-" in encoded or "_" in encoded) else None


class KeySource:
    """Where the keyring comes from. A keyring given as text or an explicit file is read
    once, when the source is made, so a mistake stops start-up; the embedded default's
    file is made on first need (the first value sealed), with mode 0600."""

    def __init__(
        self,
        keyring: Keyring | None = None,
        *,
        default_file: Path | None = None,
    ) -> None:
        self._keyring = keyring
        self._default_file = default_file

    @classmethod
    def none(cls) -> KeySource:
        return cls()

    @classmethod
    def of(cls, keyring: Keyring) -> KeySource:
        return cls(keyring)

    @classmethod
    def from_file(cls, path: Path) -> KeySource:
        """Raises KeyringError when the file cannot be read or holds no usable key."""
        return cls(_read_key_file(path))

    @classmethod
    def embedded(cls, path: Path) -> KeySource:
        """The embedded default: `path` (beside the SQLite file), made when first needed."""
        return cls(default_file=path)

    @property
    def description(self) -> str:
        if self._keyring is not None:
            return self._keyring.source
        if self._default_file is not None:
            return str(self._default_file)
        return "no keyring"

    def keyring(self, *, create: bool = False) -> Keyring | None:
        """The keyring, or None when there is none (and `create` is false, or no file
        may be made here). Raises KeyringError for a file that cannot be used."""
        if self._keyring is None and self._default_file is not None:
            if self._default_file.exists():
                self._keyring = _read_key_file(self._default_file)
            elif create:
                self._keyring = _create_key_file(self._default_file)
        return self._keyring


def key_source(*, keys: str | None, key_file: str | None, sqlite_file: Path | None) -> KeySource:
    """The keyring the settings name: SWITCHYARD_ENCRYPTION_KEYS, else the file
    SWITCHYARD_ENCRYPTION_KEY_FILE names, else (for an embedded SQLite database) a file
    beside the database, `<database>.keys`, made on first need; else none, and marking a
    key is_encrypted fails with FAILED_PRECONDITION. Raises KeyringError."""
    if keys and key_file:
        raise KeyringError(f"set {KEYS_VARIABLE} or {KEY_FILE_VARIABLE}, not both")
    if keys:
        return KeySource.of(Keyring.parse(keys, source=KEYS_VARIABLE))
    if key_file:
        return KeySource.from_file(Path(key_file))
    if sqlite_file is not None:
        return KeySource.embedded(sqlite_file.with_name(sqlite_file.name + ".keys"))
    return KeySource.none()


def _read_key_file(path: Path) -> Keyring:
    try:
        text = path.read_text(encoding="utf-8")
        mode = path.stat().st_mode
    except OSError as error:
        raise KeyringError(
            f"cannot read the key file {path}: {error.strerror or error} "
            f"(make one with `switchyard keys generate > {path}`)"
        ) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning(
            "the key file can be read by others than its owner: chmod 600 it", path=str(path)
        )
    return Keyring.parse(text, source=str(path))


def _create_key_file(path: Path) -> Keyring:
    """Writes a new key file whole, then links it into place: a process that finds the
    file finds it complete, and of two processes making it at once, one file wins."""
    key_id, key = new_key()
    text = (
        "# Switchyard's master keys for encrypted values: KEY_ID:BASE64KEY, current first.\n"
        "# Without this file the encrypted values of the database beside it cannot be read.\n"
        f"{key_line(key_id, key)}\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
        os.link(draft, path)
    except FileExistsError:
        return _read_key_file(path)  # another process made it first
    finally:
        draft.unlink(missing_ok=True)
    log.info("made a master key for encrypted values", path=str(path), key_id=key_id)
    return Keyring(((key_id, key),), source=str(path))


__all__ = [
    "KEYS_VARIABLE",
    "KEY_BYTES",
    "KEY_FILE_VARIABLE",
    "SETTINGS_HINT",
    "KeySource",
    "Keyring",
    "KeyringError",
    "key_line",
    "key_source",
    "new_key",
]
