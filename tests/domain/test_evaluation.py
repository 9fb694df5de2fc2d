"""The evaluation order, one reason at a time, with an injected clock."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from switchyard.domain.bucketing import in_rollout
from switchyard.domain.evaluation import FlagSet
from switchyard.domain.flags import (
    Evaluation,
    EvaluationContext,
    FeatureFlag,
    Reason,
    Ring,
    RolloutStrategy,
)

NOW = datetime(2026, 11, 25, 12, 30, tzinfo=UTC)  # a Wednesday
ALICE = EvaluationContext(
    user_id="alice", roles=("admin",), groups=("beta",), environment="production"
)


def on(key: str = "checkout", **fields: object) -> FeatureFlag:
    """An enabled flag, on for everyone unless `fields` say otherwise."""
    values: dict[str, object] = {"is_enabled": True, "rollout_percentage": 100, **fields}
    return FeatureFlag(key=key, name=key, **values)  # type: ignore[arg-type]


def decide(
    *flags: FeatureFlag,
    context: EvaluationContext = ALICE,
    now: datetime = NOW,
    key: str | None = None,
) -> Evaluation:
    return FlagSet.of(list(flags), 1).evaluate(key or flags[0].key, context, now)


def test_an_unknown_flag_is_not_found_and_off() -> None:
    result = FlagSet.of([], 1).evaluate("nope", ALICE, NOW)

    assert (result.enabled, result.reason, result.variant) == (False, Reason.NOT_FOUND, "")


@pytest.mark.parametrize("fields", [{"is_enabled": False}, {"is_active": False}])
def test_the_kill_switch_and_retirement_turn_a_flag_off(fields: dict[str, object]) -> None:
    result = decide(on(**fields, enabled_for_users=("alice",)))

    assert (result.enabled, result.reason, result.variant, result.value) == (
        False,
        Reason.DISABLED,
        "off",
        False,
    )


@pytest.mark.parametrize(
    ("fields", "enabled"),
    [
        ({"start_date": NOW + timedelta(seconds=1)}, False),
        ({"start_date": NOW}, True),
        ({"end_date": NOW}, False),
        ({"end_date": NOW + timedelta(seconds=1)}, True),
        ({"schedule_cron": "* 9-17 * * 1-5"}, True),  # Wednesday 12:30
        ({"schedule_cron": "* 0-8 * * *"}, False),
        ({"schedule_cron": "* * * * 6,0"}, False),  # weekends only
        ({"schedule_cron": "30 12 * * *"}, True),  # exactly this minute
        ({"schedule_cron": "31 12 * * *"}, False),
    ],
)
def test_dates_and_the_cron_schedule(fields: dict[str, object], enabled: bool) -> None:
    result = decide(on(**fields))

    assert result.enabled is enabled
    assert result.reason is (Reason.DEFAULT if enabled else Reason.SCHEDULED_OFF)


def test_a_cron_window_is_every_minute_the_expression_matches() -> None:
    flag = on(schedule_cron="0-14 12 * * *")
    flags = FlagSet.of([flag], 1)
    noon = NOW.replace(minute=0)
    answers = [
        flags.evaluate("checkout", ALICE, noon + timedelta(seconds=s)).enabled
        for s in (0, 59, 14 * 60 + 59, 15 * 60)
    ]

    assert answers == [True, True, True, False]


def test_environments_exclude_other_environments_and_contexts_without_one() -> None:
    flag = on(enabled_environments=("staging", "production"))

    assert decide(flag).reason is Reason.DEFAULT
    assert decide(flag, context=replace(ALICE, environment="dev")).reason is (
        Reason.ENVIRONMENT_EXCLUDED
    )
    assert decide(flag, context=replace(ALICE, environment="")).reason is (
        Reason.ENVIRONMENT_EXCLUDED
    )


def test_targeting_by_user_then_role_then_group() -> None:
    flag = on(
        rollout_percentage=0,
        enabled_for_users=("alice",),
        enabled_for_roles=("admin",),
        enabled_for_groups=("beta",),
    )

    assert (decide(flag).reason, decide(flag).rule_id) == (Reason.USER_TARGETED, "alice")
    bob = replace(ALICE, user_id="bob")
    assert (decide(flag, context=bob).reason, decide(flag, context=bob).rule_id) == (
        Reason.ROLE_TARGETED,
        "admin",
    )
    guest = replace(bob, roles=("viewer",))
    assert (decide(flag, context=guest).reason, decide(flag, context=guest).rule_id) == (
        Reason.GROUP_TARGETED,
        "beta",
    )
    nobody = replace(guest, groups=())
    assert (decide(flag, context=nobody).enabled, decide(flag, context=nobody).reason) == (
        False,
        Reason.DEFAULT,
    )


def test_the_first_matching_rule_serves_its_variant() -> None:
    flag = on(
        rollout_percentage=0,
        variants={"on": "new", "off": "classic", "gold": "gold-theme"},
        targeting_rules=(
            {
                "id": "gold",
                "when": {"attribute": "plan", "op": "eq", "value": "gold"},
                "variant": "gold",
            },
            {
                "id": "blocked",
                "when": {"attribute": "country", "op": "in", "value": ["xx"]},
                "variant": "off",
            },
            {"id": "pro", "when": {"attribute": "plan", "op": "in", "value": ["gold", "pro"]}},
        ),
    )

    def with_attributes(**attributes: object) -> Evaluation:
        return decide(flag, context=replace(ALICE, roles=(), attributes=attributes))

    gold = with_attributes(plan="gold")
    assert (gold.enabled, gold.reason, gold.rule_id, gold.variant, gold.value) == (
        True,
        Reason.RULE_MATCH,
        "gold",
        "gold",
        "gold-theme",
    )
    blocked = with_attributes(plan="pro", country="xx")
    assert (blocked.enabled, blocked.rule_id, blocked.value) == (False, "blocked", "classic")
    pro = with_attributes(plan="pro")
    assert (pro.enabled, pro.rule_id, pro.value) == (True, "pro", "new")
    free = with_attributes(plan="free")
    assert (free.enabled, free.reason, free.value) == (False, Reason.DEFAULT, "classic")


def test_a_partial_rollout_buckets_by_user_and_needs_a_user() -> None:
    flag = on(rollout_percentage=50, rollout_strategy=RolloutStrategy.PERCENTAGE)
    users = [f"user-{i}" for i in range(1_000)]
    results = [decide(flag, context=EvaluationContext(user_id=u)) for u in users]

    inside = sum(r.enabled for r in results)
    assert 450 <= inside <= 550
    assert {r.reason for r in results} == {Reason.ROLLOUT_IN, Reason.ROLLOUT_OUT}
    assert all(
        r.enabled == in_rollout("checkout", u, 50) for r, u in zip(results, users, strict=True)
    )
    anonymous = decide(flag, context=EvaluationContext())
    assert (anonymous.enabled, anonymous.reason) == (False, Reason.ROLLOUT_OUT)


def test_an_enabled_flag_with_no_targeting_follows_its_percentage() -> None:
    """The spec's sketch turned such a flag on for everyone, whatever its percentage."""
    assert decide(on(rollout_percentage=0)).enabled is False
    assert decide(on(rollout_percentage=100), context=EvaluationContext()).enabled is True
    ten = on(rollout_percentage=10)
    assert (
        sum(decide(ten, context=EvaluationContext(user_id=f"u{i}")).enabled for i in range(1_000))
        < 150
    )


