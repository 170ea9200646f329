"""The `trusted_publishing.*` settings: the OIDC exchange's audience, issuers, leeway and minted-token lifetime."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

from pypicloud_lite.config_values import parse_bool, parse_duration, parse_list
from pypicloud_lite.errors import ConfigError

T = TypeVar("T")
GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
GITLAB_ISSUER = "https://gitlab.com"
# A minted token must outlive one upload, and PEP 807 puts its ceiling at 6 hours.
MIN_TOKEN_LIFETIME = 60
MAX_TOKEN_LIFETIME = 6 * 3600


class _Reader(Protocol):
    def get(self, key: str, default: str | None = None) -> str | None: ...

    def typed(self, key: str, parse: Callable[[str], T], default: str) -> T: ...


@dataclass(frozen=True)
class PublishingSettings:
    enabled: bool = True
    # The `aud` an OIDC token must carry; None: the public URL's host (or the request's, without one).
    audience: str | None = None
    github_issuer: str = GITHUB_ISSUER
    gitlab_issuer: str = GITLAB_ISSUER
    # Further issuers that generic OIDC publishers may name (none by default: the server fetches their keys).
    issuers: tuple[str, ...] = ()
    token_lifetime: int = 900
    # Seconds of clock skew allowed on exp, nbf and iat.
    leeway: int = 30

    def known_issuers(self) -> tuple[str, ...]:
        return (self.github_issuer, self.gitlab_issuer, *self.issuers)


def parse_issuer(value: str) -> str:
    """An issuer URL as tokens spell it in `iss`: http(s)://host[:port][/path], without a trailing slash."""
    value = value.strip().rstrip("/")
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.netloc or parts.query or parts.fragment:
        raise ValueError(f"expected an issuer URL such as https://gitlab.example.com, got {value!r}")
    return value


def _lifetime(value: str) -> int:
    seconds = parse_duration(value)
    if not MIN_TOKEN_LIFETIME <= seconds <= MAX_TOKEN_LIFETIME:
        raise ValueError(f"expected between {MIN_TOKEN_LIFETIME} seconds and 6h, got {value!r}")
    return seconds


def _issuers(value: str) -> tuple[str, ...]:
    return tuple(parse_issuer(item) for item in parse_list(value))


def publishing_settings(r: Any) -> PublishingSettings:
    reader: _Reader = r
    defaults = PublishingSettings()
    audience = (reader.get("trusted_publishing.audience", "") or "").strip()
    settings = PublishingSettings(
        enabled=reader.typed("trusted_publishing.enabled", parse_bool, "true"),
        audience=audience or None,
        github_issuer=reader.typed("trusted_publishing.github_issuer", parse_issuer, defaults.github_issuer),
        gitlab_issuer=reader.typed("trusted_publishing.gitlab_issuer", parse_issuer, defaults.gitlab_issuer),
        issuers=reader.typed("trusted_publishing.issuers", _issuers, ""),
        token_lifetime=reader.typed("trusted_publishing.token_lifetime", _lifetime, str(defaults.token_lifetime)),
        leeway=reader.typed("trusted_publishing.leeway", parse_duration, str(defaults.leeway)),
    )
    if settings.github_issuer == settings.gitlab_issuer:
        raise ConfigError("settings 'trusted_publishing.github_issuer' and '.gitlab_issuer' name the same issuer")
    return settings
