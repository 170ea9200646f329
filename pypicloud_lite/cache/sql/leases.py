"""Leases (the reload's, the CDN window's, a filename's) as rows of the leases table, with their holder's progress."""

from __future__ import annotations

import functools
from abc import abstractmethod
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, bindparam, delete, insert, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from pypicloud_lite.cache.base import ONCE_PREFIX, Leases
from pypicloud_lite.cache.sql.rows import conditional_upsert, naive_utc, to_file
from pypicloud_lite.db.tables import FileRow, LockRow, ProjectRow, table_of
from pypicloud_lite.errors import BackendUnavailable
from pypicloud_lite.models import HeldLease, LeaseRead, PackageFile, Project

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


# The filename lease's statements, built once (an upload runs each of them).
_LOCKS = table_of(LockRow)
_FILES = table_of(FileRow)
_LOCK_FOR_UPDATE = select(_LOCKS.c.holder, _LOCKS.c.expires).where(_LOCKS.c.name == bindparam("name")).with_for_update()
_NEW_LOCK = insert(_LOCKS)
_RETAKE_LOCK = (
    update(_LOCKS)
    .where(_LOCKS.c.name == bindparam("b_name"))
    .values(holder=bindparam("b_holder"), expires=bindparam("b_expires"), progress=None)
)


@functools.cache
def _take_lock(dialect: str) -> Any:
    """One statement that takes a lease where it is free, expired or the holder's own (it returns a row when it
    did), where the database has an upsert with a condition and RETURNING: SQLite (3.35 and later) and PostgreSQL.
    MySQL's upsert takes no condition."""
    upsert = conditional_upsert(dialect)
    if upsert is None:
        return None
    insert = upsert(_LOCKS)
    current = _LOCKS.c
    return insert.on_conflict_do_update(
        index_elements=[current.name],
        set_={"holder": insert.excluded.holder, "expires": insert.excluded.expires, "progress": None},
        where=(current.holder == insert.excluded.holder) | (current.expires <= bindparam("now")),
    ).returning(current.holder)


_END_LOCK = (
    update(_LOCKS)
    .where(_LOCKS.c.name == bindparam("b_name"), _LOCKS.c.holder == bindparam("b_holder"))
    .values(expires=bindparam("b_expires"), progress=bindparam("b_progress"))
)
_FILE_BY_NAME = select(_FILES).where(_FILES.c.filename == bindparam("filename"))
_PROJECTS = table_of(ProjectRow)
_PROJECT_BY_NAME = select(
    _PROJECTS.c.name, _PROJECTS.c.display_name, _PROJECTS.c.serial, _PROJECTS.c.status, _PROJECTS.c.status_reason
).where(_PROJECTS.c.name == bindparam("b_name"))


def file_by_name(conn: Connection, filename: str) -> PackageFile | None:
    row = conn.execute(_FILE_BY_NAME, {"filename": filename}).first()
    return to_file(row) if row else None


def project_by_name(conn: Connection, name: str) -> Project | None:
    row = conn.execute(_PROJECT_BY_NAME, {"b_name": name}).first()
    return Project(*row) if row else None


class SQLLeases(Leases):
    """A lease is held while its row names the holder and has not expired."""

    engine: Engine

    @abstractmethod
    def _connection(self, write: bool = False) -> AbstractContextManager[Connection]:
        """A transaction on the cache's database."""

    def acquire_lock(self, name: str, holder: str, ttl: float) -> bool:
        return self._taking(HeldLease(name, holder), ttl, lambda _conn: None)[0]

    def lease_file(self, lease: HeldLease, ttl: float, filename: str, project: str | None = None) -> LeaseRead:
        # One transaction: the lease, then the rows read under it.
        def read(conn: Connection) -> LeaseRead:
            return LeaseRead(True, file_by_name(conn, filename), project_by_name(conn, project) if project else None)

        return self._taking(lease, ttl, read)[1] or LeaseRead(False)

    def _taking(self, lease: HeldLease, ttl: float, then: Callable[[Connection], _T]) -> tuple[bool, _T | None]:
        """Take the lease and, if taken, run `then` in the same transaction: (taken, what it returned)."""
        now = naive_utc(datetime.now(UTC))
        expires = now + timedelta(seconds=ttl)
        dialect = self.engine.dialect
        take = _take_lock(dialect.name) if dialect.insert_returning else None
        try:
            with self._connection(write=True) as conn:
                if take is not None:
                    params = {"name": lease.name, "holder": lease.holder, "expires": expires, "now": now}
                    taken = conn.execute(take, params).first() is not None
                    return (True, then(conn)) if taken else (False, None)
                row = conn.execute(_LOCK_FOR_UPDATE, {"name": lease.name}).first()
                if row is None:
                    # A racing insert fails here, before `then` runs.
                    conn.execute(_NEW_LOCK, {"name": lease.name, "holder": lease.holder, "expires": expires})
                elif row.holder != lease.holder and row.expires > now:
                    return False, None
                else:
                    conn.execute(_RETAKE_LOCK, {"b_name": lease.name, "b_holder": lease.holder, "b_expires": expires})
                return True, then(conn)
        except IntegrityError:
            return False, None  # another process inserted the lock row first
        except BackendUnavailable as exc:
            if _deadlocked(exc):
                return False, None  # InnoDB chose this racer as the loser: another one is taking the lease
            raise

    def claim_once(self, key: str, ttl: float) -> bool:
        # Expired claims are worth nothing to anyone: drop them, so the table holds only live ones.
        with self._connection(write=True) as conn:
            expired = _LOCKS.c.expires < naive_utc(datetime.now(UTC))
            conn.execute(delete(_LOCKS).where(_LOCKS.c.name.startswith(ONCE_PREFIX), expired))
        return super().claim_once(key, ttl)

    def update_lock(self, name: str, holder: str, ttl: float, progress: dict[str, object]) -> bool:
        expires = naive_utc(datetime.now(UTC)) + timedelta(seconds=ttl)
        with self._connection(write=True) as conn:
            result: Any = conn.execute(
                update(_LOCKS)
                .where(_LOCKS.c.name == name, _LOCKS.c.holder == holder)
                .values(expires=expires, progress=progress)
            )
            return bool(result.rowcount)

    def release_lock(self, name: str, holder: str, progress: dict[str, object]) -> None:
        with self._connection(write=True) as conn:
            self._release(conn, HeldLease(name, holder), progress)

    @staticmethod
    def _release(conn: Connection, lease: HeldLease, progress: dict[str, object]) -> None:
        """End the lease in the caller's transaction."""
        conn.execute(
            _END_LOCK,
            {
                "b_name": lease.name,
                "b_holder": lease.holder,
                "b_expires": naive_utc(datetime.now(UTC)),
                "b_progress": progress,
            },
        )

    def lock_state(self, name: str) -> tuple[bool, dict[str, object] | None]:
        with self._connection() as conn:
            row = conn.execute(select(_LOCKS.c.expires, _LOCKS.c.progress).where(_LOCKS.c.name == name)).first()
            if row is None:
                return False, None
            return row.expires > naive_utc(datetime.now(UTC)), row.progress
