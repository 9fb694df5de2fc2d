"""Roles, grants and their narrowing: the decisions behind every permission check."""

from __future__ import annotations

import itertools

import pytest

from switchyard.domain.access import (
    ROLE_PERMISSIONS,
    Permission,
    Role,
    Target,
    format_grant,
    holds,
    parse_grant,
    require,
    require_write,
    strongest_role,
)
from switchyard.domain.errors import FailedPrecondition, InvalidArgument, PermissionDenied
from switchyard.domain.models import Grant, Principal


def caller(*grants: str) -> Principal:
    parsed = tuple(parse_grant(text) for text in grants)
    return Principal("id", "someone", strongest_role(parsed), grants=parsed)


def test_each_role_holds_what_the_one_before_it_holds() -> None:
    roles = list(Role)
    for weaker, stronger in itertools.pairwise(roles):
        assert ROLE_PERMISSIONS[weaker] < ROLE_PERMISSIONS[stronger]
    assert Permission.APPROVE not in ROLE_PERMISSIONS[Role.ADMIN]
    assert Permission.ROLLBACK not in ROLE_PERMISSIONS[Role.ADMIN]
    assert Permission.WRITE not in ROLE_PERMISSIONS[Role.READER]


@pytest.mark.parametrize(
    "text",
    ["reader", "editor@staging", "editor@staging,dev", "admin:payments.", "editor@dev:a.,b."],
)
def test_grants_read_back_as_written(text: str) -> None:
    assert format_grant(parse_grant(text)) == text


@pytest.mark.parametrize("text", ["", "owner", "root@production", "readers:x"])
def test_unknown_roles_are_refused_by_name(text: str) -> None:
    with pytest.raises(InvalidArgument, match="unknown role"):
        parse_grant(text)


def test_environment_narrowing_covers_only_those_environments() -> None:
    editor = caller("editor@staging")
    assert holds(editor, Permission.WRITE, Target("staging", "a"))
    assert not holds(editor, Permission.WRITE, Target("production", "a"))
    # A change reaching every environment is not one of its environments.
    assert not holds(editor, Permission.WRITE, Target(None, "a"))


def test_prefix_narrowing_covers_only_keys_with_those_prefixes() -> None:
    reader = caller("reader:payments.,billing.")
    assert holds(reader, Permission.READ, Target("staging", "payments.timeout"))
    assert holds(reader, Permission.READ, Target(None, "billing.currency"))
    assert not holds(reader, Permission.READ, Target(None, "search.limit"))
    assert not holds(reader, Permission.READ, Target(None, None))


def test_grants_add_up() -> None:
    both = caller("reader", "editor@staging:payments.")
    assert holds(both, Permission.READ, Target("production", "search.limit"))
    assert holds(both, Permission.WRITE, Target("staging", "payments.timeout"))
    assert not holds(both, Permission.WRITE, Target("staging", "search.limit"))


def test_a_refusal_names_the_missing_permission_and_scope() -> None:
    with pytest.raises(PermissionDenied) as raised:
        require(caller("reader"), Permission.WRITE, Target("staging", "a.b"))
    assert "'write'" in raised.value.message
    assert "'a.b'" in raised.value.message and "'staging'" in raised.value.message


def test_writes_reaching_protected_environments_need_approval() -> None:
    protected = {"production"}
    require_write(caller("editor"), Target("staging", "a"), protected)
    with pytest.raises(PermissionDenied, match="'approve'"):
        require_write(caller("editor"), Target("production", "a"), protected)
    with pytest.raises(FailedPrecondition, match="ProposeChange"):
        require_write(caller("admin"), Target("production", "a"), protected)
    require_write(caller("site_admin"), Target("production", "a"), protected)


def test_a_change_to_every_environment_is_protected_while_any_is() -> None:
    with pytest.raises(FailedPrecondition, match="production is protected"):
        require_write(caller("admin"), Target(None, "a"), {"production"})
    require_write(caller("editor"), Target(None, "a"), set())


def test_the_trusted_caller_of_an_open_server_may_do_everything() -> None:
    local = Principal("id", "local-operator", "site_admin", grants=None)
    for permission in Permission:
        assert holds(local, permission, Target("production", "x"))


def test_history_rows_name_the_strongest_role() -> None:
    grants = (Grant("reader"), Grant("admin", environments=("dev",)), Grant("editor"))
    assert strongest_role(grants) == "admin"
