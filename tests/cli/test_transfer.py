"""export, apply -f, diff -f, import env, import file and schema against real servers:
a document round-trips through an empty database, a second apply changes nothing,
--prune deletes exactly what the file no longer names, an import infers types and is
refused by the secret guard, and a dry run changes nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from google.protobuf import field_mask_pb2, struct_pb2

from switchyard.cli.exit_codes import ExitCode
from switchyard.cli.options import PIECE_WRITES
from switchyard.gen.v1 import batch_pb2 as bpb
from switchyard.gen.v1 import batch_pb2_grpc, flag_pb2_grpc, rate_limit_pb2_grpc
from switchyard.gen.v1 import change_pb2 as cpb
from switchyard.gen.v1 import config_pb2 as pb
from switchyard.gen.v1 import flag_pb2 as fpb
from switchyard.gen.v1 import rate_limit_pb2 as rpb
from switchyard.service.batch import BatchService
from switchyard.transfer import plan

from .conftest import Running, serving, switchyard


async def revision(running: Running) -> int:
    return (await running.config.ListEnvironments(pb.ListEnvironmentsRequest())).revision


async def furnish(running: Running) -> None:
    """Beyond the demo keys: a flag with a prerequisite, a limit, a template, a second
    override of one key, a sensitive key and an environment of our own."""
    await running.config.UpsertEnvironment(
        pb.UpsertEnvironmentRequest(environment=pb.Environment(name="qa", parent="staging"))
    )
    flags = flag_pb2_grpc.FlagServiceStub(running.channel)
    await flags.UpsertFlag(
        fpb.UpsertFlagRequest(flag=fpb.FeatureFlag(key="base_ui", name="Base", is_enabled=True))
    )
    await flags.UpsertFlag(
        fpb.UpsertFlagRequest(
            flag=fpb.FeatureFlag(
                key="new_ui",
                name="New UI",
                is_enabled=True,
                rollout_percentage=25,
                prerequisite_features=["base_ui"],
                enabled_for_roles=["beta"],
            )
        )
    )
    limits = rate_limit_pb2_grpc.RateLimitServiceStub(running.channel)
    await limits.UpsertRateLimit(
        rpb.UpsertRateLimitRequest(
            rate_limit=rpb.RateLimit(
                key="api.per_user",
                name="per user",
                max_requests=100,
                time_window_seconds=60,
                scope_type=rpb.SCOPE_TYPE_USER,
            )
        )
    )
    await running.config.UpsertTemplate(
        pb.UpsertTemplateRequest(
            template=pb.Template(
                name="fast",
                template_type="performance",
                description="short timeouts",
                config_values=struct_pb2.Struct(
                    fields={"api.timeout": struct_pb2.Value(number_value=5)}
                ),
                is_active=True,
            )
        )
    )
    await running.config.SetValue(
        pb.SetValueRequest(
            key="api.timeout",
            environment="qa",
            value=struct_pb2.Value(number_value=12),
            priority=5,
        )
    )
    await running.config.CreateConfig(
        pb.CreateConfigRequest(
            config=pb.ConfigDefinition(
                key="db.password",
                type=pb.CONFIG_TYPE_STRING,
                category="db",
                is_sensitive=True,
                is_active=True,
                is_editable=True,
                value=struct_pb2.Value(string_value="correct horse battery"),
            )
        )
    )


async def test_export_apply_to_an_empty_database_and_export_again_is_the_same(
    running: Running, tmp_path: Path
) -> None:
    await furnish(running)
    first = tmp_path / "first.yaml"
    exported = await switchyard("export", "-f", str(first), address=running.address)
    assert exported.code == 0, exported.stderr
    text = first.read_text()
    assert "correct horse battery" not in text
    document = yaml.safe_load(text)
    (secret,) = [c for c in document["configs"] if c["key"] == "db.password"]
    assert secret["kept_values"] == "sensitive" and "value" not in secret
    assert [f["key"] for f in document["flags"]] == ["base_ui", "new_ui"]
    assert exported.stdout == ""

    async with serving(tmp_path / "empty.db", seed_demo=False) as empty:
        planned = await switchyard("diff", "-f", str(first), address=empty.address)
        assert planned.code == ExitCode.DIFFERENCES, planned.stderr
        assert "+ create config api.timeout" in planned.stdout
        assert await revision(empty) == 0  # the plan changed nothing

        applied = await switchyard("apply", "-f", str(first), "--yes", address=empty.address)
        assert applied.code == 0, applied.stdout + applied.stderr
        assert "Applied" in applied.stderr
        one_revision = await revision(empty)
        assert one_revision == 1  # everything in one transaction

        second = tmp_path / "second.yaml"
        again = await switchyard("export", "-f", str(second), address=empty.address)
        assert again.code == 0, again.stderr
        assert second.read_text() == text

        unchanged = await switchyard("apply", "-f", str(first), "--yes", address=empty.address)
        assert unchanged.code == 0
        assert "No changes" in unchanged.stderr
        assert await revision(empty) == one_revision
        same = await switchyard("diff", "-f", str(first), address=empty.address)
        assert same.code == 0, same.stdout


async def test_prune_deletes_exactly_what_the_file_no_longer_names(
    running: Running, tmp_path: Path
) -> None:
    await furnish(running)
    path = tmp_path / "config.yaml"
    assert (await switchyard("export", "-f", str(path), address=running.address)).code == 0
    document = yaml.safe_load(path.read_text())
    document["configs"] = [c for c in document["configs"] if c["key"] != "cache.ttl"]
    document["flags"] = [f for f in document["flags"] if f["key"] != "new_ui"]
    document["rate_limits"] = []
    for config in document["configs"]:
        if config["key"] == "api.timeout":
            config["overrides"] = [o for o in config["overrides"] if o["environment"] != "qa"]
    path.write_text(yaml.safe_dump(document))

    without_prune = await switchyard("diff", "-f", str(path), "-o", "json", address=running.address)
    assert without_prune.code == 0, without_prune.stdout  # nothing to create or update

    planned = await switchyard(
        "diff", "-f", str(path), "--prune", "-o", "json", address=running.address
    )
    assert planned.code == ExitCode.DIFFERENCES
    steps = {(s["action"], s["kind"], s["name"]) for s in planned.json()["steps"]}
    assert steps == {
        ("delete", "config", "cache.ttl"),
        ("delete", "flag", "new_ui"),
        ("delete", "rate_limit", "api.per_user"),
        ("delete", "override", "api.timeout@qa"),
    }
    applied = await switchyard(
        "apply", "-f", str(path), "--prune", "--yes", address=running.address
    )
    assert applied.code == 0, applied.stdout + applied.stderr
    after = tmp_path / "after.yaml"
    assert (await switchyard("export", "-f", str(after), address=running.address)).code == 0
    assert yaml.safe_load(after.read_text()) == yaml.safe_load(path.read_text())


async def test_a_refused_write_applies_nothing_and_a_bad_file_is_named(
    running: Running, tmp_path: Path
) -> None:
    path = tmp_path / "config.yaml"
    assert (await switchyard("export", "-f", str(path), address=running.address)).code == 0
    document = yaml.safe_load(path.read_text())
    for config in document["configs"]:
        if config["key"] == "api.timeout":
            config["value"] = "soon"  # a number key
        if config["key"] == "cache.ttl":
            config["description"] = "changed too"
    path.write_text(yaml.safe_dump(document))
    before = await revision(running)
    refused = await switchyard("apply", "-f", str(path), "--yes", address=running.address)
    assert refused.code == ExitCode.INVALID
    assert "! refused config api.timeout" in refused.stdout
    assert "nothing was applied" in refused.stderr
    assert await revision(running) == before

    document["configs"][0]["tyep"] = "CONFIG_TYPE_STRING"
    document["flags"] = [{"key": "x", "rollout_percentage": "half"}]
    path.write_text(yaml.safe_dump(document))
    bad = await switchyard("apply", "-f", str(path), "--yes", address=running.address)
    assert bad.code == ExitCode.INVALID
    assert "configs[0]" in bad.stderr and "tyep" in bad.stderr
    assert "flags[0].rollout_percentage" in bad.stderr


async def test_the_schema_is_published_and_validates_an_export(
    running: Running, tmp_path: Path
) -> None:
    printed = await switchyard("schema")
    assert printed.code == 0
    schema = json.loads(printed.stdout)
    committed = Path(__file__).parents[2] / "docs" / "switchyard.schema.json"
    assert json.loads(committed.read_text()) == schema, "run `switchyard schema > docs/...`"
    await furnish(running)
    exported = await switchyard("export", address=running.address)
    jsonschema.validate(yaml.safe_load(exported.stdout), schema)


async def test_import_env_infers_types_refuses_secrets_and_a_dry_run_changes_nothing(
    running: Running, tmp_path: Path
) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text(
        "APP_API_TIMEOUT=45\n"  # an existing number key: an override in staging
        "APP_WORKER_COUNT=8\n"
        "APP_FEATURE_ON=true\n"
        "APP_HOME_URL=https://shop.example.com\n"
        "APP_ADMIN_EMAIL=ops@example.com\n"
        "APP_GRACE=30s\n"
        'APP_LIMITS={"a": 1}\n'
        "APP_GREETING=hello there\n"
        "APP_AWS_KEY=AKIAIOSFODNN7EXAMPLE\n"
        "OTHER_THING=1\n"
    )
    before = await revision(running)
    planned = await switchyard(
        "import", "env", "--prefix", "APP_", "--from-file", str(dotenv), "--env", "staging",
        "-o", "json", address=running.address,
    )  # fmt: skip
    assert planned.code == ExitCode.INVALID  # one refused
    steps = {(s["name"], s["action"]) for s in planned.json()["steps"]}
    assert ("api.timeout@staging", "create") in steps
    assert ("worker.count", "create") in steps
    assert ("aws.key@staging", "refused") in steps
    assert not any(name.startswith("other") for name, _ in steps)
    assert await revision(running) == before

    applied = await switchyard(
        "import", "env", "--prefix", "APP_", "--from-file", str(dotenv), "--env", "staging",
        "--apply", "--skip-refused", "--reason", "migration", "--ticket", "OPS-9",
        address=running.address,
    )  # fmt: skip
    assert applied.code == 0, applied.stdout + applied.stderr
    assert await revision(running) == before + 1
    types = {}
    for key in ("worker.count", "feature.on", "home.url", "admin.email", "grace", "limits"):
        got = await running.config.GetConfig(pb.GetConfigRequest(key=key))
        types[key] = pb.ConfigType.Name(got.config.type)
    assert types == {
        "worker.count": "CONFIG_TYPE_NUMBER",
        "feature.on": "CONFIG_TYPE_BOOLEAN",
        "home.url": "CONFIG_TYPE_URL",
        "admin.email": "CONFIG_TYPE_EMAIL",
        "grace": "CONFIG_TYPE_DURATION",
        "limits": "CONFIG_TYPE_JSON",
    }
    staged = await running.config.GetValue(
        pb.GetValueRequest(key="api.timeout", environment="staging")
    )
    assert staged.value.number_value == 45
    history = await running.config.GetHistory(pb.GetHistoryRequest(after_revision=before))
    assert {(e.reason, e.ticket) for e in history.entries} == {("migration", "OPS-9")}
    absent = await switchyard("get", "aws.key", address=running.address)
    assert absent.code == ExitCode.NOT_FOUND


async def test_import_file_flattens_nested_keys(running: Running, tmp_path: Path) -> None:
    path = tmp_path / "billing.toml"
    path.write_text('[invoice]\ndue_days = 30\ncurrency = "EUR"\n[invoice.retry]\nenabled = true\n')
    applied = await switchyard(
        "import", "file", str(path), "--prefix", "billing", "--apply", address=running.address
    )
    assert applied.code == 0, applied.stdout + applied.stderr
    got = await running.config.GetValues(
        pb.GetValuesRequest(
            keys=[
                "billing.invoice.due_days",
                "billing.invoice.currency",
                "billing.invoice.retry.enabled",
            ]
        )
    )
    assert [v.value for v in got.values] == [
        struct_pb2.Value(number_value=30),
        struct_pb2.Value(string_value="EUR"),
        struct_pb2.Value(bool_value=True),
    ]
    again = await switchyard(
        "import", "file", str(path), "--prefix", "billing", "--apply", address=running.address
    )
    assert "No changes" in again.stderr


async def test_commands_that_move_everything_wait_longer_by_default() -> None:
    """A batch of thousands of writes takes seconds: these commands' --timeout defaults
    to 300 s, the others' to 10 s."""
    for command in (["export"], ["apply"], ["import", "env"], ["import", "file"], ["diff"]):
        shown = await switchyard(*command, "--help")
        assert "[default: 300.0; x>0]" in shown.stdout, command
    assert "[default: 10.0; x>0]" in (await switchyard("get", "--help")).stdout


# --- a key's state, and documents larger than one batch --------------------------------


def definition(key: str, value: float, **state: bool) -> pb.ConfigDefinition:
    return pb.ConfigDefinition(
        key=key,
        type=pb.CONFIG_TYPE_NUMBER,
        category=key.split(".", maxsplit=1)[0],
        value=struct_pb2.Value(number_value=value),
        is_active=state.get("is_active", True),
        is_editable=state.get("is_editable", True),
        is_deletable=state.get("is_deletable", True),
    )


async def set_state(running: Running, key: str, **state: bool) -> None:
    await running.config.UpdateConfig(
        pb.UpdateConfigRequest(
            config=pb.ConfigDefinition(key=key, **state),
            update_mask=field_mask_pb2.FieldMask(paths=sorted(state)),
        )
    )


async def test_read_only_inactive_and_undeletable_keys_round_trip_as_they_are(
    running: Running, tmp_path: Path
) -> None:
    """Issue 15, item 10: a fresh export's plan against its own server was refused
    ("is inactive", "is not editable"), and so was its apply to an empty server."""
    states = {
        "locked.read_only": {"is_editable": False},
        "locked.retired": {"is_active": False},
        "locked.both": {"is_active": False, "is_editable": False, "is_deletable": False},
    }
    for key, state in states.items():
        await running.config.CreateConfig(pb.CreateConfigRequest(config=definition(key, 1)))
        await running.config.SetValue(
            pb.SetValueRequest(
                key=key, environment="staging", value=struct_pb2.Value(number_value=2)
            )
        )
        await set_state(running, key, **state)
    path = tmp_path / "locked.yaml"
    assert (await switchyard("export", "-f", str(path), address=running.address)).code == 0
    before = await revision(running)

    same = await switchyard("diff", "-f", str(path), address=running.address)
    assert same.code == 0, same.stdout + same.stderr
    assert "0 refused" in same.stdout
    assert await revision(running) == before

    async with serving(tmp_path / "empty.db", seed_demo=False) as empty:
        applied = await switchyard("apply", "-f", str(path), "--yes", address=empty.address)
        assert applied.code == 0, applied.stdout + applied.stderr
        again = tmp_path / "again.yaml"
        assert (await switchyard("export", "-f", str(again), address=empty.address)).code == 0
        assert again.read_text() == path.read_text()
        for key, state in states.items():
            got = (await empty.config.GetConfig(pb.GetConfigRequest(key=key))).config
            assert {name: getattr(got, name) for name in state} == state, key
        clean = await switchyard("diff", "-f", str(path), address=empty.address)
        assert clean.code == 0, clean.stdout
        unchanged = await switchyard("apply", "-f", str(path), "--yes", address=empty.address)
        assert "No changes" in unchanged.stderr


