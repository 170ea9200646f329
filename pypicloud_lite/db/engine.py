"""Engines for the SQL database: pool settings and timeouts, SQLite WAL and write locking."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from sqlalchemy.orm import Session, sessionmaker

from pypicloud_lite.config import CacheSettings
from pypicloud_lite.config_checks import database_url
from pypicloud_lite.errors import BackendUnavailable, ConfigError

logger = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 30_000


def create_db_engine(settings: CacheSettings, key: str = "cache.url") -> Engine:
    """The engine of `settings.url` (the setting `key`, named in errors)."""
    url = make_url(database_url(settings.url))
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:" and not url.database.startswith("file:"):
            folder = Path(url.database).parent
            if not folder.is_dir():
                # A typo in the path must not quietly start an empty index somewhere else.
                raise ConfigError(
                    f"setting {key!r}: the folder {str(folder)!r} of the SQLite database does not exist; "
                    f"create it (mkdir -p {folder}) or correct the URL"
                )
            refuse_network_filesystem(Path(url.database))
        engine = create_engine(url, echo=settings.echo, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        _configure_sqlite(engine)
        return engine
    # Without timeouts a database that accepts connections but never answers holds every
    # request thread forever; with them, requests fail fast with a 503 and recover by themselves.
    timeout = settings.connect_timeout
    connect_args: dict[str, Any] = {"connect_timeout": timeout}
    if url.get_backend_name() == "postgresql":
        connect_args.update(keepalives=1, keepalives_idle=30, keepalives_interval=10, keepalives_count=3)
    elif url.get_backend_name() in ("mysql", "mariadb"):
        connect_args.update(read_timeout=max(timeout, 30), write_timeout=max(timeout, 30))
    return create_engine(
        url,
        echo=settings.echo,
        pool_size=settings.pool_size,
        max_overflow=max(0, settings.max_connections - settings.pool_size),
        pool_pre_ping=True,
        pool_recycle=3600,
        pool_timeout=timeout,
        connect_args=connect_args,
    )


# SQLite's locking (and WAL's shared memory) is unreliable on these: concurrent writers corrupt the file.
NETWORK_FILESYSTEMS = frozenset(
    {"nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "afs", "ceph", "glusterfs", "lustre", "fuse.sshfs", "fuse.s3fs"}
)


def refuse_network_filesystem(database: Path, mounts: Path = Path("/proc/mounts")) -> None:
    """Refuse an SQLite file on a network file system, where detectable (Linux /proc/mounts)."""
    try:
        table = mounts.read_text(encoding="utf-8").splitlines()
    except OSError:
        return  # not Linux, or no /proc: nothing to detect with
    folder = database.resolve().parent
    best: tuple[int, str, str] | None = None
    for line in table:
        fields = line.split()
        if len(fields) < 3:
            continue
        mount_point, fstype = fields[1].replace("\\040", " "), fields[2]
        contains = folder == Path(mount_point) or Path(mount_point) in folder.parents
        if contains and (best is None or len(mount_point) > best[0]):
            best = (len(mount_point), mount_point, fstype)
    if best is not None and best[2] in NETWORK_FILESYSTEMS:
        raise ConfigError(
            f"setting 'cache.url': {database} is on a network file system ({best[2]} at {best[1]}), where "
            "SQLite's locking cannot be trusted; use a local disk, PostgreSQL, MySQL or DynamoDB"
        )


def write_engine(engine: Engine) -> Engine:
    """The engine to use for writes: on SQLite it takes the write lock when the transaction begins."""
    if engine.dialect.name == "sqlite":
        return engine.execution_options(sqlite_begin="BEGIN IMMEDIATE")
    return engine


def _configure_sqlite(engine: Engine) -> None:
    # pysqlite's own transaction handling defers BEGIN and cannot take the write
    # lock up front; take over BEGIN so writers queue on busy_timeout instead of
    # failing with "database is locked" when a read transaction upgrades.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Straight to the driver: through exec_driver_sql a BEGIN costs as much as a whole single-row read
        # (about 35 us of SQLAlchemy's execution path), and an upload opens three transactions.
        statement = conn.get_execution_options().get("sqlite_begin", "BEGIN")
        try:
            conn.connection.driver_connection.execute(statement)
        except sqlite3.Error as exc:
            # As exec_driver_sql raised it: "database is locked" after busy_timeout is a 503, not a crash.
            raise DBAPIError.instance(statement, None, exc, sqlite3.Error) from exc


@contextmanager
def transaction(factory: sessionmaker[Session], what: str) -> Iterator[Session]:
    """One transaction; a database that cannot be reached becomes BackendUnavailable (503)."""
    with _translated(what), factory() as session, session.begin():
        yield session


@contextmanager
def connection(engine: Engine, what: str) -> Iterator[Connection]:
    """One transaction on a plain connection (Core statements, no ORM session), errors as `transaction` has them.

    The upload path's few statements run here: an ORM session per transaction cost more than the statements.
    """
    with _translated(what), engine.begin() as conn:
        yield conn


@contextmanager
def _translated(what: str) -> Iterator[None]:
    try:
        yield
    except IntegrityError:
        raise
    except DBAPIError as exc:
        logger.warning("%s unavailable: %s", what, exc.orig.__class__.__name__)
        raise BackendUnavailable(f"The {what} is unavailable ({exc.orig.__class__.__name__}).") from exc
    except SQLAlchemyTimeoutError as exc:
        logger.warning("%s: no free connection in the pool", what)
        raise BackendUnavailable(f"The {what} is busy: no free connection.") from exc
