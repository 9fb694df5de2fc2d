"""`switchyard verify` as an operator (or the fault suite, after a crash) runs it: a real
process against a database a real server wrote. It exits 0 when every invariant holds,
1 with a line per violation (naming the table, the row and the revision) when one does
not, and 2 for a usage error; `--json` says the same in one document.

Each broken database is a copy of a good one, changed past Switchyard as a crash, a bug
or a hand at the database could: a revision's history rows gone, the revision counter
ahead, a column edited, a row lost, a sealed value copied to another row, the wrong
master key."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from google.protobuf import struct_pb2

from switchyard.gen.v1 import access_pb2, access_pb2_grpc, flag_pb2, flag_pb2_grpc
from switchyard.gen.v1 import config_pb2 as pb
from switchyard.store import migrate, open_store

from .conftest import serving
from .helpers import value


async def verify(*args: str) -> tuple[int, str, str]:
    """`switchyard verify ARGS` in a process of its own: exit code, stdout, stderr."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHYARD_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "switchyard",
        "verify",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database a real server wrote: the demo keys, an encrypted key with a value and
    an override, a flag, a rate limit, a token, a template and a window."""
    database = tmp_path_factory.mktemp("verify") / "written.db"
    asyncio.run(_write(database))
    return database


async def _write(database: Path) -> None:
    async with serving(database) as running:
        config = running.config
        await config.CreateConfig(
            pb.CreateConfigRequest(
                config=pb.ConfigDefinition(
                    key="vault.secret", type=pb.CONFIG_TYPE_STRING, category="vault",
                    is_active=True, is_editable=True, is_encrypted=True,
                    value=value("secret-1"),
                )
            )
        )  # fmt: skip
        await config.SetValue(
            pb.SetValueRequest(key="vault.secret", value=value("secret-2"), environment="staging")
        )
        await config.SetValue(pb.SetValueRequest(key="api.timeout", value=value(45)))
        flags = flag_pb2_grpc.FlagServiceStub(running.channel)
        await flags.UpsertFlag(
            flag_pb2.UpsertFlagRequest(flag=flag_pb2.FeatureFlag(key="checkout", name="Checkout"))
        )
        await flags.SetFlagEnabled(
            flag_pb2.SetFlagEnabledRequest(flag_key="checkout", enabled=True)
        )
        access = access_pb2_grpc.AccessServiceStub(running.channel)
        await access.CreateToken(
            access_pb2.CreateTokenRequest(owner="ops", grants=[access_pb2.Grant(role="reader")])
        )
        values = struct_pb2.Struct()
        values.update({"api.timeout": 90})
        await config.UpsertTemplate(
            pb.UpsertTemplateRequest(
                template=pb.Template(name="slow", template_type="ops", config_values=values)
            )
        )
        await config.UpsertMaintenanceWindow(
            pb.UpsertMaintenanceWindowRequest(
                window=pb.MaintenanceWindow(
                    name="nightly", environment="staging", config_values=values,
                    schedule_cron="0 3 * * *", duration_seconds=600,
                )
            )
        )  # fmt: skip


def _copy(source: Path, target: Path, *statements: str) -> Path:
    """A copy of the database (and its key file), then `statements` run on it directly."""
    with (
        contextlib.closing(sqlite3.connect(source)) as a,
        contextlib.closing(sqlite3.connect(target)) as b,
    ):
        a.backup(b)
        for statement in statements:
            b.execute(statement)
        b.commit()
    shutil.copy(f"{source}.keys", f"{target}.keys")
    return target


def _revision(database: Path, sql: str) -> int:
    with contextlib.closing(sqlite3.connect(database)) as db:
        return int(db.execute(sql).fetchone()[0])


async def test_a_database_a_server_wrote_holds_every_invariant(written: Path) -> None:
    url = f"sqlite:///{written}"

    code, out, err = await verify("--database-url", url)
    json_code, report, _ = await verify("--database-url", url, "--json")

    assert (code, out) == (0, ""), err
    assert "every invariant holds" in err
    document = json.loads(report)
    assert json_code == 0 and document["ok"] is True and document["violations"] == []
    checked = document["checked"]
    assert checked["revisions"] == _revision(written, "SELECT revision FROM pf_revision")
    assert checked["sealed_rows"] >= 4  # the key's row, its override, their history rows
    assert checked["table_rows"] > 10


Breakage = Callable[[Path], tuple[tuple[str, ...], list[str]]]


def _history_gap(db: Path) -> tuple[tuple[str, ...], list[str]]:
    revision = _revision(db, "SELECT revision FROM pf_revision") // 2
    return (
        "DROP TRIGGER trg_history_no_delete",
        f"DELETE FROM pf_config_history WHERE revision = {revision}",
    ), [
        f"spine: pf_config_history revision {revision}: revision {revision} has no history rows",
        "guards: pf_config_history: trigger trg_history_no_delete is missing",
    ]


def _revision_ahead(db: Path) -> tuple[tuple[str, ...], list[str]]:
    revision = _revision(db, "SELECT revision FROM pf_revision")
    return ("UPDATE pf_revision SET revision = revision + 1",), [
        f"spine: pf_revision revision {revision + 1}: the current revision is "
        f"{revision + 1}, the newest the history holds is {revision}"
    ]


def _edited_column(db: Path) -> tuple[tuple[str, ...], list[str]]:
    revision = _revision(
        db,
        "SELECT MAX(revision) FROM pf_config_history WHERE config_key = 'api.timeout' "
        "AND table_name = 'pf_system_config'",
    )
    return (
        "UPDATE pf_system_config SET description = 'edited by hand' "
        "WHERE config_key = 'api.timeout'",
    ), [
        f"chain: pf_system_config row api.timeout revision {revision}: description differ "
        "from what the history recorded last"
    ]


def _lost_row(db: Path) -> tuple[tuple[str, ...], list[str]]:
    with contextlib.closing(sqlite3.connect(db)) as connection:
        (row_id,) = connection.execute(
            "SELECT id FROM pf_rate_limits UNION ALL SELECT id FROM pf_api_tokens"
        ).fetchone()
    return (f"DELETE FROM pf_api_tokens WHERE id = '{row_id}'",), [
        f"chain: pf_api_tokens row {row_id} revision",
    ]


def _copied_ciphertext(db: Path) -> tuple[tuple[str, ...], list[str]]:
    with contextlib.closing(sqlite3.connect(db)) as connection:
        (row_id,) = connection.execute(
            "SELECT id FROM pf_environment_config WHERE config_key = 'vault.secret'"
        ).fetchone()
    return (
        "UPDATE pf_environment_config SET config_value = (SELECT config_value "
        "FROM pf_system_config WHERE config_key = 'vault.secret') "
        "WHERE config_key = 'vault.secret'",
    ), [
        f"sealed: pf_environment_config row {row_id}: the stored config_value of config key "
        "'vault.secret' does not decrypt"
    ]


BREAKAGES: dict[str, Breakage] = {
    "history_gap": _history_gap,
    "revision_ahead": _revision_ahead,
    "edited_column": _edited_column,
    "lost_row": _lost_row,
    "copied_ciphertext": _copied_ciphertext,
}


@pytest.mark.parametrize("name", sorted(BREAKAGES))
async def test_each_broken_invariant_is_a_line_and_exit_1(
    written: Path, tmp_path: Path, name: str
) -> None:
    statements, expected = BREAKAGES[name](written)
    broken = _copy(written, tmp_path / f"{name}.db", *statements)
    url = f"sqlite:///{broken}"

    code, out, err = await verify("--database-url", url)
    json_code, report, _ = await verify("--database-url", url, "--json")

    assert code == 1, err
    lines = out.splitlines()
    for wanted in expected:
        assert any(line.startswith(wanted) for line in lines), f"{wanted!r} not in:\n{out}"
    assert f"{len(lines)} violation(s)" in err
    document = json.loads(report)
    assert json_code == 1 and document["ok"] is False
    assert len(document["violations"]) == len(lines)
    assert {v["check"] for v in document["violations"]} >= {w.split(":")[0] for w in expected}


async def test_the_wrong_master_key_fails_every_sealed_row(written: Path, tmp_path: Path) -> None:
    broken = _copy(written, tmp_path / "keys.db")
    other = tmp_path / "other.keys"
    other.write_text("k-other:" + "A" * 43 + "=\n")
    other.chmod(0o600)

    code, out, _ = await verify("--database-url", f"sqlite:///{broken}", "--key-file", str(other))

    assert code == 1
    sealed = [line for line in out.splitlines() if line.startswith("sealed: ")]
    assert sealed and all("which" in line and "does not hold" in line for line in sealed), out


async def test_usage_errors_exit_2_and_create_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "missing.db"

    for args in (
        ("--database-url", f"sqlite:///{missing}"),
        ("--database-url", "postgres://somewhere/db"),
        ("--no-such-option",),
    ):
        code, _, err = await verify(*args)
        assert code == 2, (args, err)
        assert "Usage:" in err or "Error:" in err
    assert not missing.exists()


async def test_a_schema_behind_is_reported_not_checked(tmp_path: Path) -> None:
    database = tmp_path / "behind.db"
    store = await open_store(f"sqlite:///{database}")
    await migrate(store, up_to=6)
    await store.close()

    code, out, err = await verify("--database-url", f"sqlite:///{database}", "--json")

    assert code == 1
    assert "switchyard migrate" in json.loads(out)["error"]
    assert "lacks migrations [7]" in err