async def test_a_document_sets_values_first_then_the_state_that_locks_them(
    running: Running, tmp_path: Path
) -> None:
    key = "locks.timeout"
    await running.config.CreateConfig(pb.CreateConfigRequest(config=definition(key, 1)))
    await running.config.SetValue(
        pb.SetValueRequest(key=key, environment="staging", value=struct_pb2.Value(number_value=2))
    )
    path = tmp_path / "config.yaml"
    assert (await switchyard("export", "-f", str(path), address=running.address)).code == 0
    document = yaml.safe_load(path.read_text())
    (item,) = [c for c in document["configs"] if c["key"] == key]
    item.update(value=5, is_active=False, is_editable=False)
    item["overrides"][0]["value"] = 6
    path.write_text(yaml.safe_dump(document))

    planned = await switchyard("diff", "-f", str(path), "-o", "json", address=running.address)
    assert planned.code == ExitCode.DIFFERENCES, planned.stdout + planned.stderr
    steps = [
        (s["kind"], s["name"], sorted(op["path"] for op in s["diff"]))
        for s in planned.json()["steps"]
    ]
    assert steps == [
        ("config", key, [""]),  # the base value
        ("override", f"{key}@staging", [""]),
        ("config", key, ["/is_active", "/is_editable"]),  # then the state
    ]
    before = await revision(running)
    applied = await switchyard("apply", "-f", str(path), "--yes", address=running.address)
    assert applied.code == 0, applied.stdout + applied.stderr
    got = await running.config.GetConfig(pb.GetConfigRequest(key=key))
    assert (got.config.is_active, got.config.is_editable) == (False, False)
    assert got.config.value.number_value == 5
    assert [o.value.number_value for o in got.overrides] == [6]
    assert await revision(running) == before + 1
    assert (await switchyard("diff", "-f", str(path), address=running.address)).code == 0

    # Locked on the server and in the document, with a new value: made editable and
    # active, written, and locked again, under one revision, as the plan shows.
    item["value"] = 7
    path.write_text(yaml.safe_dump(document))
    relocked = await switchyard(
        "apply", "-f", str(path), "--yes", "-o", "json", address=running.address
    )
    assert relocked.code == 0, relocked.stdout + relocked.stderr
    assert [s["kind"] for s in relocked.json()["steps"]] == ["config"] * 3
    got = await running.config.GetConfig(pb.GetConfigRequest(key=key))
    assert (got.config.is_active, got.config.is_editable) == (False, False)
    assert got.config.value.number_value == 7
    assert await revision(running) == before + 2


