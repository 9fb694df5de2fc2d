"""Cache hit rate: the L1 hit rate of a server under a skewed read mix with 1% writes.

One bench server with its Prometheus metrics on (`--metrics-listen`), 1,000 keys
created first, then a seeded sequence of operations over them (`bench.zipf`): reads are
GetValue in production, writes SetValue of a new value in production, both of a key
drawn from a Zipf distribution (exponent 1.1 by default: the top key takes about a
sixth of all operations, the top 100 about two thirds).

Why a gRPC client against a server process rather than calls into ConfigService: the
hit rate is read where an operator would read it, from the server's own
`switchyard_cache_requests{level="l1"}` counters, and the reads take the production path
with requests really concurrent, so a read that arrives while the key is being
reloaded after a write counts as it would in production. Throughput is not the point:
one Python client with a few requests in flight is plenty.

Three phases, the counters read between them, so each phase's rate is the difference:
"fill" reads every key once (the cold misses of a server that has been up a while,
counted apart), "warm-up" runs the first operations of the sequence, "measured" the
rest. The run is far shorter than the keys' TTL (300 s), so no entry expires: the
measured rate is that of a server whose every key is read more often than its TTL.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TypeVar

import grpc

from bench import hitrate_report, report, scrape, zipf
from bench.serverproc import ServerError, ServerProcess
from switchyard import logs
from switchyard.domain.models import DEFAULT_CACHE_TTL_SECONDS
from switchyard.gen.v1 import config_pb2 as pb
from switchyard.gen.v1 import config_pb2_grpc
from switchyard.startup import run_until_complete

RESULTS = Path(__file__).resolve().parent / "results"
ENVIRONMENT = "production"
L1 = "switchyard_cache_requests_total"
COALESCED = "switchyard_reads_coalesced_total"
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Options:
    keys: int
    exponent: float
    write_fraction: float
    operations: int
    warmup: int
    concurrency: int
    seed: int


@dataclass(frozen=True, slots=True)
class Counts:
    """The server's L1 counters at one moment."""

    hits: float
    misses: float
    coalesced: float
    """Misses answered by a read of the same key already in flight."""

    @classmethod
    def read(cls, listen: str) -> Counts:
        samples = scrape.scrape(listen)
        return cls(
            scrape.value(samples, L1, {"level": "l1", "result": "hit"}),
            scrape.value(samples, L1, {"level": "l1", "result": "miss"}),
            scrape.value(samples, COALESCED, {}),
        )

    def __sub__(self, earlier: Counts) -> Counts:
        return Counts(
            self.hits - earlier.hits,
            self.misses - earlier.misses,
            self.coalesced - earlier.coalesced,
        )


@dataclass(frozen=True, slots=True)
class Phase:
    """One stretch of the sequence: what was sent, what the server counted, what the
    ideal cache would have done, and how long it took."""

    name: str
    reads: int
    writes: int
    measured: Counts
    ceiling: zipf.Ceiling
    seconds: float


def key_name(rank: int) -> str:
    return f"bench.hit.k{rank:04d}"


def _definition(rank: int) -> pb.ConfigDefinition:
    """A number key like any other. The TTL is set explicitly: a definition sent
    without one has 0, and a key with a TTL of 0 is never cached."""
    definition = pb.ConfigDefinition(
        key=key_name(rank),
        type=pb.CONFIG_TYPE_NUMBER,
        category="bench",
        is_active=True,
        is_editable=True,
        cache_ttl_seconds=DEFAULT_CACHE_TTL_SECONDS,
    )
    definition.value.number_value = 0
    return definition


async def _in_parallel(count: int, jobs: Iterable[T], run: Callable[[T], Awaitable[None]]) -> None:
    """Runs `run(job)` for every job, `count` at a time, in order of the sequence."""
    queue = iter(jobs)

    async def lane() -> None:
        for job in queue:  # one shared iterator: the lanes take the next job in turn
            await run(job)

    await asyncio.gather(*(lane() for _ in range(count)))


