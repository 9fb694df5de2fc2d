"""Who may do what: roles, the permissions they hold, and the scope of a grant.

Pure decisions over a `Principal`'s grants. The API layer names the permission each RPC
needs (`api.permissions`) and asks here whether the caller holds it for the
environment and key the call touches; a refusal is a `PermissionDenied` naming the
permission, or a `FailedPrecondition` when the caller may make the change but only
through a change request that someone else approves.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from switchyard.domain.errors import FailedPrecondition, InvalidArgument, PermissionDenied
from switchyard.domain.models import Grant, JSONValue, Principal


class Permission(enum.StrEnum):
    READ = "read"
    """Definitions, values, history, lists, and the watch stream."""
    EVALUATE = "evaluate"
    """Flag evaluations (Switchyard's and the flagd protocols) and reported outcomes."""
    CHECK = "check"
    """Rate-limit decisions (Switchyard's and Envoy's protocol)."""
    WRITE = "write"
    """Changes that reach no protected environment."""
    PROPOSE = "propose"
    """Change requests for protected environments, applied once someone else approves."""
    APPROVE = "approve"
    """Approving or rejecting others' change requests, and writing protected
    environments directly."""
    ROLLBACK = "rollback"
    REVEAL = "reveal"
    """Seeing the values of keys marked sensitive (others see them masked)."""
    ADMIN = "admin"
    """Environments (and which are protected), tokens, users and their roles."""


class Role(enum.StrEnum):
    READER = "reader"
    EDITOR = "editor"
    ADMIN = "admin"
    SITE_ADMIN = "site_admin"


_READER = frozenset({Permission.READ, Permission.EVALUATE, Permission.CHECK})
_EDITOR = _READER | {Permission.WRITE}
_ADMIN = _EDITOR | {Permission.PROPOSE, Permission.REVEAL}
ROLE_PERMISSIONS: Mapping[str, frozenset[Permission]] = {
    Role.READER: _READER,
    Role.EDITOR: _EDITOR,
    Role.ADMIN: _ADMIN,
    Role.SITE_ADMIN: frozenset(Permission),
}
"""Each role holds the permissions of the one before it, and more. Keyed by the role's
name (a Role is its name), so a grant's role looks up without a conversion."""

_RANK = {role: rank for rank, role in enumerate(Role)}


@dataclass(frozen=True, slots=True)
class Target:
    """What a call touches: an environment (None: every environment, as a base value, a
    flag or a global limit does) and a key (None: no one key, as a list does)."""

    environment: str | None = None
    key: str | None = None


EVERYTHING = Target()


def parse_grant(text: str) -> Grant:
    """A grant from its written form, `ROLE[@ENV[,ENV...]][:PREFIX[,PREFIX...]]`:
    `reader`, `editor@staging,dev`, `editor@staging:payments.`, `reader:billing.`."""
    role_part, _, prefix_part = text.strip().partition(":")
    role_name, _, env_part = role_part.partition("@")
    grant = Grant(
        role=role_name.strip(),
        environments=_names(env_part),
        prefixes=_names(prefix_part),
    )
    check_grant(grant)
    return grant


def format_grant(grant: Grant) -> str:
    """The written form `parse_grant` reads."""
    text = grant.role
    if grant.environments:
        text += "@" + ",".join(grant.environments)
    if grant.prefixes:
        text += ":" + ",".join(grant.prefixes)
    return text


MAX_GRANTS = 100
"""Grants of one token or one user. Every token is listed whole (ListTokens has no
pages) and its grants are read again whenever the tokens are reloaded: a token of 20,000
grants made every list hold the server for a third of a second."""
MAX_GRANT_NAMES = 100
"""Environments, and prefixes, in one grant."""
MAX_GRANT_NAME_LENGTH = 100
"""Characters of an environment or a prefix in a grant (keys are at most 100)."""
MAX_TOKEN_DESCRIPTION_LENGTH = 500


def check_grant(grant: Grant) -> None:
    """A known role, and at most MAX_GRANT_NAMES environments and prefixes of at most
    MAX_GRANT_NAME_LENGTH characters. Raises InvalidArgument."""
    if grant.role not in Role.__members__.values():
        roles = ", ".join(role.value for role in Role)
        raise InvalidArgument(f"unknown role {grant.role!r}: roles are {roles}")
    for what, names in (("environments", grant.environments), ("prefixes", grant.prefixes)):
        if len(names) > MAX_GRANT_NAMES:
            raise InvalidArgument(f"a grant names at most {MAX_GRANT_NAMES} {what}")
        if any(len(name) > MAX_GRANT_NAME_LENGTH for name in names):
            raise InvalidArgument(
                f"a grant's {what} are at most {MAX_GRANT_NAME_LENGTH} characters each"
            )


def check_grants(grants: Collection[Grant], field: str = "grants") -> None:
    """A token's or a user's grants: each checked, and at most MAX_GRANTS of them. Raises
    InvalidArgument on `field` (`field[i]` for one grant)."""
    if len(grants) > MAX_GRANTS:
        raise InvalidArgument.field(field, f"at most {MAX_GRANTS} grants; got {len(grants)}")
    for index, grant in enumerate(grants):
        try:
            check_grant(grant)
        except InvalidArgument as error:
            raise InvalidArgument.field(f"{field}[{index}]", error.message) from None


def check_token_description(description: str | None) -> None:
    """Raises InvalidArgument on `description` past MAX_TOKEN_DESCRIPTION_LENGTH."""
    if description is not None and len(description) > MAX_TOKEN_DESCRIPTION_LENGTH:
        raise InvalidArgument.field(
            "description", f"must be at most {MAX_TOKEN_DESCRIPTION_LENGTH} characters"
        )


def strongest_role(grants: Iterable[Grant]) -> str:
    """The role a history row names for a caller with these grants."""
    roles = [Role(grant.role) for grant in grants]
    return max(roles, key=_RANK.__getitem__).value if roles else Role.READER.value


def grant_document(grant: Grant) -> dict[str, JSONValue]:
    return {
        "role": grant.role,
        "environments": list(grant.environments),
        "prefixes": list(grant.prefixes),
    }


def grant_from_document(document: Mapping[str, object]) -> Grant:
    grant = Grant(
        role=str(document["role"]),
        environments=_strings(document.get("environments")),
        prefixes=_strings(document.get("prefixes")),
    )
    check_grant(grant)
    return grant


def _strings(value: object) -> tuple[str, ...]:
    return tuple(str(item) for item in value) if isinstance(value, list) else ()


def holds(principal: Principal, permission: Permission, target: Target = EVERYTHING) -> bool:
    """Whether the caller holds `permission` for `target`. A grant narrowed to some
    environments covers only those (not a change reaching every environment); one
    narrowed to key prefixes covers only keys starting with one of them (not a call
    touching no one key). Every call asks this: it is a plain loop on purpose."""
    grants = principal.grants
    if grants is None:
        return True
    for grant in grants:
        if permission not in ROLE_PERMISSIONS[grant.role]:
            continue
        if grant.environments and target.environment not in grant.environments:
            continue
        if grant.prefixes and (target.key is None or not target.key.startswith(grant.prefixes)):
            continue
        return True
    return False


def holds_anywhere(principal: Principal, permission: Permission) -> bool:
    """Whether the caller holds `permission` in any scope: the first check of every call,
    before its request is read."""
    if principal.grants is None:
        return True
    return any(permission in ROLE_PERMISSIONS[g.role] for g in principal.grants)


def require(principal: Principal, permission: Permission, target: Target = EVERYTHING) -> None:
    """Raises PermissionDenied naming the permission (and its scope) the caller lacks."""
    if not holds(principal, permission, target):
        raise PermissionDenied(
            f"{principal.username} lacks the {permission.value!r} permission"
            f"{_scope(target)}; ask a site_admin for a grant that includes it"
        )


def require_write(principal: Principal, target: Target, protected: Collection[str]) -> None:
    """The check of every direct write. A write reaching a protected environment (a
    named one that is protected, or every environment while any is protected) needs the
    approving permission; a caller who may only propose it is told to send a change
    request instead."""
    reaches_protected = (
        target.environment in protected if target.environment is not None else bool(protected)
    )
    if not reaches_protected:
        require(principal, Permission.WRITE, target)
        return
    if holds(principal, Permission.APPROVE, target):
        return
    if holds(principal, Permission.PROPOSE, target):
        where = (
            f"environment {target.environment!r} is protected"
            if target.environment is not None
            else f"this change reaches every environment, and {_names_list(protected)} protected"
        )
        raise FailedPrecondition(
            f"{where}: a change there needs a second person's approval; send it as a "
            "change request (ProposeChange) for someone with the 'approve' permission "
            "to approve"
        )
    require(principal, Permission.APPROVE, target)


def may_see(principal: Principal, environment: str | None, key: str | None) -> bool:
    """Whether the caller may read what is at this key and environment: used to filter
    lists and watch events for callers whose read grant is narrowed."""
    return holds(principal, Permission.READ, Target(environment, key)) or (
        environment is None and _reads_key_somewhere(principal, key)
    )


def _reads_key_somewhere(principal: Principal, key: str | None) -> bool:
    # A definition (no environment) is readable by whoever may read the key in any
    # environment: values there come from it.
    grants = principal.grants or ()
    return any(
        Permission.READ in ROLE_PERMISSIONS[grant.role]
        and (not grant.prefixes or (key is not None and key.startswith(grant.prefixes)))
        for grant in grants
    )


def _scope(target: Target) -> str:
    parts = []
    if target.key is not None:
        parts.append(f"key {target.key!r}")
    parts.append(
        f"environment {target.environment!r}"
        if target.environment is not None
        else "every environment"
    )
    return " for " + " in ".join(parts)


def _names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


def _names_list(names: Collection[str]) -> str:
    ordered = sorted(names)
    verb = "is" if len(ordered) == 1 else "are"
    return f"{', '.join(ordered)} {verb}"


__all__ = [
    "EVERYTHING",
    "MAX_GRANTS",
    "MAX_GRANT_NAMES",
    "MAX_GRANT_NAME_LENGTH",
    "MAX_TOKEN_DESCRIPTION_LENGTH",
    "ROLE_PERMISSIONS",
    "Permission",
    "Role",
    "Target",
    "check_grant",
    "check_grants",
    "check_token_description",
    "format_grant",
    "grant_document",
    "grant_from_document",
    "holds",
    "holds_anywhere",
    "may_see",
    "parse_grant",
    "require",
    "require_write",
    "strongest_role",
]