def test_raising_the_percentage_keeps_everyone_who_was_in() -> None:
    users = [EvaluationContext(user_id=f"user-{i}") for i in range(1_000)]
    at_10 = {c.user_id for c in users if decide(on(rollout_percentage=10), context=c).enabled}
    at_20 = {c.user_id for c in users if decide(on(rollout_percentage=20), context=c).enabled}

    assert at_10 < at_20


def test_a_user_list_rollout_serves_only_the_listed_users() -> None:
    flag = on(rollout_strategy=RolloutStrategy.USER_LIST, enabled_for_users=("alice",))

    assert decide(flag).reason is Reason.USER_TARGETED
    other = decide(flag, context=EvaluationContext(user_id="bob"))
    assert (other.enabled, other.reason) == (False, Reason.ROLLOUT_OUT)


def test_a_gradual_rollout_rises_from_nothing_to_its_percentage() -> None:
    start = NOW - timedelta(hours=1)
    flag = on(
        rollout_percentage=80,
        rollout_strategy=RolloutStrategy.GRADUAL,
        gradual_start=start,
        gradual_end=start + timedelta(hours=4),
    )
    users = [EvaluationContext(user_id=f"user-{i}") for i in range(2_000)]

    def share(at: datetime) -> float:
        return sum(decide(flag, context=c, now=at).enabled for c in users) / len(users)

    before, quarter, half, after = (
        share(start - timedelta(minutes=1)),
        share(start + timedelta(hours=1)),
        share(start + timedelta(hours=2)),
        share(start + timedelta(hours=9)),
    )
    assert before == 0
    assert 0.15 <= quarter <= 0.25  # 20% of users a quarter of the way through
    assert 0.35 <= half <= 0.45
    assert 0.75 <= after <= 0.85


