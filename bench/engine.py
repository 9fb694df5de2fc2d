"""The flag evaluation engine in-process: µs per evaluation, beside flagd's published figures.

EvaluateFlag over gRPC (`evalflag`) mostly measures grpc.aio; the decision itself is a
function call over an in-memory `FlagSet`, and this is its cost alone, without network,
protobuf or event loop, in `timeit` loops: the best of several runs, each long enough
(0.2 s by default) for the clock's resolution not to matter. The best run is the one the
neighbours on a shared machine disturbed least.

The cases are flagd's benchmark cases in Switchyard's terms, so the two can be set side
by side (flagd's evaluator is Go, its figures from its own benchmark, on another CPU: the
ratio says "same order of magnitude or not", not more):

- static: enabled, 100%, no targeting (flagd: a flag with a default variant only);
- targeting: a user list and a role list that do not match, then 3 rules, the last one
  matching (flagd: one JsonLogic `if`);
- rollout: 50% of users by their id's bucket, bucketing version 2 (CBOR pair, the
  default) and version 1 (concatenation) (flagd: `fractional`).

The same cases through `FlagService.evaluate`, as EvaluateFlag calls it, add what the
service does around the engine: the context's size check, the clock, the evaluation
count and the Prometheus counter. That service runs over a real SQLite store, built as
`switchyard serve` builds it (`open_application`), its flags created by `upsert_flag`.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
import tempfile
import timeit
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from bench import provenance, report
from switchyard import logs
from switchyard.api.identity import LOCAL_OPERATOR
from switchyard.app import open_application
from switchyard.domain.bucketing import CONCATENATED
from switchyard.domain.evaluation import FlagSet
from switchyard.domain.flags import Evaluation, EvaluationContext, FeatureFlag, Reason
from switchyard.domain.models import JSONValue
from switchyard.service.context import WriteContext
from switchyard.settings import Settings

CONTEXT = EvaluationContext(
    user_id="user-4711",
    roles=("viewer",),
    environment="production",
    attributes={"plan": "pro", "country": "US", "app_version": "2.3.1"},
)

FLAGD_US: dict[str, tuple[float, float]] = {
    "static": (1.4, 1.4),
    "targeting": (7.0, 8.0),
    "fractional": (10.0, 12.0),
}
"""flagd's evaluator, µs per evaluation (low, high across its flag types)."""
FLAGD_SOURCE = (
    "flagd's published Go benchmark (github.com/open-feature/flagd, benchmark.txt, "
    "core/pkg/evaluator on an 11th Gen Intel i9-11950H): BenchmarkResolve*Value "
    "static ~1.4 µs, targeting 7-8 µs; BenchmarkFractionalEvaluation 10-12 µs"
)


def _rule(rule_id: str, attribute: str, op: str, value: JSONValue) -> JSONValue:
    return {"id": rule_id, "when": {"attribute": attribute, "op": op, "value": value}}


_STATIC = FeatureFlag(key="static_flag", name="Static", is_enabled=True, rollout_percentage=100)
_TARGETED = FeatureFlag(
    key="targeted_flag",
    name="Targeted",
    is_enabled=True,
    enabled_for_users=("alice", "bob", "carol"),
    enabled_for_roles=("admin", "beta-tester"),
    targeting_rules=(
        _rule("enterprise-plan", "plan", "eq", "enterprise"),
        _rule("eu-countries", "country", "in", ["DE", "FR", "NL"]),
        _rule("app-2", "app_version", "semver_gte", "2.0.0"),
    ),
)
_ROLLOUT = FeatureFlag(key="rollout_flag", name="Rollout", is_enabled=True, rollout_percentage=50)
_ROLLOUT_V1 = replace(_ROLLOUT, key="rollout_flag_v1", bucketing_version=CONCATENATED)
_BUCKETED = frozenset({Reason.ROLLOUT_IN, Reason.ROLLOUT_OUT})


