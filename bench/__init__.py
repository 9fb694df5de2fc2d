"""Switchyard's benchmarks, run by `make bench` (or `python -m bench`): a cached GetValue,
a realistic EvaluateFlag and a CheckRateLimit counted in Redis against a null RPC on the
same server stack, driven by h2load (`getvalue`, `evalflag`, `checklimit`); a real Envoy
with and without the global rate-limit filter asking Switchyard (`envoy`); the watch
fan-out to 1,000 streams (`fanout`); the L1 cache hit rate under a skewed mix
(`hitrate`); reads through the client's live view (`liveview`); the flag evaluation
engine in-process (`engine`). See bench/README.md."""

import os

# The benchmarks start processes (servers, clients, h2load, py-spy) while they hold gRPC
# channels. Every child execs at once, so gRPC's fork handlers have nothing to do, yet
# with them enabled each fork logs "Other threads are currently calling into gRPC,
# skipping fork() handlers". gRPC reads this when it is first imported: hence here.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")
