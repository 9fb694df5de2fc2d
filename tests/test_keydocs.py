"""The key reference renders a hand-built Catalog: grouped by category then key, every
text escaped in both formats, no value of a sensitive key, nothing that moves without a
change to a definition, and the same bytes whatever the input order. (Reading a server's
catalog is `read_state`'s, tested with export.)"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import pytest

from switchyard.client import to_value
from switchyard.gen.v1 import config_pb2 as cpb
from switchyard.gen.v1 import flag_pb2 as fpb
from switchyard.gen.v1 import rate_limit_pb2 as rpb
from switchyard.keydocs import Catalog, render_html, render_markdown

HOSTILE = "a | b <script>alert(1)</script> & *bold* `tick`"
SECRET = "hunter2-secret"


def _config(key: str, category: str, **fields: Any) -> cpb.ConfigDefinition:
    defaults: dict[str, Any] = {
        "type": cpb.CONFIG_TYPE_STRING,
        "is_active": True,
        "is_editable": True,
        "is_deletable": True,
    }
    return cpb.ConfigDefinition(key=key, category=category, **{**defaults, **fields})


def _catalog(*, reverse: bool = False) -> Catalog:
    configs = [
        _config(
            "api.timeout",
            "api",
            type=cpb.CONFIG_TYPE_NUMBER,
            display_name="API timeout",
            description=HOSTILE,
            help_text="line one\nline two | piped",
            default_value=to_value(30),
            value=to_value(45),
            validation=cpb.Validation(
                min_value=1,
                max_value=300,
                depends_on=["api.enabled", "api.base_url"],
                allowed_values=[to_value(30), to_value("x|y")],
            ),
            is_required=True,
            requires_restart=True,
            version=7,
        ),
        _config("api.base_url", "api", type=cpb.CONFIG_TYPE_URL, description="Where."),
        _config(
            "db.password",
            "db",
            is_sensitive=True,
            default_value=to_value(SECRET),
            value=to_value(SECRET),
            validation=cpb.Validation(allowed_values=[to_value(SECRET)]),
        ),
        _config("db.key", "db", is_encrypted=True, default_value=to_value(SECRET)),
        _config("cache.old", "cache", is_active=False, description="Retired."),
    ]
    overrides = {
        "api.timeout": [
            cpb.Override(key="api.timeout", environment="staging", is_active=True),
            cpb.Override(
                key="api.timeout", environment="production", value=to_value(60), is_active=True
            ),
            cpb.Override(key="api.timeout", environment="dev", is_active=False),
        ],
        "db.password": [
            cpb.Override(
                key="db.password", environment="production", value=to_value(SECRET), is_active=True
            )
        ],
    }
    flag = fpb.FeatureFlag(
        key="new-checkout",
        name="New checkout",
        description="Pipes | and <b>tags</b>",
        is_enabled=True,
        rollout_percentage=25,
        rollout_strategy=fpb.ROLLOUT_STRATEGY_PERCENTAGE,
        enabled_for_roles=["beta", "admin"],
        enabled_for_users=["u1", "u2"],
        enabled_environments=["staging", "production"],
        prerequisite_features=["payments-v2", "accounts"],
        owner_team="checkout",
        is_deprecated=True,
        evaluation_count=12,
    )
    flag.targeting_rules.values.add().struct_value.update(
        {"id": "beta-testers", "when": {"all": []}, "variant": "on"}
    )
    flags = [flag, fpb.FeatureFlag(key="a-flag", name="A flag")]
    limits = [
        rpb.RateLimit(
            key="api.per-user",
            max_requests=100,
            time_window_seconds=60,
            scope_type=rpb.SCOPE_TYPE_USER,
            action_on_limit=rpb.LIMIT_ACTION_BLOCK,
            environment="production",
            exempt_api_keys=[SECRET],
            exempt_roles=["ops", "admin"],
            trigger_count=5,
        ),
        rpb.RateLimit(key="api.global", max_requests=1000, time_window_seconds=1),
    ]
    environments = [
        cpb.Environment(name="production", parent="staging", protected=True),
        cpb.Environment(name="staging"),
        cpb.Environment(name="dev"),
    ]
    if reverse:
        configs.reverse()
        flags.reverse()
        limits.reverse()
        environments.reverse()
        overrides = {k: list(reversed(v)) for k, v in reversed(overrides.items())}
        configs[-1].validation.depends_on.reverse()
        flags[-1].enabled_for_roles.reverse()
        flags[-1].prerequisite_features.reverse()
        limits[-1].exempt_roles.reverse()
    return Catalog(environments, configs, overrides, flags, limits)


class _Page(HTMLParser):
    """The ids, the links and the text of an HTML page, and the tags it opens."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.links: list[str] = []
        self.tags: set[str] = set()
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        for name, value in attrs:
            if name == "id" and value:
                self.ids.append(value)
            if name == "href" and value:
                self.links.append(value)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(page: str) -> _Page:
    parser = _Page()
    parser.feed(page)
    parser.close()
    return parser


def _section(markdown: str, anchor: str) -> str:
    """The Markdown between the anchor `anchor` and the next anchor."""
    start = markdown.index(f'<a id="{anchor}"></a>')
    end = markdown.find("<a id=", start + 1)
    return markdown[start : end if end != -1 else None]


def _cells(row: str) -> list[str]:
    """A Markdown table row split at its unescaped pipes."""
    return re.split(r"(?<!\\)\|", row.strip())[1:-1]


# --- grouping -----------------------------------------------------------------------


def test_keys_are_grouped_by_category_then_key() -> None:
    markdown = render_markdown(_catalog())
    body = markdown[markdown.index('<a id="configuration-keys">') :]

    order = [
        "### api",
        "#### `api.base_url`",
        "#### `api.timeout`",
        "### cache",
        "#### `cache.old` (inactive)",
        "### db",
        "#### `db.key`",
        "#### `db.password`",
        "## Feature flags",
    ]
    positions = [body.index(heading) for heading in order]
    assert positions == sorted(positions)


def test_html_groups_and_orders_as_markdown_does() -> None:
    page = _parse(render_html(_catalog()))

    assert [i for i in page.ids if i.startswith(("category-", "key-"))] == [
        "category-api",
        "key-api.base_url",
        "key-api.timeout",
        "category-cache",
        "key-cache.old",
        "category-db",
        "key-db.key",
        "key-db.password",
    ]


def test_flags_limits_and_environments_are_sorted_by_key() -> None:
    page = _parse(render_html(_catalog()))

    assert [i for i in page.ids if i.startswith(("flag-", "limit-", "env-"))] == [
        "env-dev",
        "env-production",
        "env-staging",
        "flag-a-flag",
        "flag-new-checkout",
        "limit-api.global",
        "limit-api.per-user",
    ]


def test_the_table_of_contents_links_every_key_flag_and_limit() -> None:
    html_page = _parse(render_html(_catalog()))
    markdown = render_markdown(_catalog())

    targets = [i for i in html_page.ids if i.startswith(("key-", "flag-", "limit-", "env-"))]
    assert len(targets) == 5 + 2 + 2 + 3
    assert len(set(html_page.ids)) == len(html_page.ids)
    assert {f"#{t}" for t in targets} <= set(html_page.links)
    contents = markdown[: markdown.index('<a id="environments">')]
    assert all(f"](#{t})" in contents for t in targets)


# --- what an entry says -------------------------------------------------------------


def test_a_key_entry_lists_its_definition() -> None:
    entry = _section(render_markdown(_catalog()), "key-api.timeout")

    assert "| Name | API timeout |" in entry
    assert "| Type | `number` |" in entry
    assert "| Default | `30` |" in entry
    assert (
        "| Constraints | required<br>minimum value `1`<br>maximum value `300`"
        '<br>one of `30`, `"x\\|y"`<br>depends on `api.base_url`, `api.enabled` |'
    ) in entry
    # Only active overrides count; their values are not the reference's business.
    assert "| Overridden in | `production`, `staging` |" in entry
    assert "| Requires restart | yes |" in entry
    assert "| Help | line one<br>line two \\| piped |" in entry


def test_an_inactive_key_is_marked_retired() -> None:
    entry = _section(render_markdown(_catalog()), "key-cache.old")

    assert "#### `cache.old` (inactive)" in entry
    assert "inactive (retired: reads answer NOT\\_FOUND)" in entry


