"""Break-glass exceptions to the upstream cooldown: an admin lets one project's young upstream files through.

Each is a small JSON object in storage (`_ppc/cooldown-exceptions/<name>.json`: reason, who, when, optional
expiry), so every process and a rebuilt cache see it; a process remembers what it read for at most
`MAX_AGE` seconds. The views that grant and revoke record it in the audit trail.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pypicloud_lite.errors import InvalidInput
from pypicloud_lite.naming import INTERNAL_PREFIX, normalize
from pypicloud_lite.storage.base import Storage

logger = logging.getLogger(__name__)

# An exception is a few lines of JSON; more is not one of ours.
MAX_BYTES = 64 * 1024

PREFIX = f"{INTERNAL_PREFIX}cooldown-exceptions/"
MAX_AGE = 30.0
MAX_REMEMBERED = 5000


@dataclass(frozen=True)
class Exemption:
    name: str
    reason: str
    by: str
    at: datetime
    until: datetime | None = None

    def covers(self, now: float) -> bool:
        return self.until is None or datetime.fromtimestamp(now, UTC) < self.until

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "reason": self.reason,
            "by": self.by,
            "at": self.at.isoformat(),
            "until": self.until.isoformat() if self.until else None,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Exemption:
        until = doc.get("until")
        return cls(
            doc["name"],
            doc["reason"],
            doc["by"],
            datetime.fromisoformat(doc["at"]),
            datetime.fromisoformat(until) if until else None,
        )


class Exemptions:
    def __init__(
        self, storage: Storage, clock: Callable[[], float] = time.time, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.storage = storage
        # Wall time, as the cooldown's clock: an exemption's expiry is judged by it.
        self.clock = clock
        self._monotonic = monotonic
        self._known: dict[str, tuple[Exemption | None, float]] = {}

    def _read(self, name: str) -> Exemption | None:
        known = self._known.get(name)
        now = self._monotonic()
        if known is not None and now - known[1] < MAX_AGE:
            return known[0]
        exemption = self._load(PREFIX + name + ".json")
        if len(self._known) > MAX_REMEMBERED:
            self._known.clear()
        self._known[name] = (exemption, now)
        return exemption

    def _load(self, key: str) -> Exemption | None:
        """The exception stored under `key`; a malformed one is no exception (the cooldown holds: fail closed)."""
        try:
            found = self.storage.read_versioned(key, MAX_BYTES)
            if found is None:
                return None
            exemption = Exemption.from_json(json.loads(found.data))
            if exemption.at.tzinfo is None or (exemption.until is not None and exemption.until.tzinfo is None):
                raise ValueError("a time without a time zone")
            return exemption
        except InvalidInput as exc:
            logger.warning("ignoring the cooldown exception %s: %s", key, exc.message)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            logger.warning("ignoring the malformed cooldown exception %s: %s", key, exc)
        return None

    def active(self, name: str) -> Exemption | None:
        """The project's exception when there is one and it has not expired."""
        exemption = self._read(normalize(name))
        return exemption if exemption is not None and exemption.covers(self.clock()) else None

    def show(self, name: str) -> Exemption | None:
        return self._read(normalize(name))

    def grant(self, name: str, reason: str, by: str, until: datetime | None) -> Exemption:
        name = normalize(name)
        if not reason.strip():
            raise InvalidInput("Give the reason for the cooldown exception.")
        exemption = Exemption(name, reason.strip(), by, datetime.fromtimestamp(self.clock(), UTC), until)
        self.storage.put_bytes(PREFIX + name + ".json", json.dumps(exemption.to_json()).encode())
        self._known[name] = (exemption, self._monotonic())
        return exemption

    def revoke(self, name: str, by: str) -> None:
        name = normalize(name)
        self.storage.delete(PREFIX + name + ".json")
        self._known[name] = (None, self._monotonic())
