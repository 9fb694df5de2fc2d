"""export, apply -f, diff -f, import env, import file and schema against real servers:
a document round-trips through an empty database, a second apply changes nothing,
--prune deletes exactly what the file no longer names, an import infers types and is
refused by the secret guard, and a dry run changes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import yaml
from google.protobuf import struct_pb2

from switchyard.cli.exit_codes import ExitCode
from switchyard.gen.v1 import config_pb2 as pb
from switchyard.gen.v1 import flag_pb2 as fpb
from switchyard.gen.v1 import flag_pb2_grpc, rate_limit_pb2_grpc
from switchyard.gen.v1 import rate_limit_pb2 as rpb

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
