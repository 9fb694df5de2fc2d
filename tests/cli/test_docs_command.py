"""`switchyard docs` against a real server (a real SQLite file seeded with the demo keys,
grpc.aio on loopback): it writes keys.md and keys.html, `--check` passes on what it
wrote, and fails naming the file once a definition changes, writing nothing."""

from __future__ import annotations

import asyncio
import socket
from html.parser import HTMLParser
from pathlib import Path

from click.testing import CliRunner, Result
from google.protobuf import field_mask_pb2

from switchyard.cli import main
from switchyard.cli.docs import docs
from switchyard.client import to_value
from switchyard.gen.v1 import config_pb2 as pb

from ..e2e import conftest as e2e
from ..e2e.conftest import Running

running = e2e.running
"""A real server on loopback over a real SQLite file seeded with the demo keys."""


async def _docs(tmp_path: Path, *args: str) -> Result:
    """Runs the command in a thread (the server serves on this test's loop), with no
    contexts file, token or address from the environment of whoever runs the tests."""
    env = {
        "SWITCHYARD_CONFIG": str(tmp_path / "no-contexts.yaml"),
        "SWITCHYARD_TOKEN": None,
        "SWITCHYARD_CONTEXT": None,
        "SWITCHYARD_ADDRESS": None,
    }
    return await asyncio.to_thread(CliRunner().invoke, docs, list(args), env=env)


async def _all_keys(running: Running) -> list[str]:
    reply = await running.config.ListConfigs(
        pb.ListConfigsRequest(include_inactive=True, page_size=1000)
    )
    assert not reply.next_page_token
    return [c.key for c in reply.configs]


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.ids.update(value for name, value in attrs if name == "id" and value)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


async def test_generates_checks_and_catches_a_changed_description(
    running: Running, tmp_path: Path
) -> None:
    out = tmp_path / "reference"
    address = ("--address", running.address)

    written = await _docs(tmp_path, *address, "--out-dir", str(out))

    assert written.exit_code == 0, written.output
    assert sorted(p.name for p in out.iterdir()) == ["keys.html", "keys.md"]
    page = _Page()
    page.feed((out / "keys.html").read_text(encoding="utf-8"))
    page.close()
    keys = await _all_keys(running)
    assert len(keys) >= 6
    assert {f"key-{key}" for key in keys} <= page.ids
    markdown = (out / "keys.md").read_text(encoding="utf-8")
    assert all(f"`{key}`" in markdown for key in keys)

    checked = await _docs(tmp_path, *address, "--out-dir", str(out), "--check")

    assert checked.exit_code == 0, checked.output
    assert "up to date" in checked.output

    await running.config.UpdateConfig(
        pb.UpdateConfigRequest(
            config=pb.ConfigDefinition(key="api.timeout", description="Now documented anew."),
            update_mask=field_mask_pb2.FieldMask(paths=["description"]),
            reason="docs test",
        )
    )
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    stale = await _docs(tmp_path, *address, "--out-dir", str(out), "--check")

    assert stale.exit_code == 1, stale.output
    assert f"out of date: {out / 'keys.md'}" in stale.output
    assert f"out of date: {out / 'keys.html'}" in stale.output
    assert "+| Description | Now documented anew. |" in stale.output
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before

    rewritten = await _docs(tmp_path, *address, "--out-dir", str(out))
    again = await _docs(tmp_path, *address, "--out-dir", str(out), "--check")

    assert rewritten.exit_code == 0, rewritten.output
    assert again.exit_code == 0, again.output


async def test_a_value_write_leaves_the_reference_up_to_date(
    running: Running, tmp_path: Path
) -> None:
    out = tmp_path / "reference"
    address = ("--address", running.address)
    assert (await _docs(tmp_path, *address, "--out-dir", str(out))).exit_code == 0

    await running.config.SetValue(pb.SetValueRequest(key="api.timeout", value=to_value(42)))

    checked = await _docs(tmp_path, *address, "--out-dir", str(out), "--check")
    assert checked.exit_code == 0, checked.output


async def test_check_of_a_missing_file_fails_and_writes_nothing(
    running: Running, tmp_path: Path
) -> None:
    out = tmp_path / "nowhere"

    result = await _docs(
        tmp_path, "--address", running.address, "--out-dir", str(out), "--format", "md", "--check"
    )

    assert result.exit_code == 1
    assert f"missing: {out / 'keys.md'}" in result.output
    assert not out.exists()


async def test_format_md_writes_only_markdown(running: Running, tmp_path: Path) -> None:
    out = tmp_path / "reference"

    result = await _docs(
        tmp_path, "--address", running.address, "--out-dir", str(out), "--format", "md"
    )

    assert result.exit_code == 0, result.output
    assert [p.name for p in out.iterdir()] == ["keys.md"]


async def test_an_unreachable_server_exits_7(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    result = await _docs(
        tmp_path, "--address", f"127.0.0.1:{port}", "--timeout", "2", "--out-dir", str(tmp_path)
    )

    assert result.exit_code == 7, result.output
    assert "UNAVAILABLE" in result.output or "DEADLINE_EXCEEDED" in result.output
    assert not (tmp_path / "keys.md").exists()


async def test_the_reference_of_an_exported_document_is_the_servers(
    running: Running, tmp_path: Path
) -> None:
    """`docs --from-file` (a user's CI, with the file kept in Git and no server) writes
    the same reference as `docs` against the server the file was exported from."""
    exported = tmp_path / "switchyard.yaml"
    result = await asyncio.to_thread(
        CliRunner().invoke, main, ["export", "-f", str(exported), "--address", running.address]
    )
    assert result.exit_code == 0, result.output
    live = await _docs(tmp_path, "--out-dir", str(tmp_path / "live"), "--address", running.address)
    assert live.exit_code == 0, live.output
    offline = await _docs(
        tmp_path, "--from-file", str(exported), "--out-dir", str(tmp_path / "file")
    )
    assert offline.exit_code == 0, offline.output
    for name in ("keys.md", "keys.html"):
        assert (tmp_path / "file" / name).read_text() == (tmp_path / "live" / name).read_text()
