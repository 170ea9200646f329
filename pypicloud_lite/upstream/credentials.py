"""Upstream credentials: literal settings, or `ssm:` / `secretsmanager:` references read with a max age."""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Callable

from pypicloud_lite.secrets import PREFIXES, SecretResolver, bounded_client
from pypicloud_lite.upstream_settings import UpstreamIndex, UpstreamSettings

logger = logging.getLogger(__name__)

# After an upstream refused its credentials, its secrets are read again at most this often per upstream:
# an upstream that refuses every request must not turn each page request into an SSM or Secrets Manager call.
REFETCH_INTERVAL = 10.0


def is_reference(value: str | None) -> bool:
    return value is not None and value.startswith(tuple(PREFIXES))


class UpstreamCredentials:
    """The `Authorization` header each upstream gets; secret references resolved, kept at most `max_age` seconds.

    A value read from a secret is held in the resolver only: never logged, never in a repr or an error.
    """

    def __init__(
        self,
        max_age: float = UpstreamSettings.secret_max_age,
        resolver: SecretResolver | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.resolver = resolver or SecretResolver(max_age, client_factory=bounded_client, clock=clock)
        self._clock = clock
        self._lock = threading.Lock()
        self._refetched: dict[str, float] = {}

    def authorization(self, index: UpstreamIndex) -> str | None:
        """`Bearer <token>` or `Basic <user:password>`, or None; ConfigError (naming the setting) when a secret
        cannot be read."""
        if index.token:
            return f"Bearer {self._value(index, 'token', index.token)}"
        if index.username is not None and index.password is not None:
            password = self._value(index, "password", index.password)
            pair = base64.b64encode(f"{index.username}:{password}".encode()).decode()
            return f"Basic {pair}"
        return None

    def _value(self, index: UpstreamIndex, field: str, value: str) -> str:
        if not is_reference(value):
            return value
        key = f"upstream.{index.name}.{field}"
        return str(self.resolver.resolve({key: value})[key])

    def refetch(self, index: UpstreamIndex, status: int) -> bool:
        """After the upstream answered 401 or 403: forget its secrets so the next request reads them anew.

        True when the request is worth making again (the upstream's credentials come from secrets that were
        not already read again within REFETCH_INTERVAL); False for literal credentials, which cannot change.
        """
        references = [value for value in (index.token, index.password) if is_reference(value)]
        if not references:
            return False
        now = self._clock()
        with self._lock:
            last = self._refetched.get(index.name)
            if last is not None and now - last < REFETCH_INTERVAL:
                return False
            self._refetched[index.name] = now
        for reference in references:
            assert reference is not None
            self.resolver.forget(reference)
        logger.warning("upstream %s refused its credentials (%d): reading its secrets again", index.name, status)
        return True
