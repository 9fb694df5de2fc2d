"""Switchyard: configuration, feature flags and rate limits over gRPC."""

__version__ = "0.1.0"

__all__ = ["__version__"]
