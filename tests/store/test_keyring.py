"""The keyring: what SWITCHYARD_ENCRYPTION_KEYS and key files may hold, and the mistakes
that stop start-up with a message saying what to fix."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from switchyard.domain.errors import FailedPrecondition
from switchyard.store.keyring import Keyring, KeyringError, key_line, key_source, new_key

KEY = base64.b64encode(bytes(range(32))).decode()


def test_entries_parse_current_first_from_commas_lines_and_comments() -> None:
    text = f"# rotated 2026-11\nk2:{KEY}, k1:{base64.urlsafe_b64encode(b'x' * 32).decode()}\n"

    keyring = Keyring.parse(text, source="test")

    assert keyring.current_id == "k2"
    assert keyring.key_ids == ("k2", "k1")


def test_a_generated_line_parses_back() -> None:
    line = key_line(*new_key())

    keyring = Keyring.parse(line, source="generated")

    assert keyring.holds(line.split(":")[0])


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "holds no key"),
        (KEY, "KEY_ID:BASE64KEY"),
        ("k1:not base64!", "not base64"),
        (f"k1:{base64.b64encode(b'short').decode()}", "AES-256 needs 32"),
        (f"k1:{KEY},k1:{KEY}", "listed twice"),
        (f"bad id:{KEY}", "key id"),
    ],
)
def test_a_keyring_that_cannot_be_used_says_why(text: str, problem: str) -> None:
    with pytest.raises(KeyringError, match=problem) as refused:
        Keyring.parse(text, source="SWITCHYARD_ENCRYPTION_KEYS")

    assert isinstance(refused.value, FailedPrecondition)  # start-up reports it, no traceback
    assert KEY not in refused.value.message


def test_wrapped_text_opens_only_with_its_key_and_place() -> None:
    keyring = Keyring.parse(f"k1:{KEY}", source="test")
    key_id, wrapped = keyring.wrap(b"data key", b"here")

    assert keyring.unwrap(key_id, wrapped, b"here", what="it") == b"data key"
    with pytest.raises(FailedPrecondition, match="does not decrypt"):
        keyring.unwrap(key_id, wrapped, b"elsewhere", what="it")
    with pytest.raises(FailedPrecondition, match="'k9'"):
        keyring.unwrap("k9", wrapped, b"here", what="it")


def test_the_settings_choose_one_source(tmp_path: Path) -> None:
    key_file = tmp_path / "keys"
    key_file.write_text(f"k1:{KEY}\n")

    with pytest.raises(KeyringError, match="not both"):
        key_source(keys=f"k1:{KEY}", key_file=str(key_file), sqlite_file=None)
    with pytest.raises(KeyringError, match="cannot read the key file"):
        key_source(keys=None, key_file=str(tmp_path / "missing"), sqlite_file=None)

    from_file = key_source(keys=None, key_file=str(key_file), sqlite_file=None).keyring()
    assert from_file is not None and from_file.current_id == "k1"
    assert key_source(keys=None, key_file=None, sqlite_file=None).keyring(create=True) is None
    embedded = key_source(keys=None, key_file=None, sqlite_file=tmp_path / "x.db")
    assert embedded.keyring() is None  # made on first need only
    assert embedded.keyring(create=True) is not None
    assert (tmp_path / "x.db.keys").stat().st_mode & 0o777 == 0o600