async def many_objects(running: Running, keys: int = 30) -> None:
    """An environment of our own, `keys` keys with two overrides each (some related by
    depends_on), flags that name each other, and limits that inherit."""
    await running.config.UpsertEnvironment(
        pb.UpsertEnvironmentRequest(environment=pb.Environment(name="qa", parent="staging"))
    )
    writes = []
    for i in range(keys):
        config = definition(f"bulk.key_{i:03d}", i + 1)
        if i % 10 == 0:
            config.validation.depends_on.append(f"bulk.key_{i + 1:03d}")
        writes.append(cpb.ProposedWrite(create_config=pb.CreateConfigRequest(config=config)))
    for i in range(keys):
        for environment in ("staging", "qa"):
            writes.append(
                cpb.ProposedWrite(
                    set_value=pb.SetValueRequest(
                        key=f"bulk.key_{i:03d}",
                        environment=environment,
                        value=struct_pb2.Value(number_value=100 + i),
                    )
                )
            )
    for name, prerequisites in (("ui_base", []), ("ui_new", ["ui_base"]), ("ui_dark", ["ui_new"])):
        flag = fpb.FeatureFlag(key=name, name=name, is_enabled=True)
        flag.prerequisite_features.extend(prerequisites)
        writes.append(cpb.ProposedWrite(upsert_flag=fpb.UpsertFlagRequest(flag=flag)))
    for key, parent in (("api.base", ""), ("api.child", "api.base")):
        limit = rpb.RateLimit(
            key=key, name=key, inherit_from=parent, scope_type=rpb.SCOPE_TYPE_USER
        )
        if not parent:
            limit.max_requests, limit.time_window_seconds = 100, 60
        writes.append(
            cpb.ProposedWrite(upsert_rate_limit=rpb.UpsertRateLimitRequest(rate_limit=limit))
        )
    await batch_pb2_grpc.BatchServiceStub(running.channel).ApplyWrites(
        bpb.ApplyWritesRequest(writes=writes)
    )


