"""What an import reads from variables and files, and the types it gives new keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from switchyard.domain.models import ConfigType
from switchyard.transfer.importing import as_type, from_environment, from_file, infer, read_dotenv


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("30", ConfigType.NUMBER, 30),
        ("-2.5", ConfigType.NUMBER, -2.5),
        ("TRUE", ConfigType.BOOLEAN, True),
        ("false", ConfigType.BOOLEAN, False),
        ('{"a": 1}', ConfigType.JSON, {"a": 1}),
        ("[1, 2]", ConfigType.ARRAY, [1, 2]),
        ("https://shop.example.com/api", ConfigType.URL, "https://shop.example.com/api"),
        ("ops@example.com", ConfigType.EMAIL, "ops@example.com"),
        ("1h30m", ConfigType.DURATION, "1h30m"),
        ("2026-12-01", ConfigType.DATE, "2026-12-01"),
        ("*/5 * * * *", ConfigType.CRON, "*/5 * * * *"),
        ("hello world", ConfigType.STRING, "hello world"),
        ("nan", ConfigType.STRING, "nan"),  # not a number anyone meant
        ("{not json", ConfigType.STRING, "{not json"),
        ("yes", ConfigType.STRING, "yes"),  # only true/false are booleans
    ],
)
def test_a_value_from_the_environment_gets_the_type_it_reads_as(
    text: str, kind: ConfigType, value: object
) -> None:
    assert infer(text) == (kind, value)


def test_typed_file_values_keep_their_types() -> None:
    assert infer(3) == (ConfigType.NUMBER, 3)
    assert infer(True) == (ConfigType.BOOLEAN, True)
    assert infer([1]) == (ConfigType.ARRAY, [1])
    assert infer({"a": 1}) == (ConfigType.JSON, {"a": 1})


def test_an_existing_keys_type_decides_how_text_is_read() -> None:
    assert as_type(ConfigType.NUMBER, "45") == 45
    assert as_type(ConfigType.STRING, "45") == "45"  # a string key keeps the text
    assert as_type(ConfigType.BOOLEAN, "true") is True
    assert as_type(ConfigType.NUMBER, "soon") == "soon"  # left for the server to refuse


def test_the_prefix_selects_and_is_stripped() -> None:
    variables = {"APP_API_TIMEOUT": "30", "APP_DB__MAX_CONN": "5", "OTHER": "1", "APP_": "x"}
    found = {i.key: i.value for i in from_environment(variables, "APP_")}
    assert found == {"api.timeout": "30", "db..max.conn": "5"}
    nested = {i.key for i in from_environment(variables, "APP_", separator="__")}
    assert nested == {"api_timeout", "db.max_conn"}


def test_a_dotenv_file_is_read_as_written(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text('export APP_A=1\nAPP_B="two words"  # note\nAPP_C=${APP_A}\nAPP_D\n')
    assert read_dotenv(path) == {
        "APP_A": "1",
        "APP_B": "two words",
        "APP_C": "${APP_A}",
        "APP_D": None,
    }
    assert [i.key for i in from_environment(read_dotenv(path), "APP_")] == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("c.yaml", "api:\n  timeout: 30\n  hosts: [a, b]\nflag: true\n"),
        ("c.json", '{"api": {"timeout": 30, "hosts": ["a", "b"]}, "flag": true}'),
        ("c.toml", "flag = true\n[api]\ntimeout = 30\nhosts = ['a', 'b']\n"),
    ],
)
def test_files_are_flattened_with_dots(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    found = {i.key: i.value for i in from_file(path, prefix="svc")}
    assert found == {"svc.api.timeout": 30, "svc.api.hosts": ["a", "b"], "svc.flag": True}


def test_a_file_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(ValueError, match="mapping"):
        from_file(path)
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(ValueError, match="does not parse"):
        from_file(broken)
