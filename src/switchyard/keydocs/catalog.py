"""What the reference documents: a server's state, as `switchyard export` reads it
(`transfer.document.State`), live or from an exported document. Its templates and
revision are not printed."""

from __future__ import annotations

from switchyard.transfer.document import State

Catalog = State
"""Environments, keys with their overrides (a key without any may be missing), flags and
limits, as the server's messages. Order does not matter: the renderers sort."""

__all__ = ["Catalog"]
