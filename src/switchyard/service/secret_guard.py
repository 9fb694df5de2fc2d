"""Values that need care: the secret guard, and what marking a key is_encrypted changes.

The specification forbids storing secrets (passwords, keys, tokens). A value that looks
like a credential is refused with INVALID_ARGUMENT saying what it looks like, unless its
key is marked is_encrypted: such a key's values are encrypted at rest (`store.sealing`)
and may hold what needs that care.

The detectors are detect-secrets' (Yelp's maintained patterns for private keys, cloud and
SaaS tokens, JWTs, URLs with a password), called directly, never through its global
settings: nothing here ever tries to verify a credential over the network. Its
high-entropy checks flag too many ordinary strings as they stand, so they are tuned:

- base64/base64url runs count from 24 characters, and only when they mix upper case,
  lower case and digits, as random tokens do and words, paths and identifiers rarely
  do; above detect-secrets' own limit of 4.5 bits of entropy per character;
- hex runs count from 32 digits, mixing letters and digits, above its limit of 3.0;
- UUIDs and sequences pass (detect-secrets' heuristics), as do public material
  (certificates, public keys, SSH public keys) and digests labelled as such
  (`sha256:...`, `.../commit/...`), or held by a key whose name says so (`*sha*`,
  `*commit*`, `*digest*`, `*checksum*`, `*hash*`, `*revision*`). A bare 40-digit git
  SHA under any other name is refused: it cannot be told from a hex API token.

The guard keeps accidents out; it is no barrier against someone set on storing a secret
(a password of ordinary words passes). A refusal never repeats the value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence

from detect_secrets.filters.heuristic import is_potential_uuid, is_sequential_string
from detect_secrets.plugins.artifactory import ArtifactoryDetector
from detect_secrets.plugins.aws import AWSKeyDetector
from detect_secrets.plugins.azure_storage_key import AzureStorageKeyDetector
from detect_secrets.plugins.base import RegexBasedDetector
from detect_secrets.plugins.basic_auth import BasicAuthDetector
from detect_secrets.plugins.cloudant import CloudantDetector
from detect_secrets.plugins.discord import DiscordBotTokenDetector
from detect_secrets.plugins.github_token import GitHubTokenDetector
from detect_secrets.plugins.gitlab_token import GitLabTokenDetector
from detect_secrets.plugins.high_entropy_strings import (
    Base64HighEntropyString,
    HexHighEntropyString,
)
from detect_secrets.plugins.ibm_cloud_iam import IbmCloudIamDetector
from detect_secrets.plugins.ibm_cos_hmac import IbmCosHmacDetector
from detect_secrets.plugins.jwt import JwtTokenDetector
from detect_secrets.plugins.mailchimp import MailchimpDetector
from detect_secrets.plugins.npm import NpmDetector
from detect_secrets.plugins.openai import OpenAIDetector
from detect_secrets.plugins.private_key import PrivateKeyDetector
from detect_secrets.plugins.pypi_token import PypiTokenDetector
from detect_secrets.plugins.sendgrid import SendGridDetector
from detect_secrets.plugins.slack import SlackDetector
from detect_secrets.plugins.softlayer import SoftlayerDetector
from detect_secrets.plugins.square_oauth import SquareOAuthDetector
from detect_secrets.plugins.stripe import StripeDetector
from detect_secrets.plugins.telegram_token import TelegramBotTokenDetector
from detect_secrets.plugins.twilio import TwilioKeyDetector

from switchyard.domain.errors import FieldViolation, InvalidArgument
from switchyard.domain.models import ConfigDefinition, JSONValue
from switchyard.service.ports import Reader, Transaction

ADVICE = (
    "Switchyard does not store secrets: keep it in a secret manager, or mark the key is_encrypted"
)

# Each detector with what a person is told the value looks like. IPPublicDetector is
# left out: an address is configuration, not a secret.
_DETECTORS: tuple[tuple[RegexBasedDetector, str], ...] = (
    (PrivateKeyDetector(), "a private key"),
    (AWSKeyDetector(), "an AWS access key"),
    (JwtTokenDetector(), "a JSON Web Token"),
    (GitHubTokenDetector(), "a GitHub token"),
    (GitLabTokenDetector(), "a GitLab token"),
    (SlackDetector(), "a Slack token or webhook URL"),
    (BasicAuthDetector(), "a URL with a password in it"),
    (StripeDetector(), "a Stripe key"),
    (TwilioKeyDetector(), "a Twilio key"),
    (SendGridDetector(), "a SendGrid key"),
    (MailchimpDetector(), "a Mailchimp key"),
    (NpmDetector(), "an npm token"),
    (PypiTokenDetector(), "a PyPI token"),
    (OpenAIDetector(), "an OpenAI key"),
    (DiscordBotTokenDetector(), "a Discord bot token"),
    (TelegramBotTokenDetector(), "a Telegram bot token"),
    (AzureStorageKeyDetector(), "an Azure storage key"),
    (ArtifactoryDetector(), "an Artifactory credential"),
    (SquareOAuthDetector(), "a Square OAuth secret"),
    (IbmCloudIamDetector(), "an IBM Cloud IAM key"),
    (IbmCosHmacDetector(), "an IBM COS HMAC credential"),
    (SoftlayerDetector(), "a SoftLayer credential"),
    (CloudantDetector(), "a Cloudant credential"),
)

_BASE64 = Base64HighEntropyString()
_HEX = HexHighEntropyString()
BASE64_MIN_LENGTH = 24
HEX_MIN_LENGTH = 32
_BASE64_RUN = re.compile(rf"[A-Za-z0-9+/_=-]{{{BASE64_MIN_LENGTH},}}")
_HEX_RUN = re.compile(rf"(?<![0-9A-Za-z])[0-9A-Fa-f]{{{HEX_MIN_LENGTH},}}(?![0-9A-Za-z])")

# Public material, left out before the entropy checks: its base64 is random-looking. Its
# END is looked for with str.find, not in the expression: `BEGIN ....*?END \1` scans to
# the end of the text from every BEGIN, quadratic in a value of many BEGINs (a 64 KiB one
# held the event loop for 10 s).
_PUBLIC_PEM_BEGIN = re.compile(
    r"-----BEGIN ((?:X509 |TRUSTED |NEW )?CERTIFICATE(?: REQUEST)?|(?:RSA |EC )?PUBLIC KEY"
    r"|X509 CRL|PGP PUBLIC KEY BLOCK)-----"
)
_DIGEST_LABEL_WINDOW = 64
"""Characters before a hex run in which its digest label is looked for (the longest label
is a few characters): searching the whole text before each run was quadratic."""
_SSH_PUBLIC_KEY = re.compile(
    r"(?:ssh-(?:rsa|dss|ed25519)|ecdsa-sha2-nistp\d+|sk-[\w-]+@openssh\.com)\s+AAAA[0-9A-Za-z+/]+=*"
)
# A hex run right after one of these is a digest or a commit, not a token.
_DIGEST_LABEL = re.compile(
    r"(?:sha\d*|md5|blake2\w*|commits?|rev|revision|digest|checksum|hash)[:/=@_-]?$",
    re.IGNORECASE,
)
_DIGEST_KEY = re.compile(r"sha|commit|digest|checksum|hash|revision", re.IGNORECASE)


def find_secret(value: JSONValue, *, key: str = "") -> tuple[str, str] | None:
    """What `value` looks like, if it looks like a credential: (where, what), `where`
    being "" for the value itself or a path such as ".auth.token" inside a JSON value,
    and `what` a phrase such as "an AWS access key". None for an ordinary value."""
    for where, text in _strings(value, ""):
        what = _detected(text) or _random_looking(text, key)
        if what is not None:
            return where, what
    if isinstance(value, dict | list):
        # Some detectors read a name with its value: {"aws_secret_access_key": "..."}.
        what = _detected(json.dumps(value, ensure_ascii=False))
        if what is not None:
            return "", what
    return None


def check_not_secret(key: str, value: JSONValue, *, encrypted: bool, field: str) -> None:
    """Raises InvalidArgument (on `field`) when `value` looks like a credential and the
    key is not is_encrypted."""
    if encrypted:
        return
    found = find_secret(value, key=key)
    if found is not None:
        where, what = found
        inside = f" (at {where})" if where else ""
        raise InvalidArgument.field(field, f"looks like {what}{inside}; {ADVICE}")


def check_definition(definition: ConfigDefinition, before: ConfigDefinition | None) -> None:
    """The secret guard for a definition being created (`before` None) or updated: its
    base value, default and allowed values, those that are new or would now be stored in
    plain text. An is_encrypted key may not list allowed values: they are stored in plain
    text, and would tell its value. Raises InvalidArgument listing every violation."""
    violations: list[FieldViolation] = []
    allowed = list(definition.validation.allowed_values)
    now_plain = before is not None and before.is_encrypted and not definition.is_encrypted
    if definition.is_encrypted:
        if allowed and (
            before is None
            or not before.is_encrypted
            or tuple(allowed) != before.validation.allowed_values
        ):
            violations.append(
                FieldViolation(
                    "config.validation.allowed_values",
                    "an is_encrypted key cannot list allowed values: they are stored in "
                    "plain text, and would tell its value",
                )
            )
    else:
        fields: Sequence[tuple[str, JSONValue, JSONValue]] = (
            ("config.value", definition.value, before.value if before else None),
            (
                "config.default_value",
                definition.default_value,
                before.default_value if before else None,
            ),
            (
                "config.validation.allowed_values",
                allowed or None,
                list(before.validation.allowed_values) or None if before else None,
            ),
        )
        for field, value, old in fields:
            if value is None or (before is not None and not now_plain and value == old):
                continue  # unchanged values were let in before
            try:
                check_not_secret(definition.key, value, encrypted=False, field=field)
            except InvalidArgument as error:
                violations.extend(error.violations)
    if violations:
        raise InvalidArgument("; ".join(v.description for v in violations), violations)


async def check_stored_values(reader: Reader, values: Mapping[str, JSONValue], field: str) -> None:
    """For the documents that hold values of several keys in plain text (templates,
    maintenance windows): a value for an is_encrypted key is refused, since it would be
    stored in clear beside the sealed rows, and so is a value that looks like a
    credential. Violations are on `<field>.<key>`. Raises InvalidArgument."""
    definitions = await reader.configs.get_configs(list(values))
    violations: list[FieldViolation] = []
    for key, value in sorted(values.items()):
        definition = definitions.get(key)
        if definition is not None and definition.is_encrypted:
            violations.append(
                FieldViolation(
                    f"{field}.{key}",
                    f"config key {key!r} is_encrypted: its values are set one at a time "
                    "(SetValue), never kept in a document stored in plain text",
                )
            )
            continue
        try:
            check_not_secret(key, value, encrypted=False, field=f"{field}.{key}")
        except InvalidArgument as error:
            violations.extend(error.violations)
    if violations:
        raise InvalidArgument(
            "; ".join(f"{v.field}: {v.description}" for v in violations), violations
        )


async def encryption_changed(
    tx: Transaction, before: ConfigDefinition, after: ConfigDefinition
) -> None:
    """After a definition update that marks a key is_encrypted or unmarks it: writes its
    overrides again, so the store seals them (or stores them plain). Unmarking is refused
    (InvalidArgument) when one of them looks like a credential. Values the history
    recorded before the key was marked stay as they were recorded: it is append-only."""
    if before.is_encrypted == after.is_encrypted:
        return
    overrides = await tx.overrides.list_overrides(after.key)
    if not after.is_encrypted:
        violations = []
        for override in overrides:
            for value in (override.value, override.revert_to_value):
                found = find_secret(value, key=after.key)
                if found is not None:
                    violations.append(
                        FieldViolation(
                            "config.is_encrypted",
                            f"the override in {override.environment} (priority "
                            f"{override.priority}) looks like {found[1]}: it cannot be "
                            "stored in plain text; remove it first",
                        )
                    )
        if violations:
            raise InvalidArgument("; ".join(v.description for v in violations), violations)
    for override in overrides:
        await tx.overrides.upsert_override(override)


def _strings(value: JSONValue, where: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, dict):
        for name, item in value.items():
            yield from _strings(item, f"{where}.{name}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, f"{where}[{index}]")


def _detected(text: str) -> str | None:
    for detector, what in _DETECTORS:
        if any(True for _ in detector.analyze_string(text)):
            return what
    return None


def _without_public_pem(text: str) -> str:
    """`text` with each public PEM block (BEGIN to the first END of the same label)
    replaced by a space. Linear: once a label has no END after some BEGIN, no later
    BEGIN of it has one either, so it is not looked for again."""
    kept: list[str] = []
    position = 0
    ended: set[str] = set()
    search_from = 0
    while (begin := _PUBLIC_PEM_BEGIN.search(text, search_from)) is not None:
        label = begin.group(1)
        search_from = begin.end()
        if label in ended:
            continue
        marker = f"-----END {label}-----"
        end = text.find(marker, begin.end())
        if end < 0:
            ended.add(label)
            continue
        kept += [text[position : begin.start()], " "]
        position = search_from = end + len(marker)
    kept.append(text[position:])
    return "".join(kept)


def _random_looking(text: str, key: str) -> str | None:
    text = _SSH_PUBLIC_KEY.sub(" ", _without_public_pem(text))
    for match in _HEX_RUN.finditer(text):
        run = match.group()
        if (
            run.isdigit()
            or run.isalpha()
            or is_sequential_string(run)
            or _DIGEST_LABEL.search(
                text[max(0, match.start() - _DIGEST_LABEL_WINDOW) : match.start()]
            )
            or (len(run) in (40, 64) and _DIGEST_KEY.search(key))
        ):
            continue
        if _HEX.calculate_shannon_entropy(run) > _HEX.entropy_limit:
            return f"a random token ({len(run)} hex digits)"
    for match in _BASE64_RUN.finditer(text):
        run = match.group()
        if not (
            any(c.islower() for c in run)
            and any(c.isupper() for c in run)
            and any(c.isdigit() for c in run)
        ):
            continue
        if is_potential_uuid(run) or is_sequential_string(run):
            continue
        if _BASE64.calculate_shannon_entropy(run) > _BASE64.entropy_limit:
            return f"a random token ({len(run)} characters of base64)"
    return None


__all__ = [
    "ADVICE",
    "check_definition",
    "check_not_secret",
    "check_stored_values",
    "encryption_changed",
    "find_secret",
]