class Client:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = config_pb2_grpc.ConfigServiceStub(channel)
        self._written = 0

    async def create(self, rank: int) -> None:
        request = pb.CreateConfigRequest(config=_definition(rank), reason="hit-rate bench")
        await self._stub.CreateConfig(request, timeout=30)

    async def apply(self, op: zipf.Op) -> None:
        key = key_name(op.key)
        if not op.write:
            await self._stub.GetValue(
                pb.GetValueRequest(key=key, environment=ENVIRONMENT), timeout=30
            )
            return
        self._written += 1  # a new value every time: a write that changes nothing is none
        request = pb.SetValueRequest(key=key, environment=ENVIRONMENT, reason="hit-rate bench")
        request.value.number_value = self._written
        answer = await self._stub.SetValue(request, timeout=30)
        if not answer.changed:
            raise ServerError(f"SetValue of {key} changed nothing")


async def _phase(
    name: str,
    client: Client,
    ops: Sequence[zipf.Op],
    ideal: zipf.IdealCache,
    listen: str,
    concurrency: int,
) -> Phase:
    before, started = Counts.read(listen), time.monotonic()
    await _in_parallel(concurrency, ops, client.apply)
    seconds, after = time.monotonic() - started, Counts.read(listen)
    writes = sum(op.write for op in ops)
    return Phase(name, len(ops) - writes, writes, after - before, ideal.replay(ops), seconds)


async def _bench(options: Options) -> list[Phase]:
    listen = f"127.0.0.1:{scrape.free_port()}"
    ops = zipf.operations(
        options.warmup + options.operations,
        options.keys,
        options.exponent,
        options.write_fraction,
        options.seed,
    )
    with ServerProcess(metrics_listen=listen) as server:
        async with grpc.aio.insecure_channel(server.address) as channel:
            client = Client(channel)
            print(f"  creating {options.keys} keys")
            await _in_parallel(options.concurrency, range(options.keys), client.create)
            ideal = zipf.IdealCache()
            phases = []
            for name, stretch in (
                ("fill", [zipf.Op(write=False, key=k) for k in range(options.keys)]),
                ("warm-up", ops[: options.warmup]),
                ("measured", ops[options.warmup :]),
            ):
                print(f"  {name}: {len(stretch):,} operations, {options.concurrency} in flight")
                phases.append(
                    await _phase(name, client, stretch, ideal, listen, options.concurrency)
                )
    return phases


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench hitrate",
        description="L1 hit rate under Zipf-skewed reads with 1% writes, from /metrics.",
    )
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--exponent", type=float, default=1.1, help="Zipf exponent s")
    parser.add_argument("--write-fraction", type=float, default=0.01)
    parser.add_argument("--operations", type=int, default=50_000, help="measured operations")
    parser.add_argument("--warmup", type=int, default=5_000, help="operations before them")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--output-dir", type=Path, default=RESULTS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _arguments(argv)
    options = Options(
        keys=args.keys,
        exponent=args.exponent,
        write_fraction=args.write_fraction,
        operations=args.operations,
        warmup=args.warmup,
        concurrency=max(1, args.concurrency),
        seed=args.seed,
    )
    logs.configure("console", "warning")
    load_before = os.getloadavg()
    print(
        f"hit rate: {options.keys} keys, Zipf s={options.exponent:g}, "
        f"{options.write_fraction:.1%} writes"
    )
    try:
        phases = run_until_complete(_bench(options))
    except (ServerError, grpc.RpcError, OSError) as error:
        print(f"hit-rate bench failed: {error}", file=sys.stderr)
        return 1
    result = hitrate_report.build(phases, asdict(options), (load_before, os.getloadavg()))
    print(hitrate_report.render(result))
    path = report.write(result, args.output_dir, prefix="hitrate")
    print(f"raw numbers: {path}")
    return 0
