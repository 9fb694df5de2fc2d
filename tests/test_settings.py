"""Settings: environment variables and their defaults."""

from __future__ import annotations

from typing import Any

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


def test_tls_settings_are_read_and_say_how_the_server_listens() -> None:
    tls = {"SWITCHYARD_TLS_CERT": "server.pem", "SWITCHYARD_TLS_KEY": "server.key"}

    assert Settings.from_env({}).transport_security() == "plaintext"
    assert Settings.from_env(tls).transport_security() == "tls"
    mutual = Settings.from_env({**tls, "SWITCHYARD_TLS_CLIENT_CA": "clients.pem"})
    assert (mutual.tls_cert, mutual.tls_key, mutual.tls_client_ca) == (
        "server.pem",
        "server.key",
        "clients.pem",
    )
    assert mutual.transport_security() == "mtls"


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"tls_cert": "server.pem"}, "needs its private key: give --tls-key"),
        ({"tls_key": "server.key"}, "needs its certificate: give --tls-cert"),
        ({"tls_client_ca": "clients.pem"}, "give --tls-cert and --tls-key too"),
        (
            {"tls_cert": "server.pem", "tls_client_ca": "clients.pem"},
            "needs its private key",
        ),
    ],
)
def test_half_a_tls_configuration_is_refused_not_served_in_plaintext(
    given: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Settings(**given).transport_security()


@pytest.mark.parametrize(
    "listen", ["0.0.0.0:50051", "[::]:50051", "10.1.2.3:50051", "switchyard.internal:50051"]
)
def test_without_authentication_the_server_stays_on_loopback(listen: str) -> None:
    with pytest.raises(ValueError, match="refusing to listen") as refused:
        Settings(listen=listen).check_exposure()
    assert "--insecure" in str(refused.value) and "--auth" in str(refused.value)
    Settings(listen=listen, auth=True).check_exposure()
    Settings(listen=listen, insecure=True).check_exposure()
    Settings(listen=listen, tls_cert="c", tls_key="k", tls_client_ca="ca").check_exposure()


@pytest.mark.parametrize("listen", ["127.0.0.1:50051", "localhost:0", "[::1]:50051"])
def test_loopback_needs_no_authentication(listen: str) -> None:
    Settings(listen=listen).check_exposure()


def test_security_settings_are_read_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "SWITCHYARD_AUTH": "1",
            "SWITCHYARD_INSECURE": "true",
            "SWITCHYARD_MANAGEMENT_RATE_LIMIT": "10/60",
            "SWITCHYARD_MAX_STREAMS_PER_IDENTITY": "5",
            "SWITCHYARD_MAX_MESSAGE_BYTES": "65536",
        }
    )
    assert settings.auth and settings.insecure and settings.authenticates
    assert settings.management_rate_limit == "10/60"
    assert settings.max_streams_per_identity == 5
    assert settings.max_message_bytes == 65536
    assert not Settings.from_env({}).authenticates


@pytest.mark.parametrize(
    "listen", ["0.0.0.0:8080", "[::]:8080", "10.1.2.3:8080", "console.internal:8080"]
)
def test_without_authentication_the_console_stays_on_loopback(listen: str) -> None:
    with pytest.raises(ValueError, match="--console-listen") as refused:
        Settings(console_listen=listen).check_exposure()
    assert f"refusing to listen on {listen}" in str(refused.value)
    Settings(console_listen=listen, auth=True, tls_cert="c.pem", tls_key="k.pem").check_exposure()
    Settings(console_listen=listen, insecure=True).check_exposure()


@pytest.mark.parametrize(
    "listen", ["0.0.0.0:8080", "[::]:8080", "10.1.2.3:8080", "console.internal:8080"]
)
def test_with_authentication_the_console_takes_tokens_beyond_loopback_only_over_tls(
    listen: str,
) -> None:
    for signing_in in (
        Settings(console_listen=listen, auth=True),
        # --insecure accepts listening without authentication, not tokens in clear.
        Settings(console_listen=listen, auth=True, insecure=True),
    ):
        with pytest.raises(ValueError, match="over plain HTTP") as refused:
            signing_in.check_exposure()
        assert "--console-insecure-http" in str(refused.value)
    Settings(console_listen=listen, auth=True, console_insecure_http=True).check_exposure()
    Settings(console_listen=listen, auth=True, tls_cert="c.pem", tls_key="k.pem").check_exposure()
    Settings(console_listen="127.0.0.1:8080", auth=True).check_exposure()
    Settings(console_listen=None, auth=True, listen=listen).check_exposure()
    env = {"SWITCHYARD_CONSOLE_INSECURE_HTTP": "1", "SWITCHYARD_CONSOLE_LISTEN": listen}
    assert Settings.from_env(env).console_insecure_http


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (None, "127.0.0.1:8080"),
        ("127.0.0.1:0", "127.0.0.1:0"),
        ("0.0.0.0:9000", "0.0.0.0:9000"),
        ("off", None),
        ("OFF", None),
        ("", None),
    ],
)
def test_the_console_listens_on_loopback_unless_told_otherwise(
    given: str | None, expected: str | None
) -> None:
    env = {} if given is None else {"SWITCHYARD_CONSOLE_LISTEN": given}
    settings = Settings.from_env(env)
    assert settings.console_listen == expected
    Settings(console_listen=None).check_exposure()  # no console, nothing exposed


def test_the_console_session_key_is_read_but_never_shown() -> None:
    settings = Settings.from_env({"SWITCHYARD_CONSOLE_SESSION_KEY": "c2VjcmV0"})
    assert settings.console_session_key == "c2VjcmV0"
    assert "c2VjcmV0" not in repr(settings)
