"""What produced a result: the commit, the versions, the machine and how busy it was.
Every benchmark's JSON carries it, so that runs can be compared later and a surprising
number traced to its cause (a dirty tree, a busy neighbour)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from collections.abc import Iterable
from importlib import metadata
from typing import Any

LoadAverage = tuple[float, float, float]


def commit() -> str:
    """The commit measured, marked `+dirty` when tracked files have changes."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], capture_output=True, text=True, check=False)
        return done.stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    return f"{head}+dirty" if git("status", "--porcelain", "--untracked-files=no") else head


def versions(packages: Iterable[str]) -> dict[str, str]:
    found = {"python": sys.version.split()[0]}
    for name in packages:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def machine(before: LoadAverage, after: LoadAverage) -> dict[str, Any]:
    return {
        "cpus": len(os.sched_getaffinity(0)),
        "platform": platform.platform(),
        "loadavg_before": before,
        "loadavg_after": after,
    }
