"""The Grafana dashboard in deploy/grafana queries only metrics that metrics.py defines,
through its Prometheus datasource variable."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from switchyard.metrics import exposed_names

DASHBOARD = Path(__file__).parent.parent / "deploy" / "grafana" / "switchyard.json"

# PromQL words that are not metric names: aggregations and their modifiers, operators.
_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
    "and", "or", "unless", "sum", "min", "max", "avg", "count", "stddev", "stdvar",
    "topk", "bottomk", "quantile", "count_values", "group", "inf", "nan",
}  # fmt: skip
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_LABEL_LIST = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_VARIABLE = re.compile(r"\$\{?\w+\}?")
_IDENTIFIER = re.compile(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\()?")


def metric_names(expression: str) -> set[str]:
    """The metric names a PromQL expression selects (not its functions, keywords or labels)."""
    text = _STRING.sub('""', expression)
    text = _MATCHERS.sub("", text)
    text = _RANGE.sub("", text)
    text = _LABEL_LIST.sub(r"\1", text)
    text = _VARIABLE.sub("", text)
    return {
        name
        for name, call in _IDENTIFIER.findall(text)
        if not call and name.lower() not in _KEYWORDS
    }


def expressions(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, expression) for every panel target and templating query."""
    for panel in dashboard["panels"]:
        for inner in [panel, *panel.get("panels", [])]:
            for target in inner.get("targets", []):
                yield inner["title"], target["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            text = query["query"] if isinstance(query, dict) else query
            inner = re.fullmatch(r"label_values\((\w+)\s*,\s*\w+\)", text)
            yield f"${variable['name']}", inner.group(1) if inner else text


def test_the_name_parser_finds_metrics_and_skips_the_rest() -> None:
    assert metric_names(
        'histogram_quantile(0.99, sum by (method, le) (rate(a_bucket{method!~"x|y"}'
        "[$__rate_interval]))) / on(instance) group_left sum without (pool) (b) > bool 2"
    ) == {"a_bucket", "b"}


def test_every_expression_names_only_defined_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    defined = exposed_names()
    seen: set[str] = set()
    for where, expression in expressions(dashboard):
        names = metric_names(expression)
        assert names, f"{where}: {expression!r} names no metric"
        assert names <= defined, f"{where}: {sorted(names - defined)} not in metrics.py"
        seen |= names
    assert len(seen) >= 10


def test_every_panel_queries_the_datasource_variable() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert panels
    for panel in panels:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]


@pytest.mark.parametrize(
    "title",
    [
        "Request rate by RPC",
        "Errors by RPC and code",
        "p50 latency by RPC (unary)",
        "p99 latency by RPC (unary)",
        "Cache hit ratio per level",
        "Open watch streams",
        "Replica lag (revisions)",
        "Rate-limit decisions by limit and outcome",
        "Flag evaluations by flag and reason",
        "Database pool use",
    ],
)
def test_the_dashboard_has_the_panel(title: str) -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert title in {p["title"] for p in dashboard["panels"]}
