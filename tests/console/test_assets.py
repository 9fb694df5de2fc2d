"""The console's files as shipped: the vendored htmx is the release it says it is, with
its license; every template compiles with the environment the pages use, and names only
templates that exist; the page skeleton names only static files that exist; and no
template holds code the content security policy would silently block."""

from __future__ import annotations

import hashlib
import json
import re
from importlib.resources import files
from pathlib import Path

import jinja2
import jinja2.meta
import pytest

from switchyard.console import web

CONSOLE = Path(str(files("switchyard.console")))
STATIC = CONSOLE / "static"
VENDOR = STATIC / "vendor"
TEMPLATES = CONSOLE / "templates"
PAGES = CONSOLE / "pages"


def _vendored() -> dict[str, dict[str, str]]:
    recorded: dict[str, dict[str, str]] = json.loads((VENDOR / "vendored.json").read_text())
    return recorded


def _template_names() -> list[str]:
    return sorted(path.name for path in TEMPLATES.glob("*.html"))


# --- vendored htmx -------------------------------------------------------------------------


def test_vendored_htmx_is_the_recorded_file() -> None:
    """The browser runs this file with the console's session: it must be exactly the
    release recorded (no hand edits, no truncated download)."""
    recorded = _vendored()["htmx.min.js"]
    content = (VENDOR / "htmx.min.js").read_bytes()
    assert hashlib.sha256(content).hexdigest() == recorded["sha256"]
    assert recorded["package"] == "htmx.org"


def test_vendored_htmx_is_the_recorded_version() -> None:
    """The version the record names is the one inside the file (htmx states its own),
    so an update that forgets the record is caught."""
    recorded = _vendored()["htmx.min.js"]
    assert recorded["version"] == "2.0.11"
    text = (VENDOR / "htmx.min.js").read_text(encoding="utf-8")
    assert re.findall(r'version:"([^"]+)"', text) == [recorded["version"]]


def test_every_vendored_file_is_recorded_with_its_license() -> None:
    """Redistributing a file means shipping its license beside it, and every file in
    vendor/ is accounted for in the record (hash, version, license)."""
    recorded = _vendored()
    shipped = {
        path.name
        for path in VENDOR.iterdir()
        if path.name != "vendored.json" and not path.name.endswith(".LICENSE")
    }
    assert shipped == set(recorded)
    for name, record in recorded.items():
        assert (VENDOR / name).is_file(), name
        assert set(record) >= {"package", "version", "license", "sha256", "path"}
        license_file = VENDOR / f"{name}.LICENSE"
        assert license_file.is_file(), f"{name} ships without its license"
        text = license_file.read_text(encoding="utf-8")
        assert len(text) > 100
        if record["license"] == "0BSD":
            assert "Zero-Clause BSD" in text
            assert "Permission to use, copy, modify, and/or distribute" in text


# --- templates -------------------------------------------------------------------------------


def test_the_templates_are_the_ones_the_loader_finds() -> None:
    """The pages load templates through the package loader: every template file must be
    visible to it (a template the loader cannot find is a server error on that page)."""
    environment = web._environment()
    assert len(_template_names()) > 10
    assert set(environment.list_templates(extensions=["html"])) == set(_template_names())


@pytest.mark.parametrize("name", _template_names())
def test_every_template_compiles(name: str) -> None:
    """A syntax error, or a filter the environment lacks, breaks a page only when it is
    first shown; compiling each with the pages' own environment finds it now."""
    environment = web._environment()
    source, _, _ = environment.loader.get_source(environment, name)  # type: ignore[union-attr]
    environment.parse(source)
    template = environment.get_template(name)
    assert template.name == name


@pytest.mark.parametrize("name", _template_names())
def test_every_template_names_only_templates_that_exist(name: str) -> None:
    """`extends`, `include` and `import` are resolved only when rendered: a misspelt name
    would fail that page at the worst moment."""
    environment = web._environment()
    source, _, _ = environment.loader.get_source(environment, name)  # type: ignore[union-attr]
    referenced = jinja2.meta.find_referenced_templates(environment.parse(source))
    for other in referenced:
        assert other is not None, f"{name} names a template by an expression"
        assert other in _template_names(), f"{name} names the missing template {other}"


def test_every_template_a_page_renders_exists() -> None:
    """The handlers name their templates as strings: each must be a real template."""
    rendered: set[str] = set()
    for module in [*PAGES.glob("*.py"), CONSOLE / "web.py"]:
        rendered |= set(re.findall(r'"([a-z_]+\.html)"', module.read_text(encoding="utf-8")))
    assert {"keys.html", "key.html", "sign_in.html", "refused.html"} <= rendered
    assert rendered <= set(_template_names())


def test_the_templates_hold_no_code_the_policy_would_block() -> None:
    """The content security policy admits only the console's own script and style files:
    an inline script, style attribute or event handler would be silently ignored by the
    browser, and the page would half work."""
    for name in _template_names():
        text = (TEMPLATES / name).read_text(encoding="utf-8")
        assert not re.search(r"<style|\sstyle=|\son[a-z]+=|hx-on|javascript:", text), name
        for script in re.findall(r"<script[^>]*>(.*?)</script>", text, flags=re.S):
            assert script.strip() == "", f"{name} has an inline script"
        for tag in re.findall(r"<script[^>]*>", text):
            assert re.search(r'src="/static/', tag), f"{name}: {tag}"


# --- static files ---------------------------------------------------------------------------


def test_the_static_files_the_page_skeleton_names_exist() -> None:
    """base.html wraps every page: a missing script or style sheet is a console without
    htmx (nothing works) or without its styles, on every page."""
    base = (TEMPLATES / "base.html").read_text(encoding="utf-8")
    referenced = re.findall(r'(?:href|src)="/static/([^"]+)"', base)
    assert set(referenced) >= {"console.css", "console.js", "vendor/htmx.min.js"}
    for path in referenced:
        found = STATIC / path
        assert found.is_file(), f"base.html names the missing /static/{path}"
        assert found.stat().st_size > 0, path


def test_every_static_path_a_template_names_exists() -> None:
    """The same for any other template that names a static file."""
    for name in _template_names():
        text = (TEMPLATES / name).read_text(encoding="utf-8")
        for path in re.findall(r"/static/([A-Za-z0-9_./-]+)", text):
            assert (STATIC / path).is_file(), f"{name} names the missing /static/{path}"


def test_the_templates_and_static_files_are_inside_the_package() -> None:
    """The wheel ships src/switchyard whole: templates and static files found through the
    package (not the checkout) are the ones an installed console serves."""
    assert (CONSOLE / "__init__.py").is_file()
    assert isinstance(web._environment().loader, jinja2.PackageLoader)
    for path in (TEMPLATES / "base.html", STATIC / "console.js", STATIC / "console.css"):
        assert path.is_file()
        assert CONSOLE in path.parents
