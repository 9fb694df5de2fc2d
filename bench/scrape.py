"""Reading the bench server's Prometheus metrics (`bench.server --metrics-listen`).

The benchmarks read the server's own counters rather than counting on the client side:
the L1 hit rate is what `switchyard_cache_requests{level="l1"}` says, exactly as an
operator's dashboard would show it.
"""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Mapping

from prometheus_client.parser import text_string_to_metric_families

Labels = tuple[tuple[str, str], ...]
Samples = dict[tuple[str, Labels], float]


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now. (serve_metrics takes a fixed port; the race with
    another process taking it meanwhile is harmless on a bench machine.)"""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def scrape(listen: str, timeout: float = 10.0) -> Samples:
    """Every sample at `http://listen/metrics`, by sample name (with its `_total`
    suffix for counters) and sorted labels."""
    with urllib.request.urlopen(f"http://{listen}/metrics", timeout=timeout) as answer:
        text = answer.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, labels: Mapping[str, str] | None = None) -> float:
    """One sample's value; 0 when the server has not created it yet (a labelled
    counter appears on its first use)."""
    return samples.get((name, tuple(sorted((labels or {}).items()))), 0.0)
