"""The change serial, read on every index request: one statement on a connection each thread keeps.

A pooled session costs a checkout (and, with pre-ping, a round trip), BEGIN and
ROLLBACK around the one SELECT: about 20 times the SELECT itself on SQLite. Each thread
here keeps its own autocommit connection, outside the pool, so every read sees the
latest committed serial (no snapshot is held between reads) and costs one statement.
A connection that fails is dropped and the next read opens a new one.

On SQLite even that statement costs a quarter of a busy server's throughput: the
driver releases the GIL around it, and every request then waits its turn to get it
back. SQLite itself knows cheaper: in WAL mode every process maps the database's
`-shm` file, whose header (the WAL-index header, https://sqlite.org/walformat.html)
carries a counter that each committed write transaction increments, in whatever
process. Reading those bytes is a memory read. When they are what they were at our
last SELECT, no transaction has committed since, and the serial we read then is the
serial now; when they differ (or cannot be read consistently), we SELECT again.
"""

from __future__ import annotations

import logging
import mmap
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError

from pypicloud_lite.db.tables import IndexStateRow
from pypicloud_lite.errors import BackendUnavailable

logger = logging.getLogger(__name__)


# The WAL-index header: two copies of 48 bytes at the start of the -shm file. A writer
# updates both (the first, then the second); a reader that sees them equal sees a whole one.
_HEADER = 48
_IS_INIT = 12


@dataclass
class _Shm:
    """One -shm file as this process holds it: its descriptors (the first one mapped once big enough), and how
    many watches use it."""

    descriptors: list[int]
    users: int = 0
    mapped: mmap.mmap | None = None


# The -shm files this process holds, by (device, inode). POSIX record locks belong to the process, and closing
# any descriptor of a file releases all of them, so a descriptor opened here is closed only once the last watch
# of its file closes (its database's engines are being disposed). Closed sooner, it would release the locks
# SQLite's own connections in this process hold on the file: the shared lock that stops another process's new
# connection from truncating and rebuilding the file (under every mapping: a read of ours past its end is a
# SIGBUS that kills the server), and the read marks that stop a checkpoint from overwriting what they read.
_SHM: dict[tuple[int, int], _Shm] = {}
_SHM_LOCK = threading.Lock()


class WalIndexWatch:
    """The WAL-index header of one SQLite database, read from the -shm file every connection maps."""

    def __init__(self, database: Path) -> None:
        self.shm = Path(f"{database}-shm")
        self._held: tuple[int, int] | None = None

    def token(self) -> bytes | None:
        """The header now, or None when there is none to read (no -shm yet, or a write in progress)."""
        mapped = self._mapped()
        if mapped is None:
            return None
        first, second = mapped[:_HEADER], mapped[_HEADER : 2 * _HEADER]
        if first != second or not first[_IS_INIT]:
            return None
        return first

    def _mapped(self) -> mmap.mmap | None:
        # Looked up only while this process holds a connection (the reader's own): SQLite truncates the -shm file
        # only when it opens it with no connection anywhere, so it cannot shrink under the mapping.
        held = _SHM.get(self._held) if self._held is not None else None
        if held is not None and held.mapped is not None:
            return held.mapped
        with _SHM_LOCK:
            try:
                if held is None:
                    held = self._hold()
                if held.mapped is None and os.fstat(held.descriptors[0]).st_size >= 2 * _HEADER:
                    held.mapped = mmap.mmap(held.descriptors[0], 2 * _HEADER, access=mmap.ACCESS_READ)
            except OSError:
                return None
            return held.mapped

    def _hold(self) -> _Shm:
        known = os.stat(self.shm)
        key = (known.st_dev, known.st_ino)
        held = _SHM.get(key)
        if held is None:
            descriptor = os.open(self.shm, os.O_RDONLY)
            opened = os.fstat(descriptor)
            key = (opened.st_dev, opened.st_ino)
            held = _SHM.setdefault(key, _Shm([]))
            held.descriptors.append(descriptor)  # a second one only if the file was replaced meanwhile
        held.users += 1
        self._held = key
        return held

    def close(self) -> None:
        """Let go of the file: closed (and unmapped) once no watch in this process uses it."""
        with _SHM_LOCK:
            key, self._held = self._held, None
            if key is None or (held := _SHM.get(key)) is None:
                return
            held.users -= 1
            if held.users > 0:
                return
            del _SHM[key]
            if held.mapped is not None:
                held.mapped.close()
            for descriptor in held.descriptors:
                os.close(descriptor)


class SerialReader:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        query = select(IndexStateRow.serial).where(IndexStateRow.id == 1)
        self._sql = str(query.compile(engine, compile_kwargs={"literal_binds": True}))
        self._dbapi_error: type[Exception] = engine.dialect.loaded_dbapi.Error
        self._local = threading.local()
        self._open: set[Any] = set()
        self._lock = threading.Lock()
        database = engine.url.database if engine.dialect.name == "sqlite" else None
        file_backed = database and database != ":memory:" and not database.startswith("file:")
        self._watch = WalIndexWatch(Path(database)) if file_backed and database else None
        # (WAL-index header before the last SELECT, what it read), replaced as one.
        self._known: tuple[bytes, int] | None = None

    def read(self) -> int:
        token = self._watch.token() if self._watch is not None and self._open else None
        known = self._known
        if token is not None and known is not None and known[0] == token:
            return known[1]
        serial = self._select()
        if token is not None:
            # The header was read before the SELECT: a commit in between makes it stale, never wrong.
            self._known = (token, serial)
        return serial

    def _select(self) -> int:
        connection = getattr(self._local, "connection", None)
        try:
            if connection is None:
                connection = self._connect()
            cursor = connection.cursor()
            try:
                cursor.execute(self._sql)
                row = cursor.fetchone()
            finally:
                cursor.close()
        except (self._dbapi_error, DBAPIError, SQLAlchemyTimeoutError) as exc:
            self._drop(connection)
            logger.warning("package cache database unavailable: %s", exc.__class__.__name__)
            raise BackendUnavailable(f"The package cache database is unavailable ({exc.__class__.__name__}).") from exc
        return int(row[0]) if row else 0

    def _connect(self) -> Any:
        # Opened through the engine (its connect arguments, timeouts and SQLite pragmas), then
        # detached: a connection held for the thread's lifetime must not count against the pool.
        fairy = self.engine.raw_connection()
        fairy.detach()
        connection: Any = fairy.dbapi_connection
        if self.engine.dialect.name == "postgresql":
            connection.autocommit = True
        elif self.engine.dialect.name in ("mysql", "mariadb"):
            connection.autocommit(True)
        # SQLite connections are already in autocommit mode (engine.py takes over BEGIN).
        self._local.connection = connection
        with self._lock:
            self._open.add(connection)
        return connection

    def _drop(self, connection: Any) -> None:
        self._local.connection = None
        if connection is None:
            return
        with self._lock:
            self._open.discard(connection)
        try:
            connection.close()
        except Exception:
            logger.debug("closing a failed serial connection failed", exc_info=True)

    def close(self) -> None:
        if self._watch is not None:
            self._watch.close()
        with self._lock:
            connections, self._open = self._open, set()
        for connection in connections:
            try:
                connection.close()
            except Exception:
                logger.debug("closing a serial connection failed", exc_info=True)
