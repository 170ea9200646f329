"""The `upstream.*` settings: upstream simple indexes in order, each with credentials, timeouts and a mode."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

from pypicloud_lite.config_values import parse_duration, parse_instant, parse_list, parse_non_negative, parse_size
from pypicloud_lite.errors import ConfigError

MODES = ("cache", "redirect", "off")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*\Z")
# The settings of the proxy as a whole, which no upstream may be named.
_KEYS = ("indexes", "page_ttl", "max_page_size", "min_age", "freeze_at", "wait", "lease_ttl", "secret_max_age")
T = TypeVar("T")


class _Reader(Protocol):
    def get(self, key: str, default: str | None = None) -> str | None: ...

    def typed(self, key: str, parse: Callable[[str], T], default: str) -> T: ...

    def choice(self, key: str, default: str, choices: tuple[str, ...]) -> str: ...


@dataclass(frozen=True)
class UpstreamIndex:
    """One upstream simple index; `url` is its simple root, ending in `/`."""

    name: str
    url: str
    mode: str = "cache"
    username: str | None = None
    password: str | None = None
    # A bearer token (sent as `Authorization: Bearer`), instead of a user and password. The password and
    # the token may name a secret (`ssm:<parameter>`, `secretsmanager:<secret id>`), read when sent.
    token: str | None = None
    connect_timeout: float = 5.0
    read_timeout: float = 20.0

    def __repr__(self) -> str:  # never show credentials in logs or tracebacks
        return f"UpstreamIndex(name={self.name!r}, url={self.url!r}, mode={self.mode!r})"


@dataclass(frozen=True)
class UpstreamSettings:
    indexes: tuple[UpstreamIndex, ...] = ()
    # How long a fetched upstream page is used before it is revalidated (ETag / If-None-Match).
    page_ttl: float = 300.0
    # An upstream page or metadata file larger than this is refused (a listing of 10,000 files is ~5 MB).
    max_page_size: int = 32 * 1024 * 1024
    # The cooldown (upstream/cooldown.py): upstream files younger than this many seconds, or uploaded after
    # freeze_at, are neither shown nor served. 0 and None: off.
    min_age: int = 0
    freeze_at: datetime | None = None
    # Several server processes fetch a page or file once (upstream/flight.py): the others wait this many
    # seconds at most for it, and a fetch's lease outlives a process that died holding it by this many.
    wait: float = 30.0
    lease_ttl: float = 30.0
    # How long a password or token read from SSM or Secrets Manager (`ssm:` / `secretsmanager:`) is used
    # before it is read again; a 401 or 403 from the upstream reads it again at once (upstream/credentials.py).
    secret_max_age: float = 300.0

    @property
    def enabled(self) -> bool:
        return any(index.mode != "off" for index in self.indexes)


def _url(value: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ValueError(f"expected an http(s) URL of a simple index, got {value!r}")
    if parts.username or parts.password:
        raise ValueError("put credentials in the username/password/token settings, not in the URL")
    return value.strip().rstrip("/") + "/"


def _index(r: _Reader, name: str) -> UpstreamIndex:
    prefix = f"upstream.{name}."
    url = r.typed(prefix + "url", _url, "")
    username = (r.get(prefix + "username") or "").strip() or None
    password = r.get(prefix + "password") or None
    token = r.get(prefix + "token") or None
    if token and (username or password):
        raise ConfigError(f"setting {prefix + 'token'!r}: give a token or a username and password, not both")
    if (username is None) != (password is None):
        raise ConfigError(f"setting {prefix + 'password'!r}: a username needs a password and a password a username")
    return UpstreamIndex(
        name=name,
        url=url,
        mode=r.choice(prefix + "mode", "cache", MODES),
        username=username,
        password=password,
        token=token,
        connect_timeout=r.typed(prefix + "connect_timeout", _positive, str(UpstreamIndex.connect_timeout)),
        read_timeout=r.typed(prefix + "read_timeout", _positive, str(UpstreamIndex.read_timeout)),
    )


def _positive(value: str) -> float:
    seconds = parse_non_negative(value)
    if seconds <= 0:
        raise ValueError(f"expected a positive number of seconds, got {value!r}")
    return seconds


def upstream_settings(r: Any) -> UpstreamSettings:
    """Parse `upstream.indexes` (names, in the order they are asked) and each `upstream.<name>.*`."""
    reader: _Reader = r
    names = reader.typed("upstream.indexes", parse_list, "")
    for name in names:
        if not _NAME.match(name) or name in _KEYS:
            raise ConfigError(f"setting 'upstream.indexes': {name!r} is not a valid upstream name (a-z, 0-9, _ and -)")
    if len(set(names)) != len(names):
        raise ConfigError("setting 'upstream.indexes': an upstream is named twice")
    return UpstreamSettings(
        indexes=tuple(_index(reader, name) for name in names),
        page_ttl=reader.typed("upstream.page_ttl", parse_non_negative, str(UpstreamSettings.page_ttl)),
        max_page_size=reader.typed("upstream.max_page_size", parse_size, str(UpstreamSettings.max_page_size)),
        min_age=reader.typed("upstream.min_age", parse_duration, "0"),
        freeze_at=reader.typed("upstream.freeze_at", parse_instant, ""),
        wait=reader.typed("upstream.wait", _positive, str(UpstreamSettings.wait)),
        lease_ttl=reader.typed("upstream.lease_ttl", _positive, str(UpstreamSettings.lease_ttl)),
        secret_max_age=reader.typed(
            "upstream.secret_max_age", parse_non_negative, str(UpstreamSettings.secret_max_age)
        ),
    )
