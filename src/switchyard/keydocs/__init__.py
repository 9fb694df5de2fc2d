"""A generated reference of every configuration key, feature flag and rate limit: what
`switchyard docs` writes as `keys.md` and `keys.html`.

A `Catalog` is a server's state as `switchyard export` reads it (`read_state`);
`render_markdown` and `render_html` turn a catalog into one document each. Both render
the same rows (`keydocs.rows.build_rows`), built once, so the two never disagree.

The output is deterministic, so that a committed copy diffs cleanly and `--check` is
stable: everything is sorted, and nothing that moves without a change to the definition
is printed (no timestamps of writes, versions, revisions, evaluation or trigger counts,
stale markers, and no current values: a key's base value changes with every routine
`SetValue`, its default with its definition).

Decisions, so that the document says the same thing every time:

- Owner of a key: its category (the heading it is grouped under) and subcategory.
  `created_by` / `updated_by` name whoever last typed a change (often an operator or
  an automation token), and `updated_by` moves with every value write, which would make
  the reference churn on routine changes; category and subcategory are what the schema
  has for the area that owns a key. Flags have owners of their own (`owner_team`,
  `owner_email`), printed as they are.
- Deprecation of a key: configuration keys have no deprecation field (neither in the
  protos nor in the specification's `pf_system_config`); a key is retired by setting
  `is_active` false, after which reads answer NOT_FOUND. Such a key is listed, marked
  "inactive". Flags have `is_deprecated` and `deprecation_date` (and `is_active`);
  limits have `is_active`.
- Values of sensitive or encrypted keys (default, allowed values) are never printed:
  they read "sensitive". Override values are never printed at all, only the
  environments that hold an active override.
"""

from switchyard.keydocs.catalog import Catalog
from switchyard.keydocs.markdown import render_markdown
from switchyard.keydocs.webpage import render_html

__all__ = ["Catalog", "render_html", "render_markdown"]
