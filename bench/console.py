"""`python -m bench console`: how fast the web console answers, against a null endpoint.

One bench server with authentication on and the console beside it, started as
`switchyard serve` starts it (`bench.server --console`: uvicorn in the server's event
loop, calling the API over a private Unix socket as the signed-in user). Before any load
the bench seeds 5,000 keys in five categories (one `BatchService/ApplyWrites`, beside the
demo keys), signs in once with the server's site_admin token as a browser does (the sign-in
form's CSRF nonce, then the sealed session cookie), and checks that every workload's URL
answers 200 with what it should show: h2load counts any 2xx as a success.

h2load (HTTP/1.1, `--h1`: uvicorn speaks nothing else) then loads each workload in turn
with the session cookie, round after round, the order flipping every round, so that the
console's pages and the null endpoint share the machine's noise:

- `null`: GET /healthz, answered by the same stack (uvicorn, the trusted-host check, the
  console's security-headers middleware) without a session or an API call;
- `search`: GET /?q=key_01&category= as htmx asks for it while one types in the search
  box (`hx-request`, `hx-target: key-table`): one ListEnvironments call (the newest
  revision: the user's catalog of every key is kept per revision), a scan of the
  catalog in memory, and 100 rows rendered;
- `row`: GET /keys/<key>/row, the live refresh of one row: ListEnvironments,
  GetConfig, then one GetValues per layer (the base and each environment: 7 in a new
  database), and one row rendered;
- `page`: GET / as a browser loads it: the search's work for the first 100 keys, in the
  whole page (`--no-page` leaves it out).

The report is requests/s per workload (median of the rounds), its ratio to `null`'s in
the same round (median, and every round's), latency percentiles from h2load's log, and
the server process's CPU per request (from /proc: its event loop serves both the console
and the gRPC calls the console makes to itself). With `--profile`, py-spy then samples
the server under each workload (`--gil`, as `getvalue` does).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import grpc
import httpx
from google.protobuf import struct_pb2

from bench import h2load, profiling, provenance, report
from bench.runner import RESULTS
from bench.serverproc import CpuTimes, ServerError, ServerProcess
from bench.stats import median
from switchyard.gen.v1 import batch_pb2, batch_pb2_grpc, change_pb2
from switchyard.gen.v1 import config_pb2 as pb
from switchyard.service.seed import DEMO_KEYS

CATEGORIES = ("payments", "search", "checkout", "catalog", "shipping")
SEEDED = 5000
"""Keys the bench adds; `BatchService/ApplyWrites` takes at most 5,000 writes at once."""
QUERY = "key_01"
"""Matches key_0100 to key_0199: exactly one page of rows (`pages.keys.PAGE_ROWS`)."""
ROW_KEY = f"{CATEGORIES[0]}.key_0100"
EVERY_KEY = SEEDED + len(DEMO_KEYS)
PAGE_ROWS = 100
SESSION_COOKIE = "switchyard_session"
SIGN_IN_COOKIE = "switchyard_sign_in"
_CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]*)">')
_ROW = '<tr data-live="config:'
_REVISION = re.compile(r"at revision (\d+)")


class ConsoleBenchError(RuntimeError):
    """The console did not answer as the benchmark needs (seeding, sign-in, pre-flight)."""


@dataclasses.dataclass(frozen=True, slots=True)
class HttpWorkload:
    """One console URL under load: the headers htmx (or a browser) sends with it, besides
    the session cookie, and what its answer must show."""

    name: str
    path: str
    headers: tuple[str, ...]
    check: Callable[[str], None]
    signed_in: bool = True


@dataclasses.dataclass(frozen=True, slots=True)
class Target:
    """A workload bound to the running console: its URL, every header h2load sends, and
    the fewest body bytes a good answer has (from the pre-flight answers)."""

    workload: HttpWorkload
    url: str
    headers: tuple[str, ...]
    response_bytes: int


@dataclasses.dataclass(frozen=True, slots=True)
class Run:
    round: int
    workload: str
    load: h2load.LoadResult
    cpu: CpuTimes | None

    def as_dict(self) -> dict[str, Any]:
        per = 1e6 / self.load.done
        return {
            "round": self.round,
            "workload": self.workload,
            "server_cpu_us_per_request": self.cpu.process * per if self.cpu else None,
            "loop_thread_cpu_us_per_request": self.cpu.main_thread * per if self.cpu else None,
            **self.load.as_dict(),
        }


def _seeded_key(index: int) -> str:
    return f"{CATEGORIES[index % len(CATEGORIES)]}.key_{index:04d}"


def _seeded_write(index: int) -> change_pb2.ProposedWrite:
    """A key as an operator would define one: a category, a display name and description
    (which the search looks in too), a value of one of three types."""
    key = _seeded_key(index)
    kind = index % 3
    if kind == 0:
        config_type, value = pb.CONFIG_TYPE_STRING, struct_pb2.Value(string_value=f"v{index}")
    elif kind == 1:
        config_type, value = pb.CONFIG_TYPE_NUMBER, struct_pb2.Value(number_value=index)
    else:
        config_type, value = pb.CONFIG_TYPE_BOOLEAN, struct_pb2.Value(bool_value=index % 2 == 0)
    return change_pb2.ProposedWrite(
        create_config=pb.CreateConfigRequest(
            config=pb.ConfigDefinition(
                key=key,
                type=config_type,
                category=key.split(".")[0],
                display_name=f"Bench key {index}",
                description=f"Seeded by the console benchmark in {key.split('.')[0]}.",
                value=value,
                is_active=True,
                is_editable=True,
                is_deletable=True,
            )
        )
    )


def seed(address: str, token: str, count: int = SEEDED) -> tuple[int, float]:
    """Creates `count` keys in one ApplyWrites call, through the real API as the token's
    user (validated, stored, recorded under one revision); returns that revision and
    how long the call took."""
    request = batch_pb2.ApplyWritesRequest(
        writes=[_seeded_write(i) for i in range(count)], reason="console benchmark"
    )
    # The answer lists every write's history row: larger than gRPC's 4 MiB default.
    options = (("grpc.max_receive_message_length", 64 * 1024 * 1024),)
    with grpc.insecure_channel(address, options=options) as channel:
        stub = batch_pb2_grpc.BatchServiceStub(channel)
        started = time.perf_counter()
        try:
            reply = stub.ApplyWrites(
                request, metadata=(("authorization", f"Bearer {token}"),), timeout=120
            )
        except grpc.RpcError as error:
            raise ConsoleBenchError(f"seeding {count} keys failed: {error}") from error
        seconds = time.perf_counter() - started
    if len(reply.outcomes) != count or reply.dry_run:
        raise ConsoleBenchError(f"ApplyWrites answered {len(reply.outcomes)} outcomes")
    return reply.revision, seconds


def sign_in(console_url: str, token: str) -> str:
    """The session cookie's value, got as a browser gets it: the sign-in form sets its
    CSRF nonce in a cookie and in the page's `csrf-token` meta tag; htmx posts the token
    with the nonce in `X-CSRF-Token` and is answered 204 with `HX-Redirect: /`."""
    with httpx.Client(base_url=console_url, timeout=30) as client:
        form = client.get("/sign-in")
        nonce = _CSRF_META.search(form.text)
        if form.status_code != 200 or nonce is None or SIGN_IN_COOKIE not in form.cookies:
            raise ConsoleBenchError(f"GET /sign-in answered {form.status_code} without a nonce")
        answer = client.post(
            "/sign-in",
            data={"token": token},
            headers={"X-CSRF-Token": nonce.group(1), "hx-request": "true"},
        )
        session = answer.cookies.get(SESSION_COOKIE)
        if answer.status_code != 204 or answer.headers.get("hx-redirect") != "/" or not session:
            raise ConsoleBenchError(
                f"POST /sign-in answered {answer.status_code} "
                f"(HX-Redirect {answer.headers.get('hx-redirect')!r}): {answer.text[:300]}"
            )
    return session


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise ConsoleBenchError(message)


def _check_null(body: str) -> None:
    _expect(body == "ok", f"/healthz answered {body[:200]!r}")


def _check_search(body: str) -> None:
    """The fragment htmx swaps in: the table alone, the 100 keys that match and no
    other, and the count of them among every key."""
    _expect("<html" not in body, "the search answered a whole page, not the fragment")
    _expect('id="key-table"' in body, "the search fragment is not the key table")
    _expect(f"{PAGE_ROWS} of {EVERY_KEY} keys match" in body, "the search count is off")
    expected = {f"config:{_seeded_key(i)}" for i in range(100, 200)}
    shown = set(re.findall(r'<tr data-live="(config:[^"]+)"', body))
    _expect(shown == expected, f"the search shows {len(shown)} rows, not key_0100..0199")


def _check_row(body: str) -> None:
    _expect(body.count(_ROW) == 1, "the row answer is not one row")
    _expect(f'data-live="config:{ROW_KEY}"' in body, f"the row is not {ROW_KEY}'s")
    _expect(f'href="/keys/{ROW_KEY}"' in body, "the row does not link its key")


def _check_page(body: str) -> None:
    _expect("<html" in body and 'id="key-table"' in body, "GET / is not the keys page")
    _expect(f"{EVERY_KEY} keys" in body, "the page does not count every key")
    _expect(body.count(_ROW) == PAGE_ROWS, f"the page shows {body.count(_ROW)} rows")


NULL = HttpWorkload("null", "/healthz", (), _check_null, signed_in=False)
SEARCH = HttpWorkload(
    "search",
    f"/?q={QUERY}&category=",
    ("hx-request: true", "hx-target: key-table"),
    _check_search,
)
ROW = HttpWorkload("row", f"/keys/{ROW_KEY}/row", ("hx-request: true",), _check_row)
PAGE = HttpWorkload("page", "/", (), _check_page)


def _headers(workload: HttpWorkload, session: str) -> tuple[str, ...]:
    """Every header h2load sends for `workload`: htmx's, and the session cookie."""
    cookie = (f"cookie: {SESSION_COOKIE}={session}",) if workload.signed_in else ()
    return (*workload.headers, *cookie)


