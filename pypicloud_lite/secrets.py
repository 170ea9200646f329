"""Settings values that name a secret (`ssm:<parameter>` or `secretsmanager:<secret id>`), fetched with a max age."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from pypicloud_lite.errors import ConfigError

logger = logging.getLogger(__name__)

PREFIXES = {"ssm:": "ssm", "secretsmanager:": "secretsmanager"}


class SecretResolver:
    """Resolves secret references in raw settings; each secret is fetched once per max age.

    Cache keys are the full parameter names or secret ids. `invalidate()` forgets them
    all, for when a database has just rejected the credentials they gave.
    """

    def __init__(
        self,
        max_age: float,  # sync.secret_max_age (config.SyncSettings holds its default)
        client_factory: Callable[[str], Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_age = max_age
        self._client_factory = client_factory or _boto3_client
        self._clock = clock
        self._values: dict[tuple[str, str], tuple[str, float]] = {}
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    def resolve(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        return {key: self._resolve_value(key, value) for key, value in raw.items()}

    def invalidate(self) -> None:
        with self._lock:
            self._values.clear()

    def forget(self, reference: str) -> None:
        """Forget the value of one reference (`ssm:<name>`, `secretsmanager:<id>`): the next resolve reads it again."""
        for prefix, service in PREFIXES.items():
            if reference.startswith(prefix):
                with self._lock:
                    self._values.pop((service, reference[len(prefix) :]), None)

    def _resolve_value(self, key: str, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        for prefix, service in PREFIXES.items():
            if value.startswith(prefix):
                return self._get(key, service, value[len(prefix) :])
        return value

    def _get(self, key: str, service: str, name: str) -> str:
        now = self._clock()
        with self._lock:
            cached = self._values.get((service, name))
            if cached is not None and now - cached[1] < self.max_age:
                return cached[0]
        value = self._fetch(key, service, name)
        with self._lock:
            self._values[(service, name)] = (value, now)
        return value

    def _fetch(self, key: str, service: str, name: str) -> str:
        client = self._clients.get(service)
        if client is None:
            client = self._clients[service] = self._client_factory(service)
        try:
            if service == "ssm":
                return str(client.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"])
            return str(client.get_secret_value(SecretId=name)["SecretString"])
        except Exception as exc:
            raise ConfigError(f"setting {key!r}: cannot read {service} {name!r} ({exc.__class__.__name__})") from exc


# For a server reading a secret while a request waits: the SDK's defaults (60 s reads, retries) are not.
BOUNDED_CLIENT = {"connect_timeout": 5, "read_timeout": 10, "retries": {"max_attempts": 2, "mode": "standard"}}


def bounded_client(service: str) -> Any:
    """An SSM or Secrets Manager client with bounded timeouts and retries."""
    return _boto3_client(service, bounded=True)


def _boto3_client(service: str, bounded: bool = False) -> Any:
    import boto3

    if not bounded:
        return boto3.client(service)
    from botocore.config import Config

    return boto3.client(service, config=Config(**BOUNDED_CLIENT))
