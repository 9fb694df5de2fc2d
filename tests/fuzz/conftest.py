"""The fuzz suite's servers, budget and closing summary.

Budget (environment variables, all optional):

- `SWITCHYARD_FUZZ_PROFILE`: `ci` (the default, in `make test`: derandomized, so every
  run sends the same requests to a server seeded alike) or `long` (`make fuzz`: random,
  many more examples).
- `SWITCHYARD_FUZZ_EXAMPLES`: requests per RPC with authentication off (a third as many
  with it on); the profile's default otherwise.
- `SWITCHYARD_FUZZ_SECONDS`: with `long`, the most time spent on one RPC in one phase.
- `SWITCHYARD_FUZZ_REPORT`: where the JSON summary is written (requests per RPC, codes,
  longest stall, memory, findings); under pytest's temporary directory otherwise.
- `SWITCHYARD_FUZZ_STALL_BOUND`: the stall bound in seconds (0.25 unless set).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, Verbosity, settings

from .harness import Caller, Database, Memory, Probe, Report, ServerProcess, methods_of

STALL_BOUND_SECONDS = float(os.environ.get("SWITCHYARD_FUZZ_STALL_BOUND", "0.25"))
"""The longest any request may stall the server (every other caller's wait, as the probe
measures it), batches included. Measured on this shared 2-core machine at a load of 6 to
7, an idle server kept the probe waiting 2 ms at the median, 40 to 90 ms at the 99th
percentile and, a few times a minute, 0.2 to 0.6 s: a stall over the bound is therefore
sent twice more and counts only when it recurs (see test_fuzz.CONFIRMATIONS). A request
that holds the event loop for a quarter of a second, every time, is a defect."""
MEMORY_BOUND_BYTES = 256 * 2**20
"""How much the server's resident memory may grow over one phase: its caches are bounded
(L1 holds 10,000 answers), requests are at most 4 MiB, and a few thousand requests must
not leave more behind than that."""

_PROFILES = {
    "ci": {"examples": 20, "derandomize": True, "phases": (Phase.explicit, Phase.generate)},
    "long": {"examples": 400, "derandomize": False, "phases": (Phase.explicit, Phase.generate)},
}


@dataclass(frozen=True)
class Budget:
    profile: str
    examples: int
    seconds: float | None

    def settings(self, examples: int) -> settings:
        chosen = _PROFILES[self.profile]
        return settings(
            max_examples=max(examples, 1),
            derandomize=bool(chosen["derandomize"]),
            phases=chosen["phases"],  # type: ignore[arg-type]
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            verbosity=Verbosity.quiet,
            report_multiple_bugs=False,
        )


def budget() -> Budget:
    profile = os.environ.get("SWITCHYARD_FUZZ_PROFILE", "ci")
    if profile not in _PROFILES:
        raise pytest.UsageError(f"SWITCHYARD_FUZZ_PROFILE is ci or long, not {profile!r}")
    default = int(_PROFILES[profile]["examples"])  # type: ignore[call-overload]
    seconds = os.environ.get("SWITCHYARD_FUZZ_SECONDS")
    return Budget(
        profile=profile,
        examples=int(os.environ.get("SWITCHYARD_FUZZ_EXAMPLES", default)),
        seconds=float(seconds) if seconds else None,
    )


@dataclass
class Target:
    """One server under test and what measures it."""

    phase: str
    server: ServerProcess
    caller: Caller
    probe: Probe
    database: Database
    tokens: dict[str, str]
    """Bearer tokens by identity; empty with authentication off."""
    baseline: Memory
    """The server's memory once it had started, before any fuzzing."""
    seen_seed_failures: set[str] = field(default_factory=set)


ROLE_GRANTS = {
    "reader": {"role": "reader"},
    "editor": {"role": "editor"},
    "admin": {"role": "admin"},
    "payments_reader": {"role": "reader", "prefixes": ["payments."]},
    "staging_editor": {"role": "editor", "environments": ["staging"]},
}
"""The identities fuzzed besides site_admin, and the grants they hold."""


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


_REPORT = Report(stall_bound=STALL_BOUND_SECONDS, memory_bound=MEMORY_BOUND_BYTES)


@pytest.fixture(scope="session")
def fuzz_report() -> Report:
    return _REPORT


@pytest.fixture(scope="module")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """`switchyard serve` with authentication off: every caller is the local operator."""
    server = ServerProcess(tmp_path_factory.mktemp("fuzz-open"), auth=False)
    server.start()
    yield from _measured(server, "auth off", {})


@pytest.fixture(scope="module")
def authenticated_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """`switchyard serve --auth`, with a site_admin token made offline (as an operator
    makes the first one) and the others made through it. The management allowance is
    raised so that fuzzing is not refused for its pace alone."""
    server = ServerProcess(
        tmp_path_factory.mktemp("fuzz-auth"),
        auth=True,
        settings={"SWITCHYARD_MANAGEMENT_RATE_LIMIT": "100000/60"},
    )
    server.switchyard("migrate")
    admin = server.switchyard(
        "token", "create", "--owner", "fuzz-admin", "--grant", "site_admin", "--reason", "fuzz"
    ).strip()
    server.start()
    try:
        tokens = {"site_admin": admin, **_role_tokens(server.address, admin)}
    except BaseException:
        server.stop()
        raise
    yield from _measured(server, "auth on", tokens)


def _role_tokens(address: str, admin: str) -> dict[str, str]:
    """A token for each of `ROLE_GRANTS`, made by the site_admin."""
    create = next(
        m for m in methods_of(["switchyard.v1.AccessService"]) if m.descriptor.name == "CreateToken"
    )
    tokens = {}
    with contextlib.closing(Caller(address)) as caller:
        for name, grant in ROLE_GRANTS.items():
            answer, made = caller.call(
                create,
                {"owner": f"fuzz-{name}", "grants": [grant], "reason": "fuzz"},
                bearer(admin),
            )
            assert made is not None, answer
            tokens[name] = made.token  # type: ignore[attr-defined]
    return tokens


def _measured(server: ServerProcess, phase: str, tokens: dict[str, str]) -> Iterator[Target]:
    try:
        caller = Caller(server.address)
        probe = Probe(server.address)
        database = Database(server.database)
        before = server.memory()
    except BaseException:
        server.stop()
        raise
    try:
        yield Target(phase, server, caller, probe, database, tokens, before)
    finally:
        after = server.memory() if server.alive() else before
        _REPORT.memory[phase] = {
            "rss_before": before.rss,
            "rss_after": after.rss,
            "peak": after.peak,
            "probe_calls": probe.calls,
            "probe_failures": probe.failures,
        }
        probe.close()
        caller.close()
        database.close()
        server.stop()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _REPORT.phases:
        return
    target = os.environ.get("SWITCHYARD_FUZZ_REPORT")
    path = (
        Path(target)
        if target
        else Path(terminalreporter.config._tmp_path_factory.getbasetemp()) / "fuzz-report.json"  # type: ignore[attr-defined]
    )
    _REPORT.write(path)
    terminalreporter.section("fuzz summary")
    terminalreporter.write_line(_REPORT.render())
    terminalreporter.write_line(f"written to {path}")
