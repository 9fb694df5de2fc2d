"""The console's pure parts, without a server: sessions sealed into cookies, values as a
person reads and types them, which Host names the console answers, and the key list's
search. Each is something a page relies on without checking it again."""

from __future__ import annotations

import base64
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from switchyard.console import formatting
from switchyard.console.catalog import Catalog, Cell, Column, Entry
from switchyard.console.formatting import DiffLine, NotJson, diff_lines, editable, parse_input
from switchyard.console.server import allowed_hosts
from switchyard.console.sessions import SESSION_SECONDS, Session, SessionSealer, same_token
from switchyard.gen.v1 import config_pb2 as pb

KEY = base64.b64encode(bytes(range(32))).decode()
"""A fixed console session key, as `SWITCHYARD_CONSOLE_SESSION_KEY` holds it."""


class Clock:
    """A clock a test moves by hand."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _session(sealer: SessionSealer) -> Session:
    return sealer.new("swy_secret-token", "user-1", "alice", "admin")


def _flip(text: str, at: int | None = None) -> str:
    """`text` with one character changed (in the middle: the last character of unpadded
    base64 may carry only bits that decoding drops)."""
    where = len(text) // 2 if at is None else at
    other = "A" if text[where] != "A" else "B"
    return text[:where] + other + text[where + 1 :]


# --- sessions -----------------------------------------------------------------------


def test_a_sealed_session_opens_to_the_same_session() -> None:
    """The cookie is all the console keeps of a sign-in: opening it must give back the
    token, the user and the CSRF token exactly, or every page would act as someone else
    or refuse every write."""
    sealer = SessionSealer.from_setting(KEY)
    session = _session(sealer)
    sealed = sealer.seal(session)
    assert sealer.open(sealed) == session
    assert session.authenticated
    assert len(session.csrf) >= 32
    assert "swy_secret-token" not in sealed and "alice" not in sealed, "sealed, not encoded"


def test_two_seals_of_one_session_differ_but_both_open() -> None:
    """A fresh nonce per seal: the same session sealed twice gives different cookies (a
    repeated nonce under AES-GCM would leak the key stream)."""
    sealer = SessionSealer.from_setting(KEY)
    session = _session(sealer)
    first, second = sealer.seal(session), sealer.seal(session)
    assert first != second
    assert sealer.open(first) == sealer.open(second) == session


def test_replicas_with_the_same_key_open_each_others_sessions() -> None:
    """Nothing is kept on the server, so any console with the key serves any session:
    that is what lets a session survive a restart or a load balancer."""
    one, other = SessionSealer.from_setting(KEY), SessionSealer.from_setting(KEY)
    session = _session(one)
    assert other.open(one.seal(session)) == session


def test_a_tampered_cookie_does_not_open() -> None:
    """A browser owns its cookie: changing any part of it (to become another user, or to
    stretch its expiry) must make it worthless rather than different."""
    sealer = SessionSealer.from_setting(KEY)
    sealed = sealer.seal(_session(sealer))
    for where in (0, 5, len(sealed) // 2, len(sealed) - 3):
        assert sealer.open(_flip(sealed, where)) is None, where
    assert sealer.open(sealed[:-4]) is None
    assert sealer.open(sealed + "AAAA") is None


def test_a_cookie_sealed_with_another_key_does_not_open() -> None:
    """A session made by another console (another key) signs no one in here."""
    mine = SessionSealer.from_setting(KEY)
    theirs = SessionSealer.from_setting(None)
    assert mine.open(theirs.seal(_session(theirs))) is None


def test_an_expired_session_does_not_open() -> None:
    """A sign-in lasts a working day at most, however long the browser keeps the
    cookie: the expiry is sealed inside it and checked on every request."""
    clock = Clock()
    sealer = SessionSealer(base64.b64decode(KEY), clock=clock)
    session = _session(sealer)
    sealed = sealer.seal(session)
    assert session.expires_at == clock.now + SESSION_SECONDS
    assert sealer.max_age(session) == SESSION_SECONDS
    clock.now += SESSION_SECONDS - 1
    assert sealer.open(sealed) == session
    assert sealer.max_age(session) == 1
    clock.now += 1
    assert sealer.open(sealed) is None
    assert sealer.max_age(session) == 0


@pytest.mark.parametrize(
    "garbage",
    [None, "", "not a cookie", "!!!!", "AAAA", "A" * 200, "é-unicode", "=" * 8],
)
def test_garbage_does_not_open_and_does_not_raise(garbage: str | None) -> None:
    """Whatever a browser (or an attacker) sends as the cookie, the console answers
    "not signed in" rather than a server error."""
    assert SessionSealer.from_setting(KEY).open(garbage) is None


def test_a_session_of_an_open_server_has_no_token() -> None:
    """Without authentication the session carries no token, and the console calls the
    API as the local operator."""
    sealer = SessionSealer.from_setting(KEY)
    session = sealer.new(None, "op", "local-operator", "site_admin")
    opened = sealer.open(sealer.seal(session))
    assert opened is not None and opened.token is None and not opened.authenticated


@pytest.mark.parametrize(
    "setting",
    [
        "not base64 at all!",
        base64.b64encode(b"sixteen bytes!!!").decode(),  # too short
        base64.b64encode(bytes(33)).decode(),  # too long
        "",
    ],
)
def test_a_bad_session_key_is_refused_with_how_to_make_one(setting: str) -> None:
    """A wrong key must stop the server at start with what to do, not run with a key
    other replicas do not share (every session would end at the next load balancer hop)."""
    with pytest.raises(ValueError) as refused:
        SessionSealer.from_setting(setting)
    message = str(refused.value)
    assert "SWITCHYARD_CONSOLE_SESSION_KEY" in message
    assert "32" in message and "openssl rand -base64 32" in message


def test_a_key_with_surrounding_whitespace_is_accepted() -> None:
    """A key pasted from `openssl rand -base64 32` output carries a line break."""
    sealer = SessionSealer.from_setting(f"  {KEY}\n")
    assert SessionSealer.from_setting(KEY).open(sealer.seal(_session(sealer))) is not None


def test_no_session_key_gives_a_random_working_key() -> None:
    """Unset, the console makes a key of its own: sessions work (until a restart), and two
    consoles without a key do not accept each other's cookies."""
    one, other = SessionSealer.from_setting(None), SessionSealer.from_setting(None)
    session = _session(one)
    assert one.open(one.seal(session)) == session
    assert other.open(one.seal(session)) is None