@dataclass(frozen=True, slots=True)
class Case:
    """One flag to evaluate for `CONTEXT`, what a right answer is, and which of flagd's
    figures it stands beside."""

    name: str
    about: str
    flag: FeatureFlag
    reasons: frozenset[Reason]
    flagd: str
    rule_id: str | None = None

    def check(self, evaluation: Evaluation) -> None:
        """A case decided by an earlier step than designed would time a shorter path."""
        if evaluation.reason not in self.reasons or (
            self.rule_id is not None and evaluation.rule_id != self.rule_id
        ):
            raise RuntimeError(f"{self.name}: {evaluation!r} is not the answer designed")


CASES = (
    Case("static", "enabled, 100%, no targeting", _STATIC, frozenset({Reason.DEFAULT}), "static"),
    Case(
        "targeting",
        "users, roles miss; 3 rules, the 3rd matches",
        _TARGETED,
        frozenset({Reason.RULE_MATCH}),
        "targeting",
        rule_id="app-2",
    ),
    Case("rollout v2", "50% by user id, bucketing v2 (CBOR)", _ROLLOUT, _BUCKETED, "fractional"),
    Case("rollout v1", "50% by user id, bucketing v1", _ROLLOUT_V1, _BUCKETED, "fractional"),
)
SERVICE_CASES = ("static", "targeting", "rollout v2")


@dataclass(frozen=True, slots=True)
class Timing:
    """One case timed: µs per evaluation in each run, `number` evaluations per run."""

    layer: str
    case: Case
    reason: Reason
    number: int
    runs_us: list[float]

    @property
    def best_us(self) -> float:
        return min(self.runs_us)

    def over_flagd(self) -> tuple[float, float]:
        """Ours over flagd's, against the high and the low end of flagd's range."""
        low, high = FLAGD_US[self.case.flagd]
        return self.best_us / high, self.best_us / low

    def as_dict(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "case": self.case.name,
            "about": self.case.about,
            "flag": self.case.flag.key,
            "reason": self.reason.value,
            "number": self.number,
            "best_us": self.best_us,
            "runs_us": self.runs_us,
            "flagd_us": list(FLAGD_US[self.case.flagd]),
            "ours_over_flagd": list(self.over_flagd()),
        }


def _time(call: Callable[[], object], repeat: int, min_seconds: float) -> tuple[int, list[float]]:
    """`repeat` runs of `number` calls, `number` chosen so that a run lasts at least
    `min_seconds`; µs per call in each run. `call` is a `functools.partial`: the loop's
    own cost per call is then a C call, some 0.03 µs, not a Python frame."""
    timer = timeit.Timer(call)
    number, taken = timer.autorange()
    number = max(number, math.ceil(number * min_seconds / taken))
    runs = timer.repeat(repeat=repeat, number=number)
    return number, [run / number * 1e6 for run in runs]


def _engine(repeat: int, min_seconds: float) -> list[Timing]:
    """Every case on one FlagSet holding all the cases' flags, at a fixed `now` (the
    engine takes the time as an argument; the service reads its clock)."""
    flags = FlagSet.of([case.flag for case in CASES], revision=1)
    now = datetime.now(UTC)
    timings = []
    for case in CASES:
        key = case.flag.key
        evaluation = flags.evaluate(key, CONTEXT, now)
        case.check(evaluation)
        call = partial(flags.evaluate, key, CONTEXT, now)
        number, runs = _time(call, repeat, min_seconds)
        timings.append(Timing("FlagSet.evaluate", case, evaluation.reason, number, runs))
    return timings


async def _service(workdir: Path, repeat: int, min_seconds: float) -> list[Timing]:
    settings = Settings(listen="127.0.0.1:0", database_url=f"sqlite:///{workdir}/engine.db")
    application = await open_application(settings)
    try:
        service = application.flags
        context = WriteContext(LOCAL_OPERATOR, reason="bench engine")
        for case in CASES:
            await service.upsert_flag(case.flag, None, context)
        timings = []
        for case in (c for c in CASES if c.name in SERVICE_CASES):
            key = case.flag.key
            evaluation, _ = service.evaluate(key, CONTEXT)
            case.check(evaluation)
            call = partial(service.evaluate, key, CONTEXT)
            number, runs = _time(call, repeat, min_seconds)
            timings.append(Timing("FlagService.evaluate", case, evaluation.reason, number, runs))
        return timings
    finally:
        await application.close()