def test_rings_open_in_order_for_their_groups() -> None:
    flag = on(
        rollout_percentage=0,
        rollout_strategy=RolloutStrategy.RING,
        rings=(
            Ring("canary", ("staff",)),
            Ring("early", ("beta",), opens_at=NOW - timedelta(days=1)),
            Ring("everyone", ("customers",), opens_at=NOW + timedelta(days=1)),
        ),
    )

    def ring_for(group: str, now: datetime = NOW) -> Evaluation:
        return decide(flag, context=EvaluationContext(user_id="u", groups=(group,)), now=now)

    assert (ring_for("staff").reason, ring_for("staff").rule_id) == (Reason.ROLLOUT_IN, "canary")
    assert ring_for("beta").rule_id == "early"
    assert ring_for("customers").reason is Reason.ROLLOUT_OUT
    assert ring_for("customers", NOW + timedelta(days=2)).enabled


def test_prerequisites_must_be_on_for_the_same_context_recursively() -> None:
    base = on("base", enabled_for_users=("alice",), rollout_percentage=0)
    middle = on("middle", prerequisite_features=("base",))
    top = on("top", prerequisite_features=("middle",))

    assert decide(top, middle, base, key="top").reason is Reason.DEFAULT
    bob = decide(top, middle, base, key="top", context=EvaluationContext(user_id="bob"))
    assert (bob.enabled, bob.reason, bob.rule_id) == (False, Reason.PREREQUISITE_FAILED, "middle")
    gone = decide(top, middle, key="top")
    assert (gone.reason, gone.rule_id) == (Reason.PREREQUISITE_FAILED, "middle")


def test_a_conflicting_flag_that_is_on_turns_this_one_off() -> None:
    old = on("old_checkout", conflicts_with=("new_checkout",))
    new = on(
        "new_checkout",
        conflicts_with=("old_checkout",),
        enabled_for_users=("alice",),
        rollout_percentage=0,
    )

    result = decide(old, new, key="old_checkout")
    assert (result.enabled, result.reason, result.rule_id) == (
        False,
        Reason.CONFLICT,
        "new_checkout",
    )
    # Each judged without its own conflicts: both name each other, so both yield.
    assert decide(old, new, key="new_checkout").reason is Reason.CONFLICT
    bob = EvaluationContext(user_id="bob")
    assert decide(old, new, key="old_checkout", context=bob).enabled is True


