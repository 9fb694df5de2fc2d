"""Every RPC of every service the server registers, fuzzed from its request descriptor
against `switchyard serve` in a process of its own, with authentication off and on.

Each request is checked for four things:

1. its status is one the RPC may answer (`allowed_codes`), never INTERNAL, UNKNOWN or
   DATA_LOSS;
2. a refused request (any status but OK), and an OK dry run, leaves the newest revision
   and every row of every table as they were;
3. it stalls the server no longer than `STALL_BOUND_SECONDS` (the probe's worst wait);
4. the server's memory grows by at most `MEMORY_BOUND_BYTES` over a phase.

Findings are gathered over an RPC's whole run and reported together, each with the
request that caused it, so that one run lists every remaining defect.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from typing import Any

import grpc
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from switchyard.api.permissions import RULES
from switchyard.app import LISTED
from switchyard.domain.access import Permission

from .conftest import MEMORY_BOUND_BYTES, STALL_BOUND_SECONDS, Budget, Target, bearer, budget
from .harness import Answer, Digest, Finding, Method, Report, methods_of, reflected_methods
from .hazards import hazards, wire_hazards
from .realistic import ensure_world, hints, skeletons
from .strategies import Case, RequestStrategies

METHODS = methods_of(LISTED)
"""Every method of every service the server lists for reflection; the first test checks
this against what the running server itself says it serves."""

Code = grpc.StatusCode
NEVER = frozenset({Code.INTERNAL, Code.UNKNOWN, Code.DATA_LOSS})
_READS = frozenset({Permission.READ, Permission.EVALUATE, Permission.CHECK})
_REFUSALS = frozenset(
    {
        Code.INVALID_ARGUMENT,
        Code.NOT_FOUND,
        Code.FAILED_PRECONDITION,
        Code.PERMISSION_DENIED,
        Code.RESOURCE_EXHAUSTED,  # over the 4 MiB message limit, or an allowance
        Code.OUT_OF_RANGE,
    }
)
CONFIRMATIONS = 2
"""A stall over the bound is sent again this many times and counts only if every
attempt stalls too: on this shared 2-core machine, at a load of 7, an idle server kept
the probe waiting up to 0.6 s now and then."""
CERTAIN_STALL_SECONDS = 2.0
"""A stall this long is never that noise: it counts without being sent again (a request
that backtracks for seconds is not worth three tries)."""


def allowed_codes(method: Method, *, auth: bool) -> frozenset[grpc.StatusCode]:
    """What `method` may answer a fuzzed request: OK or a refusal a caller can act on.
    Writes may also find the object existing or changed (ALREADY_EXISTS, ABORTED); with
    authentication on, a caller may be UNAUTHENTICATED; a stream may be ended by this
    client (DEADLINE_EXCEEDED, CANCELLED) or for falling behind (ABORTED). Never
    UNAVAILABLE (the database and the server are up) nor UNIMPLEMENTED (every listed
    method is served). Health and reflection, gRPC's own servicers, have no permission
    rule and are open to everyone."""
    allowed = {Code.OK, *_REFUSALS}
    rule = RULES.get(method.path)
    if rule is not None and rule.permission not in _READS:
        allowed |= {Code.ALREADY_EXISTS, Code.ABORTED}
    if auth and rule is not None:
        allowed.add(Code.UNAUTHENTICATED)
    if method.streams_out:
        allowed |= {Code.DEADLINE_EXCEEDED, Code.CANCELLED, Code.ABORTED}
    return frozenset(allowed)


IDENTITIES_WITH_AUTH = (
    "site_admin",
    "admin",
    "editor",
    "reader",
    "payments_reader",
    "staging_editor",
    "no credentials",
    "unknown token",
    "not a bearer",
)


def test_the_fuzzed_rpcs_are_every_rpc_the_server_serves(open_server: Target) -> None:
    """What the running server says it serves is what is fuzzed, and a strategy can be
    built for every one of its requests: a new RPC is fuzzed without editing the suite."""
    served = reflected_methods(open_server.server.address)
    assert served == {m.short for m in METHODS}
    assert {m.path for m in METHODS} >= set(RULES), "a method the interceptor knows is not served"
    strategies = RequestStrategies()
    drawn: set[str] = set()

    @budget().settings(5)
    @given(st.data())
    def draw_for_every_method(data: st.DataObject) -> None:
        for method in METHODS:
            assert isinstance(data.draw(strategies.cases(method.descriptor)), Case)
            drawn.add(method.short)

    draw_for_every_method()
    assert drawn == served


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.short)
def test_no_request_breaks_the_open_server(
    method: Method, open_server: Target, fuzz_report: Report
) -> None:
    chosen = budget()
    run = _Run(open_server, method, fuzz_report, ("",))
    run.fuzz(chosen, chosen.examples, [*hazards().get(method.short, []), *wire_hazards()])


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.short)
def test_no_request_breaks_the_authenticating_server(
    method: Method, authenticated_server: Target, fuzz_report: Report
) -> None:
    """Fewer requests than without authentication: what is new here is who sends them."""
    chosen = budget()
    run = _Run(authenticated_server, method, fuzz_report, IDENTITIES_WITH_AUTH)
    run.fuzz(chosen, max(chosen.examples // 3, 1), wire_hazards())


def test_memory_stays_bounded(open_server: Target, authenticated_server: Target) -> None:
    """Over everything sent to each server so far (this test runs after the fuzzing)."""
    for server in (open_server, authenticated_server):
        now = server.server.memory()
        assert now.rss - server.baseline.rss <= MEMORY_BOUND_BYTES, (
            f"[{server.phase}] RSS grew from {server.baseline.rss // 2**20} MiB to "
            f"{now.rss // 2**20} MiB (peak {now.peak // 2**20} MiB)"
        )


# --- one RPC's run ------------------------------------------------------------------------------


class _Run:
    """Fuzzes one method of one server: seeds its world, sends every case, checks it."""

    def __init__(
        self, server: Target, method: Method, report: Report, identities: Sequence[str]
    ) -> None:
        self.server = server
        self.method = method
        self.identities = identities
        self.tally = report.tally(server.phase, method.short)
        self.findings: list[Finding] = []
        self.allowed = allowed_codes(method, auth=bool(server.tokens))
        admin = self.metadata("site_admin") if server.tokens else ()
        self.world = ensure_world(server.caller, admin, self._broken_seed)
        served = [m.descriptor.containing_service.full_name for m in METHODS]
        self.strategies = RequestStrategies(hints(self.world, served), skeletons(self.world))
        self.before: Digest = server.database.digest()
        server.probe.mark()

    def metadata(self, identity: str) -> tuple[tuple[str, str], ...]:
        if identity in self.server.tokens:
            return bearer(self.server.tokens[identity])
        if identity == "unknown token":
            return bearer("swy_" + "A" * 43)
        if identity == "not a bearer":
            return (("authorization", "Basic dXNlcjpwYXNz"),)
        return ()

    def fuzz(self, chosen: Budget, examples: int, explicit: Sequence[Case]) -> None:
        deadline = None if chosen.seconds is None else time.monotonic() + chosen.seconds

        def one(case: Case, identity: str) -> None:
            if deadline is None or time.monotonic() < deadline:
                self.check(case, identity)

        run: Callable[..., None] = given(
            case=self.strategies.cases(self.method.descriptor),
            identity=st.sampled_from(self.identities),
        )(one)
        for case in reversed(explicit):  # in the order given
            run = example(case=case, identity=self.identities[0])(run)
        chosen.settings(examples)(run)()
        self.tally.findings.extend(self.findings)
        assert self.server.server.alive(), self.server.server.log_tail()
        assert not self.findings, explain(self.findings)

    def send(self, case: Case, identity: str) -> tuple[Answer, float]:
        answer = self.server.caller.send(self.method, case.payload, self.metadata(identity))
        return answer, self.server.probe.mark()

    def check(self, case: Case, identity: str) -> None:
        """Sends one case and checks the four promises; what breaks one is a finding."""
        answer, stall = self.send(case, identity)
        after = self.server.database.digest()
        before, self.before = self.before, after
        self.tally.tried += 1
        self.tally.codes[answer.code.name] += 1
        self.tally.kinds[case.kind] += 1
        self.tally.worst_probe_wait = max(self.tally.worst_probe_wait, stall)
        problems = [
            *self._status_problems(answer),
            *self._state_problems(answer, case, before, after),
            *self._stall_problems(case, identity, stall),
        ]
        if not self.server.server.alive():
            problems.append(f"the server died: {self.server.server.log_tail()}")
        for problem in problems:
            self.findings.append(
                Finding(
                    self.server.phase,
                    self.method.short,
                    problem,
                    answer.code.name,
                    answer.details,
                    repr(case),
                    identity,
                )
            )

    def _status_problems(self, answer: Answer) -> list[str]:
        if answer.code in NEVER:
            return [f"answered {answer.code.name}"]
        if answer.code not in self.allowed:
            return [f"answered {answer.code.name}, which {self.method.descriptor.name} should not"]
        return []

    def _state_problems(
        self, answer: Answer, case: Case, before: Digest, after: Digest
    ) -> list[str]:
        """A refusal, or a dry run, must change nothing but what the scheduler changes
        by itself meanwhile."""
        if (answer.code is Code.OK and not case.dry_run) or after == before:
            return []
        if self.server.database.moved_by_scheduler_only(before, after):
            return []
        what = "a dry run" if answer.code is Code.OK else "a refused request"
        return [
            f"{what} changed {', '.join(before.changed_tables(after))} "
            f"(revision {before.revision} -> {after.revision})"
        ]

    def _stall_problems(self, case: Case, identity: str, stall: float) -> list[str]:
        if stall <= STALL_BOUND_SECONDS:
            self._worst(stall, case, identity)
            return []
        stalls = [stall] if stall >= CERTAIN_STALL_SECONDS else self.confirm(case, identity, stall)
        self._worst(min(stalls), case, identity)
        if min(stalls) <= STALL_BOUND_SECONDS:
            self.tally.unconfirmed_stalls += 1
            return []
        shown = ", ".join(f"{s:.3f}" for s in stalls)
        return [f"stalled the server for {shown} s (bound {STALL_BOUND_SECONDS} s)"]

    def _worst(self, stall: float, case: Case, identity: str) -> None:
        if stall > self.tally.worst_stall:
            self.tally.worst_stall = stall
            self.tally.worst_stall_case = f"{identity} {case!r}".strip()

    def confirm(self, case: Case, identity: str, first: float) -> list[float]:
        """The stalls of the first attempt and of up to `CONFIRMATIONS` more."""
        stalls = [first]
        for _ in range(CONFIRMATIONS):
            stalls.append(self.send(case, identity)[1])
            if stalls[-1] <= STALL_BOUND_SECONDS:
                break
        self.before = self.server.database.digest()
        return stalls

    def _broken_seed(self, rpc: str, answer: Answer, body: Any) -> None:
        """A seeding call that answered INTERNAL or UNKNOWN (because of what an earlier
        run left behind): reported once per phase, by the run it happened before."""
        key = f"{rpc} {answer.code.name} {answer.details[:60]}"
        if key in self.server.seen_seed_failures:
            return
        self.server.seen_seed_failures.add(key)
        self.findings.append(
            Finding(
                self.server.phase,
                rpc,
                f"answered {answer.code.name} while re-seeding before {self.method.short}",
                answer.code.name,
                answer.details,
                repr(body),
            )
        )


def explain(findings: Sequence[Finding]) -> str:
    """Every distinct problem once (its first request), most frequent first."""
    groups: dict[tuple[str, str, str], list[Finding]] = {}
    for finding in findings:
        problem = re.sub(r"[\d.]+(, [\d.]+)* s", "N s", finding.problem)
        details = re.sub(r"'[^']*'|\d+", "_", finding.details)[:120]
        groups.setdefault((finding.rpc, problem, details), []).append(finding)
    lines = [f"{len(findings)} findings in {len(groups)} groups:"]
    for group in sorted(groups.values(), key=len, reverse=True):
        lines.append(f"{len(group)} x {group[0].line()}")
    return "\n".join(lines)