def test_a_sealer_key_must_be_32_bytes() -> None:
    """AES-256 only: a shorter key would be a weaker cipher, silently."""
    with pytest.raises(ValueError, match="32 bytes"):
        SessionSealer(bytes(16))


def test_same_token_compares_csrf_tokens() -> None:
    """The CSRF check's comparison: equal tokens only, and a missing header never
    matches (not even an empty expected token)."""
    token = secrets.token_urlsafe(32)
    assert same_token(token, token)
    assert not same_token(token + "x", token)
    assert not same_token("", token)
    assert not same_token(None, token)
    assert not same_token(None, "")


# --- reading what a person typed --------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("31", 31),
        (" 31 \n", 31),
        ("-4", -4),
        ("2.5", 2.5),
        ("31.0", 31.0),
        ("1e3", 1000),
    ],
)
def test_a_number_is_read_as_a_number(text: str, expected: float) -> None:
    """A number key gets a JSON number, an integer when the person typed one (so that
    `31` is stored as 31, not 31.0)."""
    got = parse_input(text, "number")
    assert got == expected
    assert type(got) is type(expected)


@pytest.mark.parametrize("text", ["abc", "", "31 seconds", "0x1f"])
def test_text_that_is_not_a_number_is_sent_as_text(text: str) -> None:
    """The console validates nothing the API validates: what is not a number goes to the
    API as typed, and the API's own message ("must be a number") comes back."""
    assert parse_input(text, "number") == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [("true", True), ("false", False), (" TRUE ", True), ("False\n", False)],
)
def test_a_boolean_is_read_in_any_case(text: str, expected: bool) -> None:
    """A boolean key takes true or false however it is capitalised."""
    assert parse_input(text, "boolean") is expected