async def test_a_document_larger_than_a_piece_is_planned_and_applied_in_pieces(
    running: Running, tmp_path: Path
) -> None:
    """Issue 15, item 12: `diff -f` and `apply -f` sent the whole document as one batch,
    so a document past the server's 5,000 writes (or 4 MiB) could not be applied at all.
    Here a piece is 10 writes (the default is 1,000), and the document is 120 writes."""
    await many_objects(running)
    path = tmp_path / "many.yaml"
    assert (await switchyard("export", "-f", str(path), address=running.address)).code == 0

    async with serving(tmp_path / "empty.db", seed_demo=False) as empty:
        planned = await switchyard(
            "diff", "-f", str(path), "--piece-size", "10", "-o", "json", address=empty.address
        )
        assert planned.code == ExitCode.DIFFERENCES, planned.stdout + planned.stderr
        plan = planned.json()
        assert plan["pieces"] > 5 and plan["summary"]["refused"] == 0
        assert await revision(empty) == 0

        applied = await switchyard(
            "apply", "-f", str(path), "--piece-size", "10", "--yes", address=empty.address
        )
        assert applied.code == 0, applied.stdout + applied.stderr
        assert f"in {plan['pieces']} pieces at revisions 1 to {plan['pieces']}" in applied.stderr
        assert await revision(empty) == plan["pieces"]

        again = tmp_path / "again.yaml"
        assert (await switchyard("export", "-f", str(again), address=empty.address)).code == 0
        assert again.read_text() == path.read_text()
        clean = await switchyard(
            "diff", "-f", str(path), "--piece-size", "10", address=empty.address
        )
        assert clean.code == 0, clean.stdout


