"""What `getvalue` and `evalflag` each measure against the null RPC.

Both ask the same question of a different RPC: how close does it come to the fastest RPC
this server stack can serve? So both run the very same sequence (`bench.runner`): one
server, a pre-flight check, alternating rounds, a profile, a report. A `Comparison` holds
the little that tells them apart: the RPC, how the tables name it, where the JSON goes
and the aims it is held to.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.workloads import EVALUATE_FLAG, GET_VALUE, NULL, Workload

THROUGHPUT_AIM = 0.8
"""The project's aim for every comparison: at least 0.8 of the null RPC's throughput."""


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

    @property
    def workloads(self) -> tuple[Workload, Workload]:
        """The order of the odd rounds: null first."""
        return (NULL, self.subject)


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
