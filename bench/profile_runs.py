"""Profiling each workload under load: py-spy attached to the benchmarked server when it
is installed and allowed to attach, else a dedicated server under cProfile."""

from __future__ import annotations

import dataclasses
import os
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench import h2load, profiling
from bench.serverproc import ServerError, ServerProcess
from bench.targets import Target, bind, load
from bench.workloads import Workload

PY_SPY_HINT = "`.venv/bin/pip install py-spy` (PyPI package py-spy)"


@dataclass(frozen=True, slots=True)
class Options:
    profiler: str  # auto, py-spy, cprofile or none
    seconds: float
    rate: int
    warmup: float


def _py_spy(
    py_spy: str,
    tool: str,
    server: ServerProcess,
    target: Target,
    settings: h2load.Settings,
    options: Options,
    workdir: Path,
) -> profiling.Profile | None:
    """Samples the running server while h2load loads it; None if py-spy may not attach."""

    def run_load(duration: float) -> float:
        longer = dataclasses.replace(settings, duration=duration)
        return load(tool, target, longer, workdir).rps

    return profiling.sample_under_load(
        py_spy, server.pid, target.workload.name, options.seconds, options.rate, workdir, run_load
    )


def _cprofile(
    tool: str, workload: Workload, settings: h2load.Settings, options: Options, workdir: Path
) -> profiling.Profile:
    """A dedicated server with cProfile, switched on (SIGUSR1) after warm-up so that
    start-up and migrations stay out of the per-RPC figures."""
    name = workload.name
    stats_file = workdir / f"{name}.cprofile"
    with ServerProcess(cprofile=stats_file) as server:
        target = bind(server, workdir, [workload])[name]
        load(tool, target, dataclasses.replace(settings, duration=options.warmup), workdir)
        os.kill(server.pid, signal.SIGUSR1)
        result = load(
            tool, target, dataclasses.replace(settings, duration=options.seconds), workdir
        )
    return profiling.parse_cprofile(
        stats_file, workload=name, requests=result.done, seconds=options.seconds
    )


def profile(
    tool: str,
    server: ServerProcess,
    targets: dict[str, Target],
    settings: h2load.Settings,
    options: Options,
    workdir: Path,
    workloads: Sequence[Workload],
) -> dict[str, profiling.Profile]:
    """A profile per workload (none when `options.profiler` is "none")."""
    if options.profiler == "none" or options.seconds <= 0:
        return {}
    py_spy = profiling.find_py_spy() if options.profiler in ("auto", "py-spy") else None
    if py_spy is None and options.profiler == "py-spy":
        raise ServerError(f"py-spy is not installed: {PY_SPY_HINT}")
    if py_spy is None and options.profiler == "auto":
        print(f"  py-spy is not installed ({PY_SPY_HINT}): profiling with cProfile")
    profiles: dict[str, profiling.Profile] = {}
    for workload in workloads:
        print(f"  profiling {workload.name} for {options.seconds:g} s")
        found = None
        if py_spy is not None:
            target = targets[workload.name]
            found = _py_spy(py_spy, tool, server, target, settings, options, workdir)
        if found is None:
            found = _cprofile(tool, workload, settings, options, workdir)
        profiles[workload.name] = found
    return profiles
