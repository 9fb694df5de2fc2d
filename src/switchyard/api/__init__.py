"""The gRPC API: servicers, proto <-> domain mapping, the error and identity interceptors."""

__all__: list[str] = []