def _fetch(console_url: str, workload: HttpWorkload, session: str) -> str:
    """One GET with exactly the headers h2load will send (no cookie jar: the one
    header), which must be answered 200 and pass the workload's check."""
    headers = dict(h.split(": ", 1) for h in _headers(workload, session))
    with httpx.Client(base_url=console_url, timeout=60) as client:
        answer = client.get(workload.path, headers=headers)
    _expect(
        answer.status_code == 200,
        f"{workload.name}: GET {workload.path} answered {answer.status_code}",
    )
    workload.check(answer.text)
    return answer.text


def _preflight(console_url: str, workload: HttpWorkload, session: str) -> Target:
    """Two checked GETs (the first search or page builds the user's catalog: every key
    read through the API). The answers must be the same size, which is then the floor
    h2load's byte count is checked against: a shorter answer would be something else
    (a refusal or a redirect to sign in is not a 200 either, which h2load's log shows)."""
    sizes = {len(_fetch(console_url, workload, session).encode()) for _ in range(2)}
    _expect(len(sizes) == 1, f"{workload.name}: two answers of different sizes {sizes}")
    return Target(workload, console_url + workload.path, _headers(workload, session), sizes.pop())


def _check_revision(console_url: str, session: str, seeded: int) -> None:
    """After the rounds: the search still answers from the catalog of the seeded
    revision. Had anything moved the revision, some searches would have rebuilt the
    catalog (every key read again) and been timed with it."""
    shown = _REVISION.search(_fetch(console_url, SEARCH, session))
    _expect(
        shown is not None and int(shown.group(1)) == seeded,
        f"the catalog moved from revision {seeded} to {shown and shown.group(1)} during the run",
    )


