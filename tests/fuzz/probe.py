"""The stall probe: a process of its own, on a connection of its own, that calls the
server's cheapest RPC (grpc.health.v1.Health/Check, answered on the server's event loop
with no database) every `INTERVAL_SECONDS` and records how long each call took. A call
the server's loop cannot answer at once, because a request holds it, takes as long as
the hold lasts: the worst latency is the longest stall.

Run as `python probe.py ADDRESS`. It prints `ready` once the first call has answered,
then for every line `mark` read from stdin it waits for the call in flight to finish and
prints `WORST CALLS FAILURES`: the worst latency in seconds since the previous mark, how
many calls it made in all, and how many failed. It ends at the end of its input. Being
its own process, it measures the server, not the fuzzing client (whose CPU-bound drawing
of examples would otherwise delay it).
"""

from __future__ import annotations

import ctypes
import signal
import sys
import threading
import time

import grpc
from grpc_health.v1 import health_pb2

INTERVAL_SECONDS = 0.005
CALL_TIMEOUT_SECONDS = 120.0


class _Latencies:
    def __init__(self) -> None:
        self.changed = threading.Condition()
        self.worst = 0.0
        self.calls = 0
        self.failures = 0

    def add(self, seconds: float, failed: bool) -> None:
        with self.changed:
            self.worst = max(self.worst, seconds)
            self.calls += 1
            self.failures += failed
            self.changed.notify_all()

    def mark(self) -> str:
        """The window's figures, once the call in flight (or the next one) is done."""
        with self.changed:
            after = self.calls
            self.changed.wait_for(lambda: self.calls > after, timeout=CALL_TIMEOUT_SECONDS)
            line = f"{self.worst:.6f} {self.calls} {self.failures}"
            self.worst = 0.0
            return line


def _call_forever(address: str, latencies: _Latencies, stop: threading.Event) -> None:
    with grpc.insecure_channel(address) as channel:
        check = channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )
        request = health_pb2.HealthCheckRequest()
        while not stop.is_set():
            started = time.perf_counter()
            failed = False
            try:
                check(request, timeout=CALL_TIMEOUT_SECONDS)
            except grpc.RpcError:
                failed = True
            latencies.add(time.perf_counter() - started, failed)
            time.sleep(INTERVAL_SECONDS)


def main(address: str) -> None:
    ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: end with the test run
    latencies = _Latencies()
    stop = threading.Event()
    caller = threading.Thread(target=_call_forever, args=(address, latencies, stop), daemon=True)
    caller.start()
    latencies.mark()
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() == "mark":
            print(latencies.mark(), flush=True)
    stop.set()
    caller.join(timeout=CALL_TIMEOUT_SECONDS)


if __name__ == "__main__":
    main(sys.argv[1])