async def test_an_apply_in_pieces_stops_where_the_configuration_changed_and_says_so(
    running: Running, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await many_objects(running)
    path = tmp_path / "many.yaml"
    assert (await switchyard("export", "-f", str(path), address=running.address)).code == 0

    async with serving(tmp_path / "empty.db", seed_demo=False) as empty:
        applied_pieces = 0
        real_apply = BatchService.apply

        async def apply_then_interfere(self: BatchService, *args: Any, **kwargs: Any) -> Any:
            """After the second piece applied, someone else changes a key it wrote."""
            nonlocal applied_pieces
            result = await real_apply(self, *args, **kwargs)
            if not kwargs["dry_run"] and result.applied:
                applied_pieces += 1
                if applied_pieces == 2:
                    await empty.config.SetValue(
                        pb.SetValueRequest(
                            key="api.timeout", value=struct_pb2.Value(number_value=1)
                        )
                    )
            return result

        monkeypatch.setattr(BatchService, "apply", apply_then_interfere)
        stopped = await switchyard(
            "apply", "-f", str(path), "--piece-size", "10", "--yes", address=empty.address
        )
        assert stopped.code == ExitCode.CONFLICT, stopped.stdout + stopped.stderr
        assert "the configuration changed since the plan" in stopped.stderr
        assert "Applied 2 of " in stopped.stderr and "at revisions 1 to 2" in stopped.stderr
        assert "Not applied: piece 3 and after" in stopped.stderr
        assert "Apply the file again" in stopped.stderr
        assert await revision(empty) == 3  # two pieces and the other writer's change

        finished = await switchyard(
            "apply", "-f", str(path), "--piece-size", "10", "--yes", address=empty.address
        )
        assert finished.code == 0, finished.stdout + finished.stderr
        again = tmp_path / "again.yaml"
        assert (await switchyard("export", "-f", str(again), address=empty.address)).code == 0
        assert again.read_text() == path.read_text()


async def test_the_piece_size_defaults_to_what_the_plan_uses() -> None:
    assert PIECE_WRITES == plan.PIECE_WRITES
    for command in (["apply"], ["diff"], ["import", "env"], ["import", "file"]):
        shown = await switchyard(*command, "--help")
        assert "--piece-size" in shown.stdout, command
