"""Settings from the environment: a `PPC_` variable overrides one key, and `PYPICLOUD_SETTINGS` holds a JSON
object of them all (the Lambda's only source of settings)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pypicloud_lite.errors import ConfigError

ENV_PREFIX = "PPC_"
# A JSON object of settings in one variable (the Lambda's only source of settings).
SETTINGS_VARIABLE = "PYPICLOUD_SETTINGS"


def env_name(key: str) -> str:
    """The environment variable that overrides a setting: PPC_ + key, upper-cased, dots to underscores."""
    return ENV_PREFIX + key.upper().replace(".", "_").replace("-", "_")


def _json_setting(value: Any) -> str:
    """JSON values as the ini would have written them: true/false, numbers, lists space-separated."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    if isinstance(value, dict):
        raise ConfigError(f"{SETTINGS_VARIABLE} values must be strings, numbers, booleans or lists")
    return str(value)


def environ_settings(environ: Mapping[str, str]) -> dict[str, str]:
    """The settings the JSON object in PYPICLOUD_SETTINGS holds, as the ini would write them ({} when unset)."""
    if SETTINGS_VARIABLE not in environ:
        return {}
    try:
        settings = json.loads(environ[SETTINGS_VARIABLE])
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{SETTINGS_VARIABLE} is not a JSON object: {exc}") from exc
    if not isinstance(settings, dict):
        raise ConfigError(f"{SETTINGS_VARIABLE} must be a JSON object of setting keys to values")
    return {str(k): _json_setting(v) for k, v in settings.items()}
