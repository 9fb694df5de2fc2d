"""Environment inheritance: the chain an override is looked up along, and the cycles that
must never be stored."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from switchyard.domain.errors import FailedPrecondition, FieldViolation, InvalidArgument, NotFound
from switchyard.domain.keys import check_environment_name
from switchyard.domain.models import Environment

MAX_ENVIRONMENT_DESCRIPTION_LENGTH = 500


def _by_name(
    environments: Mapping[str, Environment] | Sequence[Environment],
) -> Mapping[str, Environment]:
    if isinstance(environments, Mapping):
        return environments
    return {e.name: e for e in environments}


def _known(names: Mapping[str, Environment]) -> str:
    return ", ".join(sorted(names)) or "none"


def ancestry(
    environments: Mapping[str, Environment] | Sequence[Environment], name: str
) -> list[str]:
    """`[name, parent, grandparent, ...]`: the layers a read of `name` consults, nearest
    first.

    A parent missing from `environments` ends the chain (it is listed, having no
    overrides to offer, rather than failing every read). Raises NotFound for an unknown
    `name`, and FailedPrecondition if the stored data holds a cycle, which
    `check_environment` keeps from being saved."""
    known = _by_name(environments)
    if name not in known:
        raise NotFound(f"unknown environment {name!r}; known: {_known(known)}")
    chain = [name]
    parent = known[name].parent
    while parent is not None:
        if parent in chain:
            raise FailedPrecondition(
                f"environments inherit in a cycle: {' → '.join([*chain, parent])}; "
                "change the parent of one of them"
            )
        chain.append(parent)
        parent = known[parent].parent if parent in known else None
    return chain


def _parent_violation(
    known: Mapping[str, Environment], candidate: Environment
) -> FieldViolation | None:
    parent = candidate.parent
    field = "environment.parent"
    if parent is None:
        return None
    if parent == candidate.name:
        return FieldViolation(field, f"environment {parent} cannot inherit from itself")
    if parent not in known:
        return FieldViolation(field, f"unknown environment {parent!r}; known: {_known(known)}")
    # Walk up from the new parent; meeting the candidate again closes a cycle. `path`
    # also stops the walk on a cycle already stored that the candidate is not part of.
    path = [candidate.name, parent]
    step = known[parent].parent
    while step is not None and step != candidate.name and step not in path:
        path.append(step)
        step = known[step].parent if step in known else None
    if step == candidate.name:
        return FieldViolation(
            field,
            f"environment {candidate.name} would inherit from itself: {' → '.join([*path, step])}",
        )
    return None


def check_environment(environments: Sequence[Environment], candidate: Environment) -> None:
    """Checks an environment about to be created or changed against the ones stored
    (`environments`, which may hold the candidate's current version).

    Refuses a bad name, a description over 500 characters, an unknown parent, and a
    parent that would close a cycle. Raises InvalidArgument listing every violation, on
    `environment.name`, `environment.parent` and `environment.description`."""
    violations: list[FieldViolation] = []
    try:
        check_environment_name(candidate.name, "environment.name")
    except InvalidArgument as error:
        violations.extend(error.violations)
    description = candidate.description
    if description is not None and len(description) > MAX_ENVIRONMENT_DESCRIPTION_LENGTH:
        violations.append(
            FieldViolation(
                "environment.description",
                f"must be at most {MAX_ENVIRONMENT_DESCRIPTION_LENGTH} characters; "
                f"got {len(description)}",
            )
        )
    parent_violation = _parent_violation({e.name: e for e in environments}, candidate)
    if parent_violation:
        violations.append(parent_violation)
    if violations:
        raise InvalidArgument(
            "; ".join(f"{v.field}: {v.description}" for v in violations), violations
        )


__all__ = ["MAX_ENVIRONMENT_DESCRIPTION_LENGTH", "ancestry", "check_environment"]