def _range(low: float, high: float, digits: int, suffix: str = "") -> str:
    if f"{low:.{digits}f}" == f"{high:.{digits}f}":
        return f"{low:.{digits}f}{suffix}"
    return f"{low:.{digits}f}-{high:.{digits}f}{suffix}"


def _render(timings: list[Timing], repeat: int, load: tuple[float, float]) -> str:
    lines = [
        "",
        f"Flag evaluation engine, in-process: best of {repeat} timeit runs per case, "
        "µs per evaluation",
        f"context: user_id {CONTEXT.user_id!r}, roles {list(CONTEXT.roles)}, "
        f"environment {CONTEXT.environment!r}, attributes {dict(CONTEXT.attributes)}",
        "",
        f"{'case':<14}{'answer':<12}{'µs/eval':>9}  {'flagd (Go, published)':>22}"
        f"  {'ours/flagd':>11}",
    ]
    layer = ""
    for timing in timings:
        if timing.layer != layer:
            layer = timing.layer
            extra = " (+ context check, clock, counts, metric)" if "Service" in layer else ""
            lines.append(f"{layer}{extra}")
        flagd = _range(*FLAGD_US[timing.case.flagd], 1, " µs")
        lines.append(
            f"  {timing.case.name:<12}{timing.reason.value:<12}{timing.best_us:>9.2f}  "
            f"{flagd:>22}  {_range(*timing.over_flagd(), 2, 'x'):>11}"
        )
    lines += ["", "cases:"]
    lines += [f"  {case.name:<12}{case.about}" for case in CASES]
    lines += [
        "",
        f"flagd: {FLAGD_SOURCE}.",
        "Another language, another CPU: read the ratio as an order of magnitude.",
        f"load average {load[0]:.2f} before, {load[1]:.2f} after, "
        f"on {len(os.sched_getaffinity(0))} CPUs",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench engine", description=__doc__)
    parser.add_argument("--repeat", type=int, default=7, help="timeit runs per case")
    parser.add_argument(
        "--min-seconds", type=float, default=0.2, help="least duration of one timeit run"
    )
    parser.add_argument(
        "--no-service",
        dest="service",
        action="store_false",
        help="skip the cases through FlagService.evaluate",
    )
    parser.add_argument("--output-dir", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    logs.configure("console", "warning")  # open_application logs its start-up at info
    load_before = os.getloadavg()
    try:
        timings = _engine(args.repeat, args.min_seconds)
        if args.service:
            with tempfile.TemporaryDirectory(prefix="switchyard-engine-") as workdir:
                timings += asyncio.run(_service(Path(workdir), args.repeat, args.min_seconds))
    except RuntimeError as error:
        print(f"bench failed: {error}", file=sys.stderr)
        return 1
    load_after = os.getloadavg()
    result = {
        "benchmark": "flag evaluation engine",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": provenance.commit(),
        "versions": provenance.versions(["switchyard", "mmh3", "cbor2", "semver"]),
        "machine": provenance.machine(load_before, load_after),
        "settings": {"repeat": args.repeat, "min_seconds": args.min_seconds},
        "context": {
            "user_id": CONTEXT.user_id,
            "roles": list(CONTEXT.roles),
            "environment": CONTEXT.environment,
            "attributes": dict(CONTEXT.attributes),
        },
        "flagd": {"source": FLAGD_SOURCE, "us": {k: list(v) for k, v in FLAGD_US.items()}},
        "timings": [timing.as_dict() for timing in timings],
    }
    print(_render(timings, args.repeat, (load_before[0], load_after[0])))
    path = report.write(result, args.output_dir, prefix="engine")
    print(f"raw numbers: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
