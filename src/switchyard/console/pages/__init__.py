"""The console's pages, one module per screen: each handler reads the session, calls the
API as its user and renders a template (a whole page, or the part htmx asked for)."""

__all__: list[str] = []
