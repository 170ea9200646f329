"""The audit trail: who changed what, when and from where; stored in the access database, and always logged.

Every change (uploads, deletes, yanks, statuses, users, groups, grants, tokens, publishers, namespaces,
cooldown exceptions, reloads) and every login attempt is recorded once, by the code that made it, through
one `AuditRecorder`. Each record is also a WARNING line starting `audit:` on this module's logger, so an
index whose access backend stores nothing (static) still leaves a trail in its logs.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from pypicloud_lite.errors import Conflict, InvalidInput
from pypicloud_lite.models import utcnow

logger = logging.getLogger(__name__)

# What a record's action may be: the API's `action` filter takes one of these, or a prefix such as `user.`.
ACTIONS = (
    "file.upload",
    "file.delete",
    "version.delete",
    "version.yank",
    "version.unyank",
    "project.status",
    "project.origin",
    "cooldown.grant",
    "cooldown.revoke",
    "user.create",
    "user.update",
    "user.delete",
    "group.set",
    "group.delete",
    "grant.set",
    "grant.delete",
    "namespace.add",
    "namespace.delete",
    "token.create",
    "token.mint",
    "token.revoke",
    "publisher.add",
    "publisher.delete",
    "reload.start",
    "login.success",
    "login.failure",
)
MAX_PAGE = 1000
# Old records are pruned by the first record a process makes, then at most this often.
PRUNE_EVERY = 3600.0
# Columns' limits: longer values are cut, never refused (a record must not fail the change it records).
_LIMITS = {"actor": 100, "address": 64, "project": 255, "target": 255, "detail": 1000}


def _printable(value: str) -> str:
    """Printable only: a NUL upsets PostgreSQL, a newline would forge a log line (checked whole first: every upload
    records one, and a character at a time cost 30 us of it)."""
    return value if value.isprintable() else "".join(c if c.isprintable() else "?" for c in value)


@dataclass(frozen=True)
class AuditEvent:
    action: str
    actor: str | None  # None: anonymous (a failed login names the user it tried in `target`)
    address: str | None  # the client's address, as the trusted proxy set-up gives it
    project: str | None = None
    target: str | None = None  # what was changed besides the project: a filename, version, user, token id...
    detail: str | None = None
    at: datetime = field(default_factory=utcnow)
    id: int | None = None

    def clipped(self) -> AuditEvent:
        cut: dict[str, Any] = {
            name: _printable(value[:limit]) for name, limit in _LIMITS.items() if (value := getattr(self, name))
        }
        return replace(self, **cut)

    def line(self) -> str:
        parts = [f"audit: {self.actor or '(anonymous)'} {self.action}"]
        parts += [f"{name}={value}" for name, value in (("project", self.project), ("target", self.target)) if value]
        parts.append(f"from {self.address or '-'}")
        return " ".join(parts) + (f": {self.detail}" if self.detail else "")

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "at": self.at.astimezone(UTC).isoformat(),
            "actor": self.actor,
            "action": self.action,
            "project": self.project,
            "target": self.target,
            "detail": self.detail,
            "address": self.address,
        }


@dataclass(frozen=True)
class AuditQuery:
    """Newest first; `before` is the id the previous page ended at (records with smaller ids follow)."""

    actor: str | None = None
    action: str | None = None  # an action, or a prefix ending in '.' ('user.')
    project: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    before: int | None = None
    limit: int = 100

    def __post_init__(self) -> None:
        if self.action is not None and self.action not in ACTIONS:
            prefixes = sorted({action.split(".")[0] + "." for action in ACTIONS})
            if self.action not in prefixes:
                raise InvalidInput(
                    f"Unknown action {self.action!r}: give an action such as file.upload, "
                    f"or one of the prefixes {' '.join(prefixes)}"
                )
        if not 1 <= self.limit <= MAX_PAGE:
            raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}.")


class AuditStore(ABC):
    stored = True

    @abstractmethod
    def add(self, event: AuditEvent) -> None: ...

    @abstractmethod
    def find(self, query: AuditQuery) -> list[AuditEvent]: ...

    @abstractmethod
    def prune(self, older_than: datetime) -> int:
        """Delete the records made before `older_than`; how many went."""


class LogOnlyAudit(AuditStore):
    """A read-only (static) access backend has no database: records are the `audit:` log lines alone."""

    stored = False

    def add(self, event: AuditEvent) -> None:
        return None

    def find(self, query: AuditQuery) -> list[AuditEvent]:
        raise Conflict(
            "The audit trail is stored in the access database: with auth.backend = static it is written to the "
            "log only (WARNING lines starting 'audit:' from logger pypicloud_lite.access.audit)."
        )

    def prune(self, older_than: datetime) -> int:
        return 0


class AuditRecorder:
    """Logs each record and stores it; a store failing is logged, never raised (the change is already made)."""

    def __init__(self, store: AuditStore, retention: int = 365 * 86400, clock: Callable[[], float] = time.monotonic):
        self.store = store
        self.retention = retention
        self._clock = clock
        self._next_prune: float | None = None
        self._lock = threading.Lock()

    def keep_for(self, seconds: int) -> None:
        """Records older than `seconds` are pruned (0: kept for ever)."""
        self.retention = seconds

    def record(
        self,
        action: str,
        actor: str | None,
        address: str | None,
        *,
        project: str | None = None,
        target: str | None = None,
        detail: str | None = None,
    ) -> None:
        if action not in ACTIONS:
            raise ValueError(f"unknown audit action {action!r}")
        event = AuditEvent(action, actor, address, project=project, target=target, detail=detail).clipped()
        logger.warning("%s", event.line())
        try:
            self.store.add(event)
            self._prune_when_due()
        except Exception:
            logger.exception("audit: could not store the record of %s by %s", action, actor)

    def find(self, query: AuditQuery) -> list[AuditEvent]:
        return self.store.find(query)

    def _prune_when_due(self) -> None:
        if not self.retention:
            return
        now = self._clock()
        with self._lock:
            if self._next_prune is not None and now < self._next_prune:
                return
            self._next_prune = now + PRUNE_EVERY
        pruned = self.store.prune(utcnow() - timedelta(seconds=self.retention))
        if pruned:
            logger.info("audit: pruned %d record(s) older than %d seconds", pruned, self.retention)
