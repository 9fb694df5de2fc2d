"""Settings: environment variables and their defaults."""

from __future__ import annotations

import pytest

from switchyard.settings import DEFAULT_DATABASE_URL, DEFAULT_LISTEN, Settings


def test_defaults_run_an_embedded_server_on_loopback() -> None:
    settings = Settings.from_env({})

    assert settings.listen == DEFAULT_LISTEN == "127.0.0.1:50051"
    assert settings.database_url == DEFAULT_DATABASE_URL
    assert settings.redis_url is None
    assert settings.seeds_demo


@pytest.mark.parametrize(
    ("url", "flag", "seeds"),
    [
        ("sqlite:///data/x.db", None, True),
        ("oracle://app:x@db:1521/PROD", None, False),
        ("oracle://app:x@db:1521/DEMO", "yes", True),
        ("sqlite:///data/x.db", "0", False),
        ("sqlite:///data/x.db", "off", False),
        ("sqlite:///data/x.db", " ", True),
    ],
)
def test_demo_keys_go_into_a_new_embedded_database_only_unless_asked(
    url: str, flag: str | None, seeds: bool
) -> None:
    env = {"SWITCHYARD_DATABASE_URL": url}
    if flag is not None:
        env["SWITCHYARD_SEED_DEMO"] = flag

    assert Settings.from_env(env).seeds_demo is seeds


def test_environment_variables_are_read() -> None:
    settings = Settings.from_env(
        {
            "SWITCHYARD_LISTEN": "0.0.0.0:6000",
            "SWITCHYARD_REDIS_URL": "redis://cache:6379/0",
            "SWITCHYARD_LOG_FORMAT": "json",
            "SWITCHYARD_LOG_LEVEL": "debug",
        }
    )

    assert (settings.listen, settings.redis_url, settings.log_format, settings.log_level) == (
        "0.0.0.0:6000",
        "redis://cache:6379/0",
        "json",
        "debug",
    )


@pytest.mark.parametrize(
    ("url", "flag", "migrates"),
    [
        ("sqlite:///data/x.db", None, True),
        ("oracle://app:x@db:1521/PROD", None, False),
        ("oracle://app:x@db:1521/PROD", "1", True),
        ("sqlite:///data/x.db", "false", False),
    ],
)
def test_start_up_migrates_the_embedded_database_only_unless_asked(
    url: str, flag: str | None, migrates: bool
) -> None:
    env = {"SWITCHYARD_DATABASE_URL": url}
    if flag is not None:
        env["SWITCHYARD_MIGRATE"] = flag

    assert Settings.from_env(env).migrates is migrates