def test_a_boolean_that_is_neither_is_sent_as_typed() -> None:
    """`yes` is not a boolean: the API says so, the console does not guess."""
    assert parse_input("yes", "boolean") == "yes"
    assert parse_input("1", "boolean") == "1"


@pytest.mark.parametrize("type_name", ["json", "array"])
def test_json_is_read_as_json(type_name: str) -> None:
    """A json or array key's text is parsed: the API receives the structure."""
    assert parse_input('{"a": [1, 2, {"b": null}]}', type_name) == {"a": [1, 2, {"b": None}]}
    assert parse_input("[1, 2]", type_name) == [1, 2]
    assert parse_input('"text"', type_name) == "text"


def test_text_that_is_not_json_is_refused_with_where() -> None:
    """The one check the console makes itself (the API can only be sent a value): the
    person is told what is wrong and where."""
    with pytest.raises(NotJson) as refused:
        parse_input('{\n  "a": 1,\n}', "json")
    message = str(refused.value)
    assert message.startswith("not JSON: ")
    assert "line 3, column 1" in message
    assert isinstance(refused.value, ValueError)
    with pytest.raises(NotJson):
        parse_input("", "array")


@pytest.mark.parametrize("type_name", ["string", "date", "url", "email", "duration", "cron"])
def test_text_types_pass_through_unchanged(type_name: str) -> None:
    """A string is what was typed, spaces and all: trimming or parsing it would change a
    value the person meant."""
    for text in ("  padded  ", "30", "true", '{"a": 1}', ""):
        assert parse_input(text, type_name) == text


@pytest.mark.parametrize(
    ("value", "type_name"),
    [
        ({"a": [1, 2], "b": {"c": "é"}}, "json"),
        ([1, "two", None], "array"),
        ([], "array"),
        (30, "number"),
        (-2.75, "number"),
        (True, "boolean"),
        (False, "boolean"),
        ("hello world", "string"),
        ("  spaced  ", "string"),
        ("30", "string"),
        ("5m", "duration"),
        ("https://example.com/x", "url"),
    ],
)
def test_the_form_shows_a_value_as_text_that_reads_back_as_it(value: Any, type_name: str) -> None:
    """Opening the edit form and saving it unchanged must write the same value: the
    form's text for a value is read back as that value."""
    text = editable(value, type_name)
    assert isinstance(text, str)
    got = parse_input(text, type_name)
    assert got == value
    assert type(got) is type(value)


def test_the_form_of_a_layer_without_a_value_is_empty() -> None:
    """No value in a layer: an empty form, not `None` or `null`."""
    assert editable(None, "string") == ""
    assert editable(None, "json") == ""


def test_json_is_shown_indented_for_editing() -> None:
    """A structure is edited over several lines, as a person reads it."""
    assert editable({"a": [1]}, "json") == '{\n  "a": [\n    1\n  ]\n}'


# --- diffs ---------------------------------------------------------------------------------


def test_a_changed_scalar_is_one_line_out_and_one_in() -> None:
    """What a reviewer reads for a number that moved."""
    assert diff_lines(30, 45) == [DiffLine("-", "30"), DiffLine("+", "45")]


def test_strings_are_compared_bare_line_by_line() -> None:
    """A string is shown as written (no JSON quotes), a multi-line one line by line."""
    assert diff_lines("old", "new") == [DiffLine("-", "old"), DiffLine("+", "new")]
    assert diff_lines("a\nb\nc", "a\nB\nc") == [
        DiffLine(" ", "a"),
        DiffLine("-", "b"),
        DiffLine("+", "B"),
        DiffLine(" ", "c"),
    ]


def test_a_value_set_for_the_first_time_or_removed_is_all_in_or_out() -> None:
    """No value before (or after) is no lines, not a line saying `null`."""
    assert diff_lines(None, 7) == [DiffLine("+", "7")]
    assert diff_lines("gone", None) == [DiffLine("-", "gone")]
    assert diff_lines(None, None) == []


def test_an_unchanged_value_has_no_diff() -> None:
    assert diff_lines({"a": 1}, {"a": 1}) == []


def test_nested_json_shows_the_changed_line_with_its_neighbours() -> None:
    """Pretty JSON with sorted keys, so a change deep in a structure is one line with a
    little context, and key order alone is never a change."""
    old = {"c": {"x": 1, "y": [1, 2]}, "b": 2, "a": 1}
    new = {"a": 1, "b": 2, "c": {"x": 5, "y": [1, 2]}}
    assert diff_lines(old, new) == [
        DiffLine(" ", '  "b": 2,'),
        DiffLine(" ", '  "c": {'),
        DiffLine("-", '    "x": 1,'),
        DiffLine("+", '    "x": 5,'),
        DiffLine(" ", '    "y": ['),
        DiffLine(" ", "      1,"),
    ]
    assert diff_lines({"x": 1, "y": 2}, {"y": 2, "x": 1}) == []


# --- how long ago, and which layer answered --------------------------------------------------

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("ago", "shown"),
    [
        (timedelta(0), "just now"),
        (timedelta(seconds=59), "just now"),
        (timedelta(seconds=60), "1 min ago"),
        (timedelta(minutes=59, seconds=59), "59 min ago"),
        (timedelta(hours=1), "1 h ago"),
        (timedelta(hours=23, minutes=59), "23 h ago"),
        (timedelta(days=1), "2025-02-28 12:00 UTC"),
        (timedelta(days=400), "2024-01-26 12:00 UTC"),
    ],
)
def test_when_says_how_long_ago(ago: timedelta, shown: str) -> None:
    """A glance at the history wants "3 min ago"; older changes want their date."""
    assert formatting.when(NOW - ago, now=NOW) == shown


def test_when_of_nothing_is_never() -> None:
    """A flag never evaluated, a limit never triggered."""
    assert formatting.when(None, now=NOW) == "never"


@pytest.mark.parametrize(
    ("source", "environment", "label", "style", "title"),
    [
        (pb.VALUE_SOURCE_OVERRIDE, "staging", "override", "override", "an override in staging"),
        (
            pb.VALUE_SOURCE_INHERITED_OVERRIDE,
            "production",
            "↑ production",
            "inherited",
            "inherited from the override in production",
        ),
        (pb.VALUE_SOURCE_BASE, "", "base", "base", "the key's base value"),
        (pb.VALUE_SOURCE_DEFAULT, "", "default", "default", "the key's default value"),
        (pb.VALUE_SOURCE_NONE, "", "unset", "unset", "no layer holds a value"),
        (pb.VALUE_SOURCE_UNSPECIFIED, "", "unset", "unset", "no layer holds a value"),
    ],
)
def test_each_layer_is_labelled(
    source: int, environment: str, label: str, style: str, title: str
) -> None:
    """The list shows which layer answered each read: a wrong label would send an
    operator to edit the wrong layer."""
    got = formatting.layer(pb.GetValueResponse(source=source, source_environment=environment))
    assert (got.label, got.style, got.title) == (label, style, title)


def test_every_value_source_that_names_a_layer_has_its_own_label() -> None:
    """A source added to the API without a label here would show as "unset"."""
    named = [
        s
        for s in pb.ValueSource.values()
        if s not in {pb.VALUE_SOURCE_UNSPECIFIED, pb.VALUE_SOURCE_NONE}
    ]
    labels = {formatting.layer(pb.GetValueResponse(source=s)).style for s in named}
    assert "unset" not in labels
    assert len(labels) == len(named)


# --- the Host names the console answers ---------------------------------------------------

LOOPBACK = {"127.0.0.1", "localhost", "[::1]", "::1"}


@pytest.mark.parametrize(
    ("listen", "hosts"),
    [
        ("127.0.0.1:0", LOOPBACK),
        ("localhost:8080", LOOPBACK),
        ("127.0.0.2:8080", LOOPBACK | {"127.0.0.2"}),
        ("[::1]:8080", LOOPBACK),
        ("0.0.0.0:8080", {"*"}),
        ("[::]:8080", {"*"}),
        (":8080", {"*"}),
        ("console.internal:8080", {"console.internal"}),
        ("10.1.2.3:8080", {"10.1.2.3"}),
    ],
)
def test_the_console_answers_only_the_names_it_listens_on(listen: str, hosts: set[str]) -> None:
    """A console on loopback answers only loopback names, so a web page cannot reach it
    through a DNS name it rebinds to 127.0.0.1; a console on a name answers that name;
    one on every address answers any."""
    assert set(allowed_hosts(listen)) == hosts


def test_a_loopback_console_never_answers_any_name() -> None:
    """The DNS rebinding defence is the absence of "*" for loopback."""
    for listen in ("127.0.0.1:0", "localhost:1", "[::1]:1"):
        assert "*" not in allowed_hosts(listen)


# --- the key list's search --------------------------------------------------------------


def _entry(key: str, category: str, display_name: str = "", description: str = "") -> Entry:
    return Entry(
        key=key,
        display_name=display_name,
        category=category,
        type="string",
        sensitive=False,
        requires_restart=False,
        words=" ".join((key, display_name, description)).lower(),
    )


CATALOG = Catalog(
    revision=7,
    columns=(Column("", "", False),),
    entries=(
        _entry("api.base_url", "api", "Base URL", "Where the upstream API lives"),
        _entry("api.timeout", "api", "Request timeout", "Seconds before giving up"),
        _entry("db.pool_size", "db", "Pool size", "Connections kept open"),
        _entry("db.timeout", "db", "Query timeout", "Seconds a query may run"),
        _entry("support.email", "support", "Support e-mail", "Where customers write"),
    ),
)


def _keys(entries: list[Entry]) -> list[str]:
    return [entry.key for entry in entries]


def test_search_without_words_lists_every_key_in_order() -> None:
    """The list as it opens: every key, in key order."""
    assert _keys(CATALOG.search()) == [entry.key for entry in CATALOG.entries]


def test_search_finds_every_word_in_any_case() -> None:
    """Every word must match (key, display name or description), whatever its case."""
    assert _keys(CATALOG.search("TIMEOUT")) == ["api.timeout", "db.timeout"]
    assert _keys(CATALOG.search("timeout Query")) == ["db.timeout"]
    assert _keys(CATALOG.search("  seconds  ")) == ["api.timeout", "db.timeout"]
    assert _keys(CATALOG.search("where")) == ["api.base_url", "support.email"]
    assert _keys(CATALOG.search("timeout nowhere")) == []


def test_search_within_a_category() -> None:
    """The category filter narrows the search and keeps its order."""
    assert _keys(CATALOG.search(category="db")) == ["db.pool_size", "db.timeout"]
    assert _keys(CATALOG.search("timeout", category="api")) == ["api.timeout"]
    assert _keys(CATALOG.search("timeout", category="support")) == []
    assert _keys(CATALOG.search(category="no such category")) == []


def test_the_catalog_counts_categories() -> None:
    """The category filter's options, with counts."""
    assert CATALOG.categories == [("api", 2), ("db", 2), ("support", 1)]


def test_a_changed_catalog_keeps_the_values_of_what_did_not_change() -> None:
    """Catching up: a changed key's values are read again when next shown, the others'
    are kept; a gone key leaves the list, a new one joins it in key order."""
    layer = formatting.Layer("base", "base", "")
    catalog = Catalog(7, CATALOG.columns, CATALOG.entries)
    catalog._cells.update({e.key: (Cell("v", "v", layer),) for e in CATALOG.entries})
    changed = catalog.changed(
        9,
        {
            "api.timeout": _entry("api.timeout", "api", "Timeout", "renamed"),
            "db.pool_size": None,
            "cache.ttl": _entry("cache.ttl", "cache"),
        },
    )
    assert changed.revision == 9
    assert _keys(list(changed.entries)) == [
        "api.base_url",
        "api.timeout",
        "cache.ttl",
        "db.timeout",
        "support.email",
    ]
    assert set(changed._cells) == {"api.base_url", "db.timeout", "support.email"}
    assert _keys(changed.search("renamed")) == ["api.timeout"]
    assert catalog.revision == 7 and len(catalog.entries) == 5, "the old one is left as it was"
