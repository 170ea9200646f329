"""The Lambda's settings: which of the ini's keys go into PYPICLOUD_SETTINGS, checked before deploying."""

from __future__ import annotations

import re
from collections.abc import Mapping

from pypicloud_lite.config import Settings, load_settings
from pypicloud_lite.deploy import DeployError
from pypicloud_lite.log_format import REDACTED
from pypicloud_lite.secrets import PREFIXES

# Settings the Lambda passes on to the handler; everything else in the ini is the web server's.
# With cdn.* the handler records its changes in the CDN outbox; it flushes only with --cdn (its queue).
LAMBDA_SETTING_PREFIXES = ("storage.", "cache.", "sync.", "cdn.")
# Schema management belongs to ppc-migrate / ppc-create-tables, never to a Lambda (its role
# has no rights for it, and hundreds of concurrent cold starts must not race on DDL).
LAMBDA_EXCLUDED_SETTINGS = frozenset({"cache.migrate_on_start", "cache.create_tables"})
# What the handler resolves when it starts (pypicloud_lite.secrets): "ssm:", "secretsmanager:".
SECRET_PREFIXES = tuple(PREFIXES)
# Names the deployment itself needs (bucket, tables, regions): they cannot wait for the Lambda to resolve them.
LITERAL_SETTINGS = ("storage.bucket", "storage.prefix", "storage.region", "cache.table_prefix", "cache.region")


def lambda_settings(raw: Mapping[str, str], overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """The ini's storage/cache/sync/cdn settings (plus --set overrides) that go into PYPICLOUD_SETTINGS."""
    chosen = {
        key: value
        for key, value in raw.items()
        if key.startswith(LAMBDA_SETTING_PREFIXES) and key not in LAMBDA_EXCLUDED_SETTINGS
    }
    for key, value in (overrides or {}).items():
        if value == "":
            chosen.pop(key, None)
        else:
            chosen[key] = value
    return dict(sorted(chosen.items()))


def validated_settings(chosen: Mapping[str, str]) -> Settings:
    """The chosen settings loaded as the Lambda will load them (secret references left unresolved)."""
    for key in LITERAL_SETTINGS:
        if chosen.get(key, "").startswith(SECRET_PREFIXES):
            raise DeployError(f"setting {key!r} must be a literal value, not a secret reference")
    settings = load_settings(chosen, environ={})
    if settings.storage.backend != "s3" or settings.storage.s3 is None:
        raise DeployError("the S3 sync Lambda needs storage.backend = s3")
    return settings


def secret_references(chosen: Mapping[str, str]) -> dict[str, list[str]]:
    """{"ssm": [parameter names], "secretsmanager": [secret ids]} named by the settings."""
    found: dict[str, list[str]] = {"ssm": [], "secretsmanager": []}
    for value in chosen.values():
        for prefix in SECRET_PREFIXES:
            if value.startswith(prefix):
                found[prefix[:-1]].append(value[len(prefix) :])
    return {service: sorted(set(names)) for service, names in found.items()}


# The last part of a key whose value is itself a secret; a URL's password is one too.
SECRET_KEY_PARTS = frozenset({"password", "token", "secret", "session_secret"})
_URL_PASSWORD = re.compile(r"^(?P<head>[^:/]+://[^/@:]*:)[^/@]+@")


def redacted_settings(chosen: Mapping[str, str]) -> dict[str, str]:
    """The settings as --dry-run prints them: passwords (in URLs too) and tokens replaced by REDACTED; a secret
    reference (ssm:, secretsmanager:) is a name, not the secret, and is shown."""
    shown = {}
    for key, value in chosen.items():
        if value.startswith(SECRET_PREFIXES):
            shown[key] = value
        elif key.rsplit(".", 1)[-1] in SECRET_KEY_PARTS:
            shown[key] = REDACTED
        else:
            shown[key] = _URL_PASSWORD.sub(lambda m: m.group("head") + REDACTED + "@", value)
    return shown
