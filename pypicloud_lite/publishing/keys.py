"""The signing keys of OIDC issuers: discovery document, then JWKS, fetched over HTTP and cached per issuer.

A key set is kept for `max_age` seconds. A token naming a key id the cached set lacks makes the set be
fetched again at once (the issuer rotated its keys), but at most once per `refetch_interval` seconds per
issuer, so tokens with made-up key ids cannot make this server hammer the issuer.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.error import URLError

from joserfc.errors import JoseError
from joserfc.jwk import KeySet

logger = logging.getLogger(__name__)

MAX_DOCUMENT = 1024 * 1024
TIMEOUT = 10.0


class IssuerUnavailable(Exception):
    """The issuer's discovery document or key set could not be fetched or read."""


def fetch_json(url: str) -> dict[str, Any]:
    """GET a JSON object (at most MAX_DOCUMENT bytes); IssuerUnavailable says why not."""
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310 - http(s) only
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310 - issuers are configured
            body = response.read(MAX_DOCUMENT + 1)
    except (URLError, OSError) as exc:
        raise IssuerUnavailable(f"cannot fetch {url}: {exc}") from exc
    if len(body) > MAX_DOCUMENT:
        raise IssuerUnavailable(f"{url} answered more than {MAX_DOCUMENT} bytes")
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise IssuerUnavailable(f"{url} did not answer JSON") from exc
    if not isinstance(document, dict):
        raise IssuerUnavailable(f"{url} did not answer a JSON object")
    return document


@dataclass
class _Cached:
    keys: KeySet
    fetched: float
    # When a token's unknown key id last made the set be fetched again.
    refetched: float | None = None


class IssuerKeys:
    """Per issuer: the key set its discovery document points at, cached and refreshed on rotation."""

    def __init__(
        self,
        fetch: Callable[[str], dict[str, Any]] = fetch_json,
        max_age: float = 3600.0,
        refetch_interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._max_age = max_age
        self._refetch_interval = refetch_interval
        self._clock = clock
        self._cache: dict[str, _Cached] = {}
        self._lock = threading.Lock()

    def key_set(self, issuer: str, kid: str | None) -> KeySet:
        """The issuer's keys, with `kid` among them if the issuer publishes it now."""
        now = self._clock()
        with self._lock:
            cached = self._cache.get(issuer)
        refetched = None
        if cached is not None and now - cached.fetched < self._max_age:
            if kid is None or _has_kid(cached.keys, kid):
                return cached.keys
            if cached.refetched is not None and now - cached.refetched < self._refetch_interval:
                return cached.keys
            logger.info("key %r is not in %s's cached key set: fetching it again", kid, issuer)
            refetched = now
        keys = self._load(issuer)
        with self._lock:
            self._cache[issuer] = _Cached(keys, now, refetched)
        return keys

    def _load(self, issuer: str) -> KeySet:
        discovery = self._fetch(f"{issuer}/.well-known/openid-configuration")
        if discovery.get("issuer") != issuer:
            raise IssuerUnavailable(f"{issuer}'s discovery document names issuer {discovery.get('issuer')!r}")
        jwks_uri = discovery.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not jwks_uri.startswith(("https://", "http://")):
            raise IssuerUnavailable(f"{issuer}'s discovery document has no jwks_uri")
        document = self._fetch(jwks_uri)
        try:
            # Only public keys: a private member, or a symmetric key, has no business in a JWKS.
            keys = [key for key in document.get("keys", []) if isinstance(key, dict) and key.get("kty") != "oct"]
            return KeySet.import_key_set({"keys": keys})
        except (JoseError, ValueError, TypeError) as exc:
            raise IssuerUnavailable(f"{jwks_uri} is not a readable JWKS: {exc}") from exc


def _has_kid(keys: KeySet, kid: str) -> bool:
    return any(key.kid == kid for key in keys.keys)
