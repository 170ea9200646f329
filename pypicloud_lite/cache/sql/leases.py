"""Leases (the reload's, the CDN window's, a filename's) as rows of the leases table, with their holder's progress."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import delete, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from pypicloud_lite.cache.base import ONCE_PREFIX, Leases
from pypicloud_lite.cache.sql.rows import naive_utc, to_file
from pypicloud_lite.db.tables import FileRow, LockRow
from pypicloud_lite.errors import BackendUnavailable
from pypicloud_lite.models import HeldLease, PackageFile

_T = TypeVar("_T")

# MySQL/MariaDB "Deadlock found", PostgreSQL deadlock_detected.
_DEADLOCK_CODES = (1213, "40P01")


def _deadlocked(exc: BaseException) -> bool:
    cause = exc.__cause__
    if not isinstance(cause, DBAPIError):
        return False
    orig = cause.orig
    codes = {getattr(orig, "sqlstate", None), *(getattr(orig, "args", ()) or ())[:1]}
    return any(code in codes for code in _DEADLOCK_CODES)


class SQLLeases(Leases):
    """A lease is held while its row names the holder and has not expired."""

    @abstractmethod
    def _session(self, write: bool = False) -> AbstractContextManager[Session]:
        """A transaction on the cache's database."""

    def acquire_lock(self, name: str, holder: str, ttl: float) -> bool:
        return self._taking(HeldLease(name, holder), ttl, lambda _session: None)[0]

    def lease_file(self, lease: HeldLease, ttl: float, filename: str) -> tuple[bool, PackageFile | None]:
        # One transaction: the lease, then the row read under it.
        def read(session: Session) -> PackageFile | None:
            row = session.get(FileRow, filename)
            return to_file(row) if row else None

        return self._taking(lease, ttl, read)

    def _taking(self, lease: HeldLease, ttl: float, then: Callable[[Session], _T]) -> tuple[bool, _T | None]:
        """Take the lease and, if taken, run `then` in the same transaction: (taken, what it returned)."""
        now = naive_utc(datetime.now(UTC))
        expires = now + timedelta(seconds=ttl)
        try:
            with self._session(write=True) as session:
                row = session.scalars(select(LockRow).where(LockRow.name == lease.name).with_for_update()).first()
                if row is None:
                    session.add(LockRow(name=lease.name, holder=lease.holder, expires=expires))
                    session.flush()  # a racing insert fails here, before `then` runs
                elif row.holder != lease.holder and row.expires > now:
                    return False, None
                else:
                    row.holder, row.expires, row.progress = lease.holder, expires, None
                return True, then(session)
        except IntegrityError:
            return False, None  # another process inserted the lock row first
        except BackendUnavailable as exc:
            if _deadlocked(exc):
                return False, None  # InnoDB chose this racer as the loser: another one is taking the lease
            raise

    def claim_once(self, key: str, ttl: float) -> bool:
        # Expired claims are worth nothing to anyone: drop them, so the table holds only live ones.
        with self._session(write=True) as session:
            session.execute(
                delete(LockRow).where(
                    LockRow.name.startswith(ONCE_PREFIX), LockRow.expires < naive_utc(datetime.now(UTC))
                )
            )
        return super().claim_once(key, ttl)

    def update_lock(self, name: str, holder: str, ttl: float, progress: dict[str, object]) -> bool:
        expires = naive_utc(datetime.now(UTC)) + timedelta(seconds=ttl)
        with self._session(write=True) as session:
            result: Any = session.execute(
                update(LockRow)
                .where(LockRow.name == name, LockRow.holder == holder)
                .values(expires=expires, progress=progress)
            )
            return bool(result.rowcount)

    def release_lock(self, name: str, holder: str, progress: dict[str, object]) -> None:
        with self._session(write=True) as session:
            self._release(session, HeldLease(name, holder), progress)

    @staticmethod
    def _release(session: Session, lease: HeldLease, progress: dict[str, object]) -> None:
        """End the lease in the caller's transaction."""
        session.execute(
            update(LockRow)
            .where(LockRow.name == lease.name, LockRow.holder == lease.holder)
            .values(expires=naive_utc(datetime.now(UTC)), progress=progress)
        )

    def lock_state(self, name: str) -> tuple[bool, dict[str, object] | None]:
        with self._session() as session:
            row = session.get(LockRow, name)
            if row is None:
                return False, None
            return row.expires > naive_utc(datetime.now(UTC)), row.progress