def test_the_order_of_the_steps() -> None:
    """Disabled beats the schedule, which beats the environment, which beats targeting."""
    flag = on(
        enabled_for_users=("alice",),
        enabled_environments=("staging",),
        schedule_cron="* 0-1 * * *",
    )

    assert decide(replace(flag, is_enabled=False)).reason is Reason.DISABLED
    assert decide(flag).reason is Reason.SCHEDULED_OFF
    assert decide(replace(flag, schedule_cron=None)).reason is Reason.ENVIRONMENT_EXCLUDED
    assert decide(replace(flag, schedule_cron=None, enabled_environments=())).reason is (
        Reason.USER_TARGETED
    )


def test_answers_depend_on_every_part_of_the_context() -> None:
    """The spec's sketch cached by flag and user only; here nothing is cached, and two
    contexts of one user get their own answers."""
    flag = on(
        rollout_percentage=0,
        enabled_for_roles=("admin",),
        targeting_rules=({"id": "eu", "when": {"attribute": "region", "op": "eq", "value": "eu"}},),
    )
    flags = FlagSet.of([flag], 1)
    contexts = [
        EvaluationContext(user_id="same", roles=("admin",)),
        EvaluationContext(user_id="same"),
        EvaluationContext(user_id="same", attributes={"region": "eu"}),
        EvaluationContext(user_id="same", attributes={"region": "us"}),
    ]

    assert [flags.evaluate("checkout", c, NOW).enabled for c in contexts] == [
        True,
        False,
        True,
        False,
    ]


def test_static_and_time_dependent_flags_are_told_apart() -> None:
    flags = FlagSet.of(
        [
            on("plain"),
            on("targeted", enabled_for_users=("alice",)),
            on("split", rollout_percentage=30),
            on("scheduled", schedule_cron="* 9-17 * * *"),
        ],
        1,
    )

    assert [flags.flags[k].static for k in ("plain", "targeted", "split", "scheduled")] == [
        True,
        False,
        False,
        False,
    ]
    assert flags.flags["scheduled"].time_dependent and not flags.flags["split"].time_dependent


@pytest.mark.parametrize("cron", ["0 0 31 2 *", "61 * * * *", "every day"])
def test_a_stored_schedule_that_cannot_run_keeps_the_flag_off_and_is_reported(cron: str) -> None:
    """An older version saved it: the flag still evaluates, as never in schedule."""
    flag = on(schedule_cron=cron)
    compiled = FlagSet.of([flag], 1).get(flag.key)

    assert decide(flag).reason is Reason.SCHEDULED_OFF
    assert compiled is not None
    assert [p.split(":")[0] for p in compiled.problems] == ["flag.schedule_cron"]


def test_stored_rules_that_cannot_compile_never_match_whole_and_are_reported() -> None:
    """Saved by a version whose engine took other patterns: each such rule never
    matches, `not` around it included, and the others still decide."""
    rules = (
        {"id": "lookahead", "when": {"not": cmp("email", "matches", "(?=x)")}},
        {"id": "unbalanced", "when": cmp("email", "matches", "(")},
        {"id": "pro", "when": cmp("plan", "eq", "pro")},
    )
    flag = on(rollout_percentage=0, targeting_rules=rules)
    compiled = FlagSet.of([flag], 1).get(flag.key)

    basic = decide(flag, context=EvaluationContext(user_id="a", attributes={"plan": "basic"}))
    pro = decide(flag, context=EvaluationContext(user_id="a", attributes={"plan": "pro"}))
    assert (basic.enabled, basic.reason) == (False, Reason.DEFAULT)
    assert (pro.reason, pro.rule_id) == (Reason.RULE_MATCH, "pro")
    assert compiled is not None
    assert [rule.id for rule in compiled.rules] == ["lookahead", "unbalanced", "pro"]
    assert [p.split(":")[0] for p in compiled.problems] == [
        "flag.targeting_rules[0].when.not.value",
        "flag.targeting_rules[1].when.value",
    ]


def cmp(attribute: str, op: str, value: object) -> dict[str, object]:
    return {"attribute": attribute, "op": op, "value": value}
