"""A stall probe in a process of its own: `python -m tests.e2e.stall_probe ADDRESS` calls
GetValue every 10 ms on a connection of its own and, when its input ends, prints the
latencies it saw, as JSON. A call the server cannot answer at once, because something
holds its event loop, takes as long as the hold lasts: the worst latency is the longest
stall. Its own process, so that it measures the server and not the test (whose own
calls, building and reading a batch of thousands of writes, would delay it)."""

from __future__ import annotations

import json
import sys
import threading
import time

import grpc

from switchyard.gen.v1 import config_pb2 as pb
from switchyard.gen.v1 import config_pb2_grpc

INTERVAL_SECONDS = 0.01


def main(address: str) -> None:
    stop = threading.Event()
    latencies: list[float] = []
    with grpc.insecure_channel(address) as channel:
        stub = config_pb2_grpc.ConfigServiceStub(channel)
        request = pb.GetValueRequest(key="api.timeout")
        stub.GetValue(request, timeout=30)  # connected, and the answer cached
        print("ready", flush=True)
        threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
        while not stop.is_set():
            started = time.perf_counter()
            stub.GetValue(request, timeout=60)
            latencies.append(time.perf_counter() - started)
            time.sleep(INTERVAL_SECONDS)
    print(json.dumps({"latencies": latencies}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
