"""The supply-chain cooldown: upstream files too young (`upstream.min_age`) or uploaded after `upstream.freeze_at`
are neither listed nor served, so a malicious release has time to be found and pulled before anyone here installs it.

Only an upstream's files are judged, by the upload time its page gives; a file whose page gives none is held
back while the cooldown is on (fail closed). This index's own uploads are never affected.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pypicloud_lite.upstream.parse import UpstreamFile

# Rendered proxied pages are kept per listing version and this many seconds of the clock: time only ever
# makes more files visible, so a kept page at most shows a file this much later than it could.
BUCKET_SECONDS = 60


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _duration(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


# Why a file is held back (Hold.kind).
NO_UPLOAD_TIME, FROZEN, YOUNG = "no-upload-time", "freeze", "young"


@dataclass(frozen=True)
class Hold:
    """Why the cooldown holds a file back: `kind` is one of the three above; `until` when a young one appears."""

    kind: str
    until: datetime | None = None


@dataclass(frozen=True)
class Cooldown:
    min_age: int = 0
    freeze_at: datetime | None = None
    # Wall-clock seconds since the epoch (tests pass their own).
    clock: Callable[[], float] = time.time

    @property
    def active(self) -> bool:
        return self.min_age > 0 or self.freeze_at is not None

    def bucket(self) -> str:
        """A part of a rendered page's cache key: changes as time makes held-back files visible."""
        return str(int(self.clock() // BUCKET_SECONDS)) if self.active else "-"

    def hold(self, upload_time: datetime | None) -> Hold | None:
        """Why a file uploaded upstream at `upload_time` is held back now, or None when it may be shown and served."""
        if not self.active:
            return None
        if upload_time is None:
            return Hold(NO_UPLOAD_TIME)
        if self.freeze_at is not None and upload_time > self.freeze_at:
            return Hold(FROZEN)
        available = upload_time + timedelta(seconds=self.min_age)
        if available > datetime.fromtimestamp(self.clock(), UTC):
            return Hold(YOUNG, available)
        return None

    def refusal(self, filename: str, upload_time: datetime | None) -> str | None:
        """The message refusing the file (its `hold`), or None when it may be shown and served."""
        held = self.hold(upload_time)
        if held is None:
            return None
        if upload_time is None:
            return (
                f"{filename!r} is held back by this index's upstream cooldown: the upstream gives no upload time, "
                "so its age cannot be checked."
            )
        if held.kind == FROZEN:
            assert self.freeze_at is not None
            return (
                f"{filename!r} is held back by this index's upstream freeze (upstream.freeze_at = "
                f"{_iso(self.freeze_at)}): it was uploaded upstream at {_iso(upload_time)}, after the freeze."
            )
        assert held.until is not None
        return (
            f"{filename!r} is held back by this index's upstream cooldown (upstream.min_age = "
            f"{_duration(self.min_age)}): it was uploaded upstream at {_iso(upload_time)} and is available "
            f"from {_iso(held.until)}."
        )

    @property
    def min_age_text(self) -> str:
        return _duration(self.min_age)

    def visible(self, files: list[UpstreamFile]) -> list[UpstreamFile]:
        if not self.active:
            return files
        return [file for file in files if self.refusal(file.filename, file.upload_time) is None]
