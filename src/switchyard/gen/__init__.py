"""Generated gRPC stubs: do not edit (see scripts/gen_protos.py)."""
