"""The change serial, read on every index request: one statement on a connection each thread keeps.

A pooled session costs a checkout (and, with pre-ping, a round trip), BEGIN and
ROLLBACK around the one SELECT: about 20 times the SELECT itself on SQLite. Each thread
here keeps its own autocommit connection, outside the pool, so every read sees the
latest committed serial (no snapshot is held between reads) and costs one statement.
A connection that fails is dropped and the next read opens a new one.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError

from pypicloud_lite.cache.sql.tables import IndexStateRow
from pypicloud_lite.errors import BackendUnavailable

logger = logging.getLogger(__name__)


class SerialReader:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        query = select(IndexStateRow.serial).where(IndexStateRow.id == 1)
        self._sql = str(query.compile(engine, compile_kwargs={"literal_binds": True}))
        self._dbapi_error: type[Exception] = engine.dialect.loaded_dbapi.Error
        self._local = threading.local()
        self._open: set[Any] = set()
        self._lock = threading.Lock()

    def read(self) -> int:
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
        with self._lock:
            connections, self._open = self._open, set()
        for connection in connections:
            try:
                connection.close()
            except Exception:
                logger.debug("closing a serial connection failed", exc_info=True)
