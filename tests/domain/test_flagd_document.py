"""The flagd document decides as Switchyard does: flagd-core (the evaluator the Python flagd
provider runs in-process) evaluating `flagd_document(flags, now)` must give, for every
context, the variant and value `evaluate` gives at the same `now`; and what cannot be said
exactly must be left out and named, not approximated."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from openfeature.contrib.tools.flagd.core import FlagdCore
from openfeature.evaluation_context import EvaluationContext as OpenFeatureContext
from openfeature.exception import FlagNotFoundError
from openfeature.flag_evaluation import FlagResolutionDetails, Reason

from switchyard.domain.bucketing import CONCATENATED
from switchyard.domain.errors import InvalidArgument
from switchyard.domain.evaluation import MAX_PREREQUISITE_DEPTH, FlagSet
from switchyard.domain.flagd import (
    SERVER_ONLY,
    dependents,
    flagd_document,
    openfeature_context,
    server_only,
    time_states,
)
from switchyard.domain.flags import (
    OFF,
    EvaluationContext,
    FeatureFlag,
    Ring,
    RolloutStrategy,
    check_flag,
)
from switchyard.domain.flags import (
    Reason as SwitchyardReason,
)
from switchyard.domain.models import JSONValue

WEDNESDAY_NOON = datetime(2026, 3, 4, 12, 30, tzinfo=UTC)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
CONTEXTS = 300


def flag(key: str, **fields: Any) -> FeatureFlag:
    made = FeatureFlag(key=key, name=key, **{"is_enabled": True, **fields})
    check_flag(made)
    return made


def rule(rule_id: str, when: JSONValue, variant: str = "on") -> JSONValue:
    return {"id": rule_id, "when": when, "variant": variant}


def catalogue(now: datetime) -> list[FeatureFlag]:
    """A flag for every feature of the evaluation order, several combined."""
    chain = [
        flag(f"chain-{i}", prerequisite_features=(f"chain-{i + 1}",), rollout_percentage=100)
        for i in range(MAX_PREREQUISITE_DEPTH + 2)
    ]
    chain.append(flag(f"chain-{MAX_PREREQUISITE_DEPTH + 2}", enabled_for_groups=("beta",)))
    return [
        *chain,
        flag("static-on", rollout_percentage=100),
        flag("static-off"),
        flag("disabled", is_enabled=False, rollout_percentage=100),
        flag("retired", is_active=False, rollout_percentage=100),
        flag("users", enabled_for_users=("user_1", "user_17", "user_250")),
        flag("roles", enabled_for_roles=("admin", "editor")),
        flag("groups", enabled_for_groups=("beta",), rollout_percentage=30),
        flag("environments", enabled_environments=("prod", "staging"), rollout_percentage=100),
        flag(
            "rules",
            variants={"on": "blue", "off": "grey", "green": "green", "red": "red"},
            targeting_rules=(
                rule(
                    "new-app",
                    {"attribute": "app_version", "op": "semver_gte", "value": "2.1.0"},
                    "green",
                ),
                rule("staff", {"attribute": "email", "op": "ends_with", "value": "@example.com"}),
                rule(
                    "prefix-not-admin",
                    {
                        "all": [
                            {"attribute": "user_id", "op": "starts_with", "value": "user_2"},
                            {"not": {"attribute": "roles", "op": "contains", "value": "admin"}},
                        ]
                    },
                    "red",
                ),
                rule("not-viewer", {"attribute": "roles", "op": "ne", "value": "viewer"}, "off"),
                rule(
                    "gold",
                    {
                        "any": [
                            {"attribute": "account.tier", "op": "eq", "value": "gold"},
                            {"attribute": "seats", "op": "gte", "value": 10},
                        ]
                    },
                ),
            ),
        ),
        flag(
            "semver-lt",
            targeting_rules=(
                rule("old", {"attribute": "app_version", "op": "semver_lt", "value": "2.0.0"}),
            ),
            rollout_percentage=100,
            variants={"on": 10.0, "off": 0.0},
        ),
        flag("percent-37", rollout_percentage=37),
        flag(
            "gradual",
            rollout_strategy=RolloutStrategy.GRADUAL,
            rollout_percentage=80,
            gradual_start=now - 3 * HOUR,
            gradual_end=now + HOUR,  # 60% now
        ),
        flag(
            "gradual-done",
            rollout_strategy=RolloutStrategy.GRADUAL,
            rollout_percentage=100,
            gradual_start=now - 2 * DAY,
            gradual_end=now - DAY,
        ),
        flag(
            "gradual-later",
            rollout_strategy=RolloutStrategy.GRADUAL,
            rollout_percentage=50,
            gradual_start=now + DAY,
            gradual_end=now + 2 * DAY,
        ),
        flag(
            "rings",
            rollout_strategy=RolloutStrategy.RING,
            rings=(
                Ring("canary", ("canary",), now - DAY),
                Ring("early", ("early", "beta"), now + DAY),
                Ring("everyone", ("staff",)),
            ),
        ),
        flag(
            "scheduled-in",
            start_date=now - DAY,
            end_date=now + DAY,
            schedule_cron="* 9-17 * * 1-5",
            enabled_for_roles=("admin",),
            rollout_percentage=100,
        ),
        flag("scheduled-out", schedule_cron="* 0-6 * * *", rollout_percentage=100),
        flag("ended", end_date=now - timedelta(minutes=1), enabled_for_users=("user_1",)),
        flag("needs-roles", prerequisite_features=("roles",), enabled_for_groups=("beta",)),
        flag(
            "needs-two",
            prerequisite_features=("environments", "needs-roles"),
            rollout_percentage=100,
        ),
        flag("needs-disabled", prerequisite_features=("disabled",), rollout_percentage=100),
        flag("needs-percent", prerequisite_features=("percent-37",), rollout_percentage=100),
        flag("needs-gradual-done", prerequisite_features=("gradual-done",), rollout_percentage=100),
        flag("conflict-a", conflicts_with=("conflict-b",), enabled_for_roles=("admin",)),
        flag(
            "conflict-b",
            conflicts_with=("conflict-a",),
            enabled_for_groups=("beta",),
            prerequisite_features=("environments",),
        ),
        # Judges conflict-b without conflict-b's own conflicts.
        flag("conflict-c", conflicts_with=("conflict-b",), rollout_percentage=100),
        flag("needs-conflicted", prerequisite_features=("conflict-a",), rollout_percentage=100),
        flag("conflict-disabled", conflicts_with=("disabled",), rollout_percentage=100),
        flag("conflict-static-on", conflicts_with=("static-on",), rollout_percentage=100),
        flag(
            "colour",
            variants={"on": "blue", "off": "grey", "red": "red"},
            targeting_rules=(
                rule("nordics", {"attribute": "country", "op": "in", "value": ["SE", "NO"]}, "red"),
            ),
            rollout_percentage=100,
        ),
        flag(
            "settings",
            variants={"on": {"limit": 10, "mode": "fast"}, "off": {"limit": 1, "mode": "safe"}},
            enabled_for_roles=("editor",),
        ),
        flag(
            "matches-rule",
            targeting_rules=(rule("mail", {"attribute": "email", "op": "matches", "value": "@"}),),
        ),
        flag("needs-matches", prerequisite_features=("matches-rule",), rollout_percentage=100),
        flag("v1-percent", rollout_percentage=50, bucketing_version=CONCATENATED),
    ]


SERVER_ONLY_FLAGS = {"matches-rule", "needs-matches", "needs-percent", "v1-percent"}


def contexts(seed: int = 7) -> list[dict[str, JSONValue]]:
    """OpenFeature contexts as a flagd request carries them: the targeting key under
    `targetingKey`, every attribute by name; some missing, some empty."""
    rng = random.Random(seed)
    made: list[dict[str, JSONValue]] = []
    for index in range(CONTEXTS):
        fields: dict[str, JSONValue] = {}
        if index % 25 != 0:
            fields["targetingKey"] = f"user_{index}"
        elif index % 50 == 0:
            fields["targetingKey"] = ""
        for name, pool in (
            ("roles", ["admin", "editor", "viewer", "guest"]),
            ("groups", ["beta", "canary", "early", "staff"]),
        ):
            if rng.random() < 0.85:
                fields[name] = rng.sample(pool, rng.randint(0, 2))
        environment = rng.choice(["prod", "staging", "dev", "", None])
        if environment is not None:
            fields["environment"] = environment
        optional: dict[str, list[JSONValue]] = {
            "app_version": ["1", "1.9", "2.0.0", "v2.1.0", "2.1.0-rc.1", "3", "garbage", 2],
            "email": ["a@example.com", "b@other.org", "example.com", ""],
            "country": ["SE", "NO", "DE", "se"],
            "seats": [1, 9, 10, 10.0, 250, "10", True],
            "account": [{"tier": "gold"}, {"tier": "silver"}, "gold", {"tier": ["gold"]}],
        }
        for name, values in optional.items():
            if rng.random() < 0.7:
                fields[name] = rng.choice(values)
        made.append(fields)
    return made


def resolve(core: FlagdCore, key: str, sample: JSONValue, fields: dict[str, JSONValue]) -> Any:
    targeting_key = fields.get("targetingKey")
    assert targeting_key is None or isinstance(targeting_key, str)
    attributes: dict[str, Any] = {
        name: value for name, value in fields.items() if name != "targetingKey"
    }
    context = OpenFeatureContext(targeting_key=targeting_key, attributes=attributes)
    details: FlagResolutionDetails[Any]
    if isinstance(sample, bool):
        details = core.resolve_boolean_value(key, False, context)
    elif isinstance(sample, str):
        details = core.resolve_string_value(key, "default", context)
    elif isinstance(sample, int | float):
        details = core.resolve_float_value(key, -1.0, context)
    else:
        details = core.resolve_object_value(key, {"default": True}, context)
    return details


MOMENTS = [
    WEDNESDAY_NOON,
    datetime(2026, 3, 7, 3, 15, tzinfo=UTC),  # Saturday night: outside both cron windows
    datetime(2026, 3, 9, 17, 59, tzinfo=UTC),  # Monday, the last minute of working hours
]


@pytest.mark.parametrize("now", MOMENTS, ids=lambda moment: moment.strftime("%a-%H%M"))
def test_flagd_core_decides_every_translated_flag_as_switchyard_does(now: datetime) -> None:
    flags = FlagSet.of(catalogue(now), revision=42)
    document = flagd_document(flags, now)
    core = FlagdCore()
    core.set_flags(json.dumps(document))
    translated = document["flags"]
    assert isinstance(translated, dict)
    assert set(translated) == set(flags.flags) - SERVER_ONLY_FLAGS

    compared = 0
    for fields in contexts():
        context = openfeature_context(fields)
        for key in translated:
            expected = flags.evaluate(key, context, now)
            sample = flags.flags[key].flag.served_variants[OFF]
            details = resolve(core, key, sample, fields)
            where = f"{key} for {fields}"
            if expected.reason is SwitchyardReason.DISABLED:
                assert details.reason == Reason.DISABLED, where
                assert details.variant is None, where
            else:
                assert details.error_code is None, where
                assert details.variant == expected.variant, where
                assert details.value == expected.value, where
            compared += 1
    assert compared == CONTEXTS * len(translated)


@pytest.mark.parametrize("now", MOMENTS, ids=lambda moment: moment.strftime("%a-%H%M"))
def test_what_cannot_be_said_exactly_is_left_out_and_named(now: datetime) -> None:
    flags = FlagSet.of(catalogue(now), revision=42)
    document = flagd_document(flags, now)
    metadata = document["metadata"]
    assert isinstance(metadata, dict)
    assert metadata[SERVER_ONLY] == ",".join(sorted(SERVER_ONLY_FLAGS))
    assert metadata["switchyard.revision"] == 42
    reasons = server_only(flags, now)
    assert set(reasons) == SERVER_ONLY_FLAGS
    assert "'mail'" in reasons["matches-rule"]
    assert "matches-rule" in reasons["needs-matches"]
    assert "version 1" in reasons["v1-percent"]
    assert "fractional buckets by the key of the flag being resolved" in reasons["needs-percent"]

    core = FlagdCore()
    core.set_flags(json.dumps(document))
    for key in SERVER_ONLY_FLAGS:
        with pytest.raises(FlagNotFoundError):
            core.resolve_boolean_value(key, False, OpenFeatureContext("user_1"))


def entry(document: dict[str, JSONValue], key: str) -> dict[str, JSONValue]:
    found = document["flags"]
    assert isinstance(found, dict)
    value = found[key]
    assert isinstance(value, dict)
    return value


def test_time_is_decided_when_the_document_is_made() -> None:
    now = WEDNESDAY_NOON
    document = flagd_document(FlagSet.of(catalogue(now), 1), now)
    # Constant answers carry no targeting (flagd-core answers them as STATIC).
    assert "targeting" not in entry(document, "ended")
    assert entry(document, "ended")["defaultVariant"] == "off"
    assert "targeting" not in entry(document, "gradual-later")
    assert entry(document, "disabled")["state"] == "DISABLED"
    assert entry(document, "static-on")["defaultVariant"] == "on"
    # 60% of the way, in basis points, bucketed by flagd's fractional.
    gradual = json.dumps(entry(document, "gradual")["targeting"])
    assert '"fractional": [["on", 6000], ["off", 4000]]' in gradual
    percent = json.dumps(entry(document, "percent-37")["targeting"])
    assert '"fractional": [["on", 3700], ["off", 6300]]' in percent
    # Only the open ring's groups are named.
    rings = json.dumps(entry(document, "rings")["targeting"])
    assert "canary" in rings and "early" not in rings and "staff" not in rings
    # A day later the next ring is open and the rings after it with it.
    later = flagd_document(FlagSet.of(catalogue(now), 1), now + 2 * DAY)
    assert "early" in json.dumps(entry(later, "rings")["targeting"])


def test_a_whole_number_variant_is_an_integer_for_flagd() -> None:
    """gRPC sends numbers as doubles; flagd's integer resolution refuses 10.0."""
    flags = FlagSet.of(catalogue(WEDNESDAY_NOON), 1)
    core = FlagdCore()
    core.set_flags(flagd_document(flags, WEDNESDAY_NOON))
    details = core.resolve_integer_value("semver-lt", -1, OpenFeatureContext("u"))
    assert details.value == 10 and isinstance(details.value, int)


