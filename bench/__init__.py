"""Switchyard's throughput benchmark: a cached GetValue against a null RPC on the same
server stack, driven by h2load. Run it with `make bench` (or `python -m bench`)."""
