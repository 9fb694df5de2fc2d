"""The gRPC API: servicers, proto <-> domain mapping, and the one server interceptor
(identity, errors)."""

__all__: list[str] = []