def test_the_percentage_split_really_splits() -> None:
    flags = FlagSet.of(catalogue(WEDNESDAY_NOON), 1)
    core = FlagdCore()
    core.set_flags(flagd_document(flags, WEDNESDAY_NOON))
    answers = [
        core.resolve_boolean_value("percent-37", False, OpenFeatureContext(f"user_{i}")).value
        for i in range(1000)
    ]
    assert 300 < sum(answers) < 440
    # No targeting key: out, as Switchyard has it (not flagd's logged error and default).
    assert core.resolve_boolean_value("percent-37", True, OpenFeatureContext()).value is False


def test_the_document_is_stable_json() -> None:
    flags = FlagSet.of(catalogue(WEDNESDAY_NOON), 1)
    first = json.dumps(flagd_document(flags, WEDNESDAY_NOON), sort_keys=True)
    again = json.dumps(flagd_document(flags, WEDNESDAY_NOON + timedelta(seconds=1)))
    assert first == json.dumps(json.loads(again), sort_keys=True)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, EvaluationContext()),
        ({"targetingKey": None, "roles": None, "environment": None}, EvaluationContext()),
        (
            {
                "targetingKey": "u1",
                "roles": ["admin"],
                "groups": [],
                "environment": "prod",
                "plan": {"tier": "gold"},
                "seats": 3,
            },
            EvaluationContext(
                user_id="u1",
                roles=("admin",),
                environment="prod",
                attributes={"plan": {"tier": "gold"}, "seats": 3},
            ),
        ),
    ],
)
def test_an_openfeature_context_maps_to_a_switchyard_one(
    fields: dict[str, JSONValue], expected: EvaluationContext
) -> None:
    assert openfeature_context(fields) == expected


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"targetingKey": 7}, "context.targetingKey"),
        ({"roles": "admin"}, "context.roles"),
        ({"groups": ["beta", 1]}, "context.groups"),
        ({"environment": ["prod"]}, "context.environment"),
    ],
)
def test_a_context_of_the_wrong_shape_is_refused(fields: dict[str, JSONValue], field: str) -> None:
    with pytest.raises(InvalidArgument) as raised:
        openfeature_context(fields)
    assert [v.field for v in raised.value.violations] == [field]


def test_time_states_change_only_with_what_time_decides() -> None:
    now = WEDNESDAY_NOON
    flags = FlagSet.of(catalogue(now), 1)
    states = time_states(flags, now)
    assert set(states) == {
        "gradual",
        "gradual-done",
        "gradual-later",
        "rings",
        "scheduled-in",
        "scheduled-out",
        "ended",
    }
    a_second_later = time_states(flags, now + timedelta(seconds=1))
    assert a_second_later == states
    after_hours = time_states(flags, now.replace(hour=18))
    changed = {key for key in states if states[key] != after_hours[key]}
    assert changed == {"gradual", "scheduled-in"}


def test_dependents_follow_prerequisites_and_conflicts() -> None:
    flags = FlagSet.of(catalogue(WEDNESDAY_NOON), 1)
    assert dependents(flags, ["roles"]) == {"roles", "needs-roles", "needs-two"}
    assert dependents(flags, ["environments"]) == {
        "environments",
        "needs-two",
        "conflict-b",
        "conflict-a",
        "conflict-c",
        "needs-conflicted",
    }
    assert dependents(flags, ["unknown"]) == {"unknown"}
