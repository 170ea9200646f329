"""The `storage.presign_*` settings: how long a presigned S3 download URL is handed out, and valid for."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from pypicloud_lite.config_values import parse_duration
from pypicloud_lite.errors import ConfigError

T = TypeVar("T")
# SigV4 refuses a presigned URL valid for longer than 7 days.
MAX_VALIDITY = 7 * 86400


class _Reader(Protocol):
    def typed(self, key: str, parse: Callable[[str], T], default: str) -> T: ...


@dataclass(frozen=True)
class PresignSettings:
    # Every URL is signed at the start of its window, so all requests of one window get the same URL
    # (clients and CDNs can cache it); 0: a URL signed per request, answered with no-store.
    window: int = 3600
    # Seconds a URL stays valid after its window ends (what a client handed it last needs to use it).
    expiry: int = 300

    @property
    def validity(self) -> int:
        """X-Amz-Expires: the whole window plus the expiry (at most what a leaked URL is good for)."""
        return self.window + self.expiry


def presign_settings(r: _Reader) -> PresignSettings:
    settings = PresignSettings(
        window=r.typed("storage.presign_window", parse_duration, "1h"),
        expiry=r.typed("storage.presign_expiry", parse_duration, "300"),
    )
    if settings.expiry < 1:
        raise ConfigError("setting 'storage.presign_expiry' must be at least 1 second")
    if settings.validity > MAX_VALIDITY:
        raise ConfigError(
            "settings 'storage.presign_window' + 'storage.presign_expiry' exceed 7 days, "
            "the longest a presigned S3 URL can be valid"
        )
    return settings
