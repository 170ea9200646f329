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


class WalIndexWatch:
    """The WAL-index header of one SQLite database, read from the -shm file every connection maps."""

    def __init__(self, database: Path) -> None:
        self.shm = Path(f"{database}-shm")
        self._map: mmap.mmap | None = None
        self._lock = threading.Lock()

    def token(self) -> bytes | None:
        """The header now, or None when there is none to read (no -shm yet, or a write in progress)."""
        mapped = self._map or self._open()
        if mapped is None:
            return None
        first, second = mapped[:_HEADER], mapped[_HEADER : 2 * _HEADER]
        if first != second or not first[_IS_INIT]:
            return None
        return first

    def _open(self) -> mmap.mmap | None:
        # Mapped only while this process holds a connection (the reader's own): SQLite truncates
        # the -shm file only when it opens it with no connection anywhere, so it cannot shrink
        # under this mapping.
        with self._lock:
            if self._map is None:
                try:
                    with open(self.shm, "rb") as fh:
                        if os.fstat(fh.fileno()).st_size >= 2 * _HEADER:
                            self._map = mmap.mmap(fh.fileno(), 2 * _HEADER, access=mmap.ACCESS_READ)
                except OSError:
                    return None
            return self._map

    def close(self) -> None:
        with self._lock:
            if self._map is not None:
                self._map.close()
                self._map = None


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
