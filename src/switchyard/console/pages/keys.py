"""The key list: every key by category, with its effective value in each layer side by
side and the layer that answered. Searching and filtering ask for the rows alone."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from switchyard.console.catalog import Row, columns_of
from switchyard.console.catalog import row_of as catalog_row
from switchyard.console.web import console_of, is_fragment, render, signed_in, templates

PAGE_ROWS = 100
"""Rows a page shows at once; "Show more" adds as many again."""


def _render_row(row: Row) -> str:
    """A row of the list as HTML: the macro the template of one row renders too."""
    html: str = templates.get_template("macros.html").module.key_row(row)  # type: ignore[attr-defined]
    return html


def _query(request: Request) -> tuple[str, str, int]:
    params = request.query_params
    try:
        offset = max(0, int(params.get("offset", "0")))
    except ValueError:
        offset = 0
    return params.get("q", "").strip(), params.get("category", ""), offset


async def key_list(request: Request) -> Response:
    session, api = signed_in(request)
    catalog = await console_of(request).catalogs.current(api, session.token)
    query, category, offset = _query(request)
    found = catalog.search(query, category)
    rows = await catalog.rows(api, found[offset : offset + PAGE_ROWS])
    shown = [catalog.shown(row, _render_row) for row in rows]
    context: dict[str, Any] = {
        "catalog": catalog,
        "revision": catalog.revision,
        "rows": shown,
        "found": len(found),
        "query": query,
        "category": category,
        "offset": offset,
        "next_offset": offset + len(shown),
        "page_rows": PAGE_ROWS,
        "section": "Keys",
    }
    target = request.headers.get("hx-target") if is_fragment(request) else None
    if target == "more":
        return render(request, "keys_rows.html", **context)
    if target == "key-table":
        return render(request, "keys_table.html", **context)
    return render(request, "keys.html", **context)


async def key_row(request: Request) -> Response:
    """One row, as it is now: what a live change of that key refreshes."""
    _, api = signed_in(request)
    key = request.path_params["key"]
    columns, revision = await columns_of(api)
    row: Row | None = await catalog_row(api, columns, key)
    if row is None:
        return Response(status_code=200)  # deleted or no longer readable: the row goes
    return render(request, "key_row.html", row=row, revision=revision)


__all__ = ["PAGE_ROWS", "key_list", "key_row"]