def test_a_key_that_leaves_its_flags_unset_has_the_defaults() -> None:
    """As in a hand-written document: unset is_active, is_editable and is_deletable mean
    true, as the server reads them."""
    plain = cpb.ConfigDefinition(key="plain.key", category="plain", type=cpb.CONFIG_TYPE_STRING)
    overrides = {"plain.key": [cpb.Override(key="plain.key", environment="staging")]}
    entry = _section(
        render_markdown(Catalog(configs=[plain], overrides=overrides)), "key-plain.key"
    )

    assert "(inactive)" not in entry
    assert "| Status | active |" in entry
    assert "read-only" not in entry and "not deletable" not in entry
    assert "| Overridden in | `staging` |" in entry


def test_a_flag_entry_summarises_rollout_targeting_and_status() -> None:
    entry = _section(render_markdown(_catalog()), "flag-new-checkout")

    assert "### `new-checkout` (deprecated)" in entry
    assert "| Rollout | 25% of users |" in entry
    assert (
        "| Targeting | 2 users<br>roles `admin`, `beta`<br>rule `beta-testers` serves `on` |"
        in entry
    )
    assert "| Prerequisites | `accounts`, `payments-v2` |" in entry
    assert "| Environments | `production`, `staging` |" in entry
    assert "| Owner | checkout |" in entry
    assert "u1" not in entry


def test_a_limit_entry_gives_scope_quota_action_and_environment() -> None:
    entry = _section(render_markdown(_catalog()), "limit-api.per-user")

    assert "| Limit | 100 requests per 60 s |" in entry
    assert "| Scope | user |" in entry
    assert "| Action | block for 60 s |" in entry
    assert "| Environment | `production` |" in entry
    assert "| Exempt | roles `admin`, `ops`, 1 API key |" in entry


# --- escaping and secrets -----------------------------------------------------------


def test_markdown_escapes_pipes_and_html() -> None:
    markdown = render_markdown(_catalog())

    assert "<script" not in markdown
    assert "<b>" not in markdown
    assert "a \\| b &lt;script&gt;alert(1)&lt;/script&gt; &amp; \\*bold\\* \\`tick\\`" in markdown
    for row in (line for line in markdown.splitlines() if line.startswith("| ")):
        assert len(_cells(row)) == 2, row


def test_html_escapes_every_text() -> None:
    page_text = render_html(_catalog())
    page = _parse(page_text)

    assert "script" not in page.tags
    assert "b" not in page.tags
    assert "<script" not in page_text
    assert HOSTILE in "".join(page.text)


@pytest.mark.parametrize("render", [render_markdown, render_html])
def test_values_of_sensitive_and_encrypted_keys_are_never_printed(render: Any) -> None:
    text = render(_catalog())

    assert SECRET not in text
    assert "sensitive" in text
    assert "60" not in _section(render_markdown(_catalog()), "key-api.timeout")


def test_html_is_one_self_contained_page() -> None:
    page_text = render_html(_catalog())
    page = _parse(page_text)

    assert page_text.startswith("<!DOCTYPE html>")
    assert "style" in page.tags
    assert not {"script", "link", "img", "iframe"} & page.tags
    assert all(link.startswith("#") for link in page.links)


# --- determinism --------------------------------------------------------------------


@pytest.mark.parametrize("render", [render_markdown, render_html])
def test_the_same_catalog_renders_the_same_bytes(render: Any) -> None:
    assert render(_catalog()).encode() == render(_catalog()).encode()


@pytest.mark.parametrize("render", [render_markdown, render_html])
def test_input_order_does_not_matter(render: Any) -> None:
    assert render(_catalog(reverse=True)) == render(_catalog())


@pytest.mark.parametrize("render", [render_markdown, render_html])
def test_what_moves_without_a_definition_change_is_left_out(render: Any) -> None:
    moved = _catalog()
    for config in moved.configs:
        config.version += 3
        config.value.CopyFrom(to_value(999))
        config.updated_by = "someone-else"
        config.updated_at.GetCurrentTime()
    for flag in moved.flags:
        flag.evaluation_count += 100
        flag.last_evaluated.GetCurrentTime()
        flag.version += 1
        flag.stale = True
    for limit in moved.limits:
        limit.trigger_count += 100
        limit.last_triggered.GetCurrentTime()
        limit.version += 1

    assert render(moved) == render(_catalog())


def test_an_empty_catalog_renders() -> None:
    empty = Catalog([], [], {}, [], [])

    assert render_markdown(empty).count("None.") == 4
    assert _parse(render_html(empty)).ids == [
        "environments",
        "configuration-keys",
        "feature-flags",
        "rate-limits",
    ]