def _load(tool: str, target: Target, settings: h2load.Settings, workdir: Path) -> h2load.LoadResult:
    return h2load.run(
        tool,
        target.url,
        None,
        settings,
        workdir / f"{target.workload.name}.log",
        response_bytes=target.response_bytes,
        headers=target.headers,
    )


def _rounds(
    tool: str,
    server: ServerProcess,
    targets: Sequence[Target],
    settings: h2load.Settings,
    rounds: int,
    workdir: Path,
) -> list[Run]:
    """Every workload in each round, the order flipping between rounds; the server's CPU
    time around each run."""
    runs = []
    for index in range(rounds):
        order = targets if index % 2 == 0 else targets[::-1]
        for target in order:
            before = server.cpu_seconds()
            result = _load(tool, target, settings, workdir)
            after = server.cpu_seconds()
            cpu = after - before if before is not None and after is not None else None
            runs.append(Run(index + 1, target.workload.name, result, cpu))
            print(
                f"  round {index + 1}/{rounds} {target.workload.name:<7} "
                f"{result.rps:>8,.0f} req/s  p50 {result.latency_us['p50'] / 1000:6.1f} ms"
            )
        if not server.alive():
            raise ServerError("the bench server died during the rounds")
    return runs


def _profile(
    tool: str,
    server: ServerProcess,
    target: Target,
    settings: h2load.Settings,
    seconds: float,
    workdir: Path,
) -> profiling.Profile | None:
    """py-spy samples the server while h2load loads `target` (the load starts first and
    outlasts the sampling); None when py-spy is missing or may not attach."""
    py_spy = profiling.find_py_spy()
    if py_spy is None:
        print("  py-spy is not installed: no profile", file=sys.stderr)
        return None

    def run_load(duration: float) -> float:
        return _load(tool, target, dataclasses.replace(settings, duration=duration), workdir).rps

    return profiling.sample_under_load(
        py_spy, server.pid, target.workload.name, seconds, 100, workdir, run_load
    )


