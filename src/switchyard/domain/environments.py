"""Environment inheritance: the chain an override is looked up along, and the cycles that
must never be stored."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from switchyard.domain.errors import FailedPrecondition, FieldViolation, InvalidArgument, NotFound
from switchyard.domain.keys import check_environment_name
from switchyard.domain.models import Environment


def _by_name(
    environments: Mapping[str, Environment] | Sequence[Environment],
) -> Mapping[str, Environment]:
    if isinstance(environments, Mapping):
        return environments
    return {e.name: e for e in environments}


def ancestry(
    environments: Mapping[str, Environment] | Sequence[Environment], name: str
) -> list[str]:
    """`[name, parent, grandparent, ...]`. Raises NotFound for an unknown name, and
    FailedPrecondition if stored data holds a cycle (saving one is refused)."""
    known = _by_name(environments)
    if name not in known:
        raise NotFound(f"unknown environment {name!r}; known: {', '.join(sorted(known))}")
    chain = [name]
    parent = known[name].parent
    while parent is not None:
        if parent in chain:
            raise FailedPrecondition(
                f"environments inherit in a cycle: {' → '.join([*chain, parent])}"
            )
        chain.append(parent)
        parent = known[parent].parent if parent in known else None
    return chain


def check_environment(environments: Sequence[Environment], candidate: Environment) -> None:
    """Refuses a bad name, an unknown parent, and a parent that would close a cycle.
    Raises InvalidArgument."""
    check_environment_name(candidate.name, "environment.name")
    violations = []
    if candidate.description is not None and len(candidate.description) > 500:
        violations.append(
            FieldViolation("environment.description", "must be at most 500 characters")
        )
    known = {e.name: e for e in environments}
    parent = candidate.parent
    if parent is not None:
        if parent == candidate.name:
            violations.append(
                FieldViolation("environment.parent", "an environment cannot inherit from itself")
            )
        elif parent not in known:
            violations.append(
                FieldViolation(
                    "environment.parent",
                    f"unknown environment {parent!r}; known: {', '.join(sorted(known))}",
                )
            )
        else:
            # Walk up from the new parent; reaching the candidate again closes a cycle.
            path = [candidate.name, parent]
            step = known[parent].parent
            while step is not None and step != candidate.name and step not in path:
                path.append(step)
                step = known[step].parent if step in known else None
            if step == candidate.name:
                path.append(step)
                violations.append(
                    FieldViolation(
                        "environment.parent",
                        f"environment {candidate.name} would inherit from itself: "
                        + " → ".join(path),
                    )
                )
    if violations:
        raise InvalidArgument("; ".join(v.description for v in violations), violations)


__all__ = ["ancestry", "check_environment"]
