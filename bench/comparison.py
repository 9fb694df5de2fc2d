"""What `getvalue`, `evalflag` and `checklimit` each measure against the null RPC.

All ask the same question of a different RPC: how close does it come to the fastest RPC
this server stack can serve? So all run the very same sequence (`bench.runner`): one
server, a pre-flight check, alternating rounds, a profile, a report. A `Comparison` holds
the little that tells them apart: the RPC (and any variant of it measured alongside),
how the tables name it, where the JSON goes, the aims it is held to, and whether the
server counts in a Redis of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.ratelimits import CHECK_BUCKET, CHECK_FIXED, SCRIPT_CALLS
from bench.scriptrate import ScriptCall
from bench.workloads import EVALUATE_FLAG, GET_VALUE, NULL, Workload

THROUGHPUT_AIM = 0.8
"""The project's aim for a read RPC: at least 0.8 of the null RPC's throughput."""
CHECK_RATE_LIMIT_AIM = 0.7
"""CheckRateLimit's: at least 0.7 of the null RPC's throughput, Redis round trip
included."""


@dataclass(frozen=True, slots=True)
class Comparison:
    """One RPC (`subject`) against the null RPC, on one server."""

    name: str
    """The benchmark's name on the command line (`python -m bench NAME`)."""
    label: str
    """The RPC as titles and tables name it."""
    title: str
    subject: Workload
    short: str
    """Names the ratios in the JSON (`throughput_SHORT_over_null`): `get` for GetValue,
    as the JSON has always had it, so older results still compare."""
    prefix: str
    """The JSON file's prefix under bench/results/."""
    checked: str
    """What the pre-flight call checked, for the log."""
    p99_aim_ms: float | None = None
    p99_spec_ms: float | None = None
    serial: bool = False
    """The default of `--serial`: run both workloads again with one request in flight."""
    paced_fraction: float = 0.0
    """The default of `--paced`: run both workloads again at this fraction of the
    subject's saturated throughput (0: no paced rounds)."""
    others: tuple[Workload, ...] = ()
    """Variants of the subject measured in the same rounds, each against the null RPC
    too (not profiled)."""
    throughput_aim: float = THROUGHPUT_AIM
    script_calls: tuple[ScriptCall, ...] = ()
    """With calls, the server counts in a throwaway redis-server (`--redis-url`), and
    Redis alone runs these calls between the rounds (`bench.scriptrate`)."""
    hot_path: bool = True
    """Whether `bench.hotpath` has the RPC's steps to time in isolation."""

    @property
    def workloads(self) -> tuple[Workload, ...]:
        """The order of the odd rounds: null first, then the subject, then the others."""
        return (NULL, self.subject, *self.others)

    @property
    def profiled(self) -> tuple[Workload, Workload]:
        return (NULL, self.subject)

    @property
    def redis(self) -> bool:
        return bool(self.script_calls)


GET_VALUE_VS_NULL = Comparison(
    name="getvalue",
    label="GetValue",
    title="cached GetValue vs null RPC",
    subject=GET_VALUE,
    short="get",
    prefix="bench",
    checked="GetValue = 60, Null = Empty",
)

EVALUATE_FLAG_VS_NULL = Comparison(
    name="evalflag",
    label="EvaluateFlag",
    title="EvaluateFlag (roles, 2 rules, 30% bucket) vs null RPC",
    subject=EVALUATE_FLAG,
    short="eval",
    prefix="evalflag",
    checked="UpsertFlag new_checkout, EvaluateFlag decided by the bucket, Null = Empty",
    p99_aim_ms=2.0,
    p99_spec_ms=5.0,
    serial=True,
    paced_fraction=0.5,
)

CHECK_RATE_LIMIT_VS_NULL = Comparison(
    name="checklimit",
    label="CheckRateLimit",
    title="CheckRateLimit (fixed window, counted in Redis) vs null RPC",
    subject=CHECK_FIXED,
    others=(CHECK_BUCKET,),
    short="check",
    prefix="checklimit",
    checked="UpsertRateLimit bench and bench-bucket; CheckRateLimit allowed and counted by "
    "each, not degraded; Null = Empty",
    throughput_aim=CHECK_RATE_LIMIT_AIM,
    script_calls=SCRIPT_CALLS,
    hot_path=False,
)