def _summary(runs: Sequence[Run], names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per workload: median requests/s and its range, median latencies, CPU per request;
    and the ratio to null within each round (neighbours in time share the noise)."""
    null = {r.round: r.load.rps for r in runs if r.workload == NULL.name}
    summary: dict[str, dict[str, Any]] = {}
    for name in names:
        mine = [r for r in runs if r.workload == name]
        ratios = [r.load.rps / null[r.round] for r in mine]
        cpu = [r.as_dict() for r in mine if r.cpu is not None]
        summary[name] = {
            "rps": median([r.load.rps for r in mine]),
            "rps_min": min(r.load.rps for r in mine),
            "rps_max": max(r.load.rps for r in mine),
            "ratio_to_null": median(ratios),
            "ratio_to_null_by_round": ratios,
            "p50_us": median([r.load.latency_us["p50"] for r in mine]),
            "p90_us": median([r.load.latency_us["p90"] for r in mine]),
            "p99_us": median([r.load.latency_us["p99"] for r in mine]),
            "server_cpu_us_per_request": (
                median([c["server_cpu_us_per_request"] for c in cpu]) if cpu else None
            ),
            "loop_thread_cpu_us_per_request": (
                median([c["loop_thread_cpu_us_per_request"] for c in cpu]) if cpu else None
            ),
        }
    return summary


def _n(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def render(summary: dict[str, dict[str, Any]], settings: h2load.Settings) -> str:
    widths = (8, 9, 17, 8, 8, 8, 10, 10)
    header: tuple[str, ...] = ("workload", "req/s", "(min-max)", "p50 ms", "p90 ms")
    header += ("p99 ms", "CPU µs/req", "loop µs")

    def line(cells: Sequence[str]) -> str:
        first, *rest = cells
        return "  ".join(
            [first.ljust(widths[0]), *(c.rjust(w) for c, w in zip(rest, widths[1:], strict=True))]
        )

    lines = [
        f"\nsaturated: h2load {' '.join(settings.args())}, {settings.duration:g} s per run; "
        "median of the rounds",
        line(header),
    ]
    for name, s in summary.items():
        lines.append(
            line(
                (
                    name,
                    _n(s["rps"]),
                    f"({_n(s['rps_min'])}-{_n(s['rps_max'])})",
                    _n(s["p50_us"] / 1000, 1),
                    _n(s["p90_us"] / 1000, 1),
                    _n(s["p99_us"] / 1000, 1),
                    _n(s["server_cpu_us_per_request"]),
                    _n(s["loop_thread_cpu_us_per_request"]),
                )
            )
        )
    lines.append("\nthroughput ratio to null, median of the per-round ratios (each round):")
    for name, s in summary.items():
        if name == NULL.name:
            continue
        rounds = " ".join(f"{v:.3f}" for v in s["ratio_to_null_by_round"])
        lines.append(f"  {name:<7} {s['ratio_to_null']:.3f}   ({rounds})")
    return "\n".join(lines)


def _render_profile(found: profiling.Profile, count: int = 12) -> str:
    lines = [
        f"\nprofile of {found.workload} (py-spy --gil, {found.seconds:g} s, "
        f"{found.requests:,} requests): µs of the GIL-holding thread per request",
        f"  {'self':>7}  {'cumul.':>7}  function",
    ]
    for cost in found.top("cumulative_us", count):
        lines.append(f"  {cost.self_us:>7.0f}  {cost.cumulative_us:>7.0f}  {cost.function}")
    lines.append("  top self time:")
    for cost in found.top("self_us", count):
        lines.append(f"  {cost.self_us:>7.0f}  {cost.cumulative_us:>7.0f}  {cost.function}")
    return "\n".join(lines)


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench console", description=__doc__)
    parser.add_argument("--rounds", type=int, default=5, help="rounds of every workload")
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per run")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds per workload")
    parser.add_argument(
        "--clients",
        type=int,
        default=8,
        help="h2load connections (-c), each with one request at a time (HTTP/1.1)",
    )
    parser.add_argument(
        "--page",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also load the whole keys page (GET / without htmx)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="then sample the server with py-spy under each workload",
    )
    parser.add_argument("--profile-seconds", type=float, default=8.0)
    parser.add_argument("--output-dir", type=Path, default=RESULTS)
    return parser.parse_args(argv)


def _versions(tool: str) -> dict[str, str]:
    found = provenance.versions(
        ("switchyard", "uvicorn", "h11", "httptools", "starlette", "jinja2", "grpcio")
    )
    found |= provenance.versions(("protobuf", "uvloop", "py-spy"))
    return {**found, "h2load": h2load.version(tool)}


def _bench(args: argparse.Namespace) -> dict[str, Any]:
    tool = h2load.ensure_h2load()
    settings = h2load.Settings(args.clients, 1, 1, args.duration, h1=True)
    workloads = [NULL, SEARCH, ROW, *([PAGE] if args.page else [])]
    result: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-console-")))
        token_file = workdir / "token"
        # A site_admin's: a new key's base value reaches the protected production
        # environment, which takes the `approve` permission. Reads cost the same whoever
        # asks (one grant to check), so the loads are what any signed-in user makes.
        server = stack.enter_context(
            ServerProcess(token_file=token_file, token_role="site_admin", console=True)
        )
        token = token_file.read_text().strip()
        print(f"server pid {server.pid}: gRPC on {server.address}, console {server.console_url}")
        revision, seconds = seed(server.address, token)
        print(f"  seeded {SEEDED:,} keys in one ApplyWrites ({seconds:.2f} s, revision {revision})")
        session = sign_in(server.console_url, token)
        print("  signed in through the form (CSRF nonce, session cookie)")
        started = time.perf_counter()
        targets = [_preflight(server.console_url, w, session) for w in workloads]
        preflight_seconds = time.perf_counter() - started
        print(
            "  pre-flight OK: "
            + ", ".join(f"{t.workload.name} {t.response_bytes:,} B" for t in targets)
            + f" ({preflight_seconds:.2f} s, the user's catalog built in it)"
        )
        print(f"  h2load {' '.join(settings.args())}; warm-up {args.warmup:g} s each")
        warm = dataclasses.replace(settings, duration=args.warmup)
        for target in targets:
            _load(tool, target, warm, workdir)
        runs = _rounds(tool, server, targets, settings, args.rounds, workdir)
        _check_revision(server.console_url, session, revision)
        profiles = []
        if args.profile:
            for target in targets:
                found = _profile(tool, server, target, settings, args.profile_seconds, workdir)
                if found is not None:
                    profiles.append(found)
        result = {
            "seed": {
                "keys": SEEDED,
                "categories": CATEGORIES,
                "revision": revision,
                "apply_writes_seconds": seconds,
                "preflight_seconds": preflight_seconds,
            },
            "requests": {
                t.workload.name: {
                    "path": t.workload.path,
                    "headers": [h for h in t.headers if not h.startswith("cookie:")],
                    "signed_in": t.workload.signed_in,
                    "response_bytes": t.response_bytes,
                }
                for t in targets
            },
            "h2load": settings.as_dict(),
            "versions": _versions(tool),
            "runs": [r.as_dict() for r in runs],
            "summary": _summary(runs, [w.name for w in workloads]),
            "profiles": [p.as_dict(30) for p in profiles],
        }
        print(render(result["summary"], settings))
        for found in profiles:
            print(_render_profile(found))
    return result


def main(argv: Sequence[str] | None = None) -> int:
    args = _arguments(argv)
    load_before = os.getloadavg()
    try:
        measured = _bench(args)
    except (h2load.LoadError, ServerError, ConsoleBenchError, httpx.HTTPError) as error:
        print(f"bench failed: {error}", file=sys.stderr)
        return 1
    result = {
        "benchmark": "console",
        "commit": provenance.commit(),
        "machine": provenance.machine(load_before, os.getloadavg()),
        "settings": vars(args) | {"output_dir": str(args.output_dir)},
        **measured,
    }
    print(f"raw numbers: {report.write(result, args.output_dir, prefix='console')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
