"""The secret guard: each class of credential is refused, saying what it looks like and
never repeating it; ordinary configuration passes. (The same refusals over gRPC, with
nothing changed, are in tests/e2e/test_encrypted_values.py.)

The credentials here are made up, and assembled from parts so that no scanner mistakes
this file for a leak."""

from __future__ import annotations

import pytest

from switchyard.domain.errors import InvalidArgument
from switchyard.domain.models import JSONValue
from switchyard.service.secret_guard import ADVICE, check_not_secret, find_secret

PEM = "-----BEGIN " + "RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7bq\n-----END RSA PRIVATE KEY-----"
OPENSSH = (
    "-----BEGIN " + "OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk\n-----END OPENSSH PRIVATE KEY-----"
)
AWS_KEY_ID = "AKIA" + "IOSFODNN7EXAMPLE"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
    ".eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
GITHUB = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
SLACK = "xoxb-" + "123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"
SLACK_WEBHOOK = "https://hooks.slack.com/services/" + "T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"
BASE64_TOKEN = "kR3vT9qLx2Wm8ZpY7sNc" + "4HbJf6GdUa1E"
HEX_TOKEN = "e3b0c44298fc1c149afbf4c8996fb924" + "27ae41e4649b934ca495991b7852b855"
GIT_SHA = "9fceb02d0ae598e95dc970b74767f193" + "72d61af8"
BASIC_AUTH_URL = "postgresql://admin:" + "s3cr3tP4ss@db.example.com:5432/orders"
STRIPE = "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc"

REFUSED: list[tuple[str, JSONValue, str]] = [
    ("pem private key", PEM, "a private key"),
    ("openssh private key", OPENSSH, "a private key"),
    ("aws access key id", AWS_KEY_ID, "an AWS access key"),
    ("jwt", JWT, "a JSON Web Token"),
    ("github token", GITHUB, "a GitHub token"),
    ("slack token", SLACK, "a Slack token"),
    ("slack webhook", SLACK_WEBHOOK, "a Slack token"),
    ("high-entropy base64", BASE64_TOKEN, "a random token (32 characters of base64)"),
    ("high-entropy hex", HEX_TOKEN, "a random token (64 hex digits)"),
    ("bare git sha", GIT_SHA, "a random token (40 hex digits)"),
    ("basic auth in a url", BASIC_AUTH_URL, "a URL with a password in it"),
    ("stripe key", STRIPE, "a Stripe key"),
    ("token inside json", {"auth": {"token": GITHUB}}, "a GitHub token (at .auth.token)"),
    ("token in a list", ["first", JWT], "a JSON Web Token (at [1])"),
    ("token among words", f"Authorization: Bearer {BASE64_TOKEN}", "a random token"),
]

ACCEPTED: list[JSONValue] = [
    "https://api.example.com/v1/projects/12345/locations/us-central1/jobs",
    "https://example.com/some/long/path/with-segments/and_more_segments/index.html",
    "postgresql://app@db.internal.example.com:5432/orders?sslmode=require",
    "3f9a2b7c-1d2e-4f5a-9b8c-7d6e5f4a3b2c",
    "db-primary-01.eu-west-1.rds.amazonaws.com",
    "ops-team+alerts@example-company.co.uk",
    "*/5 * * * *",
    "0 3 * * MON-FRI",
    "PT15M",
    "1h30m",
    {"retries": 3, "backoff": "exponential", "endpoints": ["https://a.example.com"]},
    "The quick brown fox jumps over the lazy dog while the configuration service keeps "
    "serving values to every replica without a single interruption or restart.",
    "ThisIsAVeryLongIdentifierNameForConfiguration",
    "arn:aws:iam::123456789012:role/service-role/MyLambdaExecutionRole2024",
    "registry.example.com/team/app@sha256:" + HEX_TOKEN,
    "https://github.com/org/repo/commit/" + GIT_SHA,
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0",
    "10.0.12.7",
    "8.8.8.8",
    "en-US,en;q=0.9,de-DE;q=0.8,de;q=0.7",
    "s3://my-bucket-prod-2024/path/to/objects/2024-01-01/",
    "-----BEGIN CERTIFICATE-----\n"
    "MIIDdzCCAl+gAwIBAgIEAgAAuTANBgkqhkiG9w0BAQUFADBaMQswCQYDVQQGEwJJ\n"
    "RTESMBAGA1UEChMJQmFsdGltb3JlMRMwEQYDVQQLEwpDeWJlclRydXN0MSIwIAYD\n"
    "-----END CERTIFICATE-----\n",
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl ops@host",
    "^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$",
    "12345678901234567890123456789012345",
    "2024-01-15T10:30:00Z",
    42,
    True,
    None,
]


@pytest.mark.parametrize(("name", "value", "what"), REFUSED, ids=[r[0] for r in REFUSED])
def test_each_class_of_credential_is_refused(name: str, value: JSONValue, what: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        check_not_secret("app.setting", value, encrypted=False, field="value")

    (violation,) = refused.value.violations
    assert violation.field == "value"
    assert violation.description.startswith(f"looks like {what}")
    assert violation.description.endswith(ADVICE)
    for text in _strings(value):
        assert text not in violation.description  # a refusal never repeats the secret


@pytest.mark.parametrize("value", ACCEPTED, ids=lambda v: repr(v)[:40])
def test_ordinary_values_pass(value: JSONValue) -> None:
    assert find_secret(value, key="app.setting") is None


@pytest.mark.parametrize("value", [r[1] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_an_encrypted_key_may_hold_a_credential(value: JSONValue) -> None:
    check_not_secret("app.setting", value, encrypted=True, field="value")


@pytest.mark.parametrize("key", ["deploy.commit", "image.sha256", "bundle.digest", "git.revision"])
def test_a_key_named_for_a_digest_may_hold_one(key: str) -> None:
    assert find_secret(GIT_SHA, key=key) is None
    assert find_secret(HEX_TOKEN, key=key) is None
    assert find_secret(BASE64_TOKEN, key=key) is not None  # a digest is hex, not this


def _strings(value: JSONValue) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []
