"""Helpers for the cache tests: throw-away databases on SQLite, PostgreSQL and MariaDB; fresh DynamoDB tables."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url

from pypicloud_lite.cache.base import Cache
from pypicloud_lite.config import CacheSettings, load_settings
from tests.support.aws import Moto
from tests.support.common import require_or_skip

POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
MARIADB_URL = "mysql+pymysql://root@127.0.0.1:3306/test"
SQL_BACKENDS = ("sqlite", "postgresql", "mariadb")


@functools.cache
def _unreachable(url: str) -> str | None:
    """Why the server behind `url` cannot be used, or None if it answers (asked once per run)."""
    engine = create_engine(url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        parsed = make_url(url)
        detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        return f"{parsed.get_backend_name()} server at {parsed.host}:{parsed.port} unreachable: {detail}"
    finally:
        engine.dispose()
    return None


@contextmanager
def fresh_database(backend: str, tmp_path: Path) -> Iterator[str]:
    """A URL to an empty database of its own, dropped afterwards with everything in it.

    The PostgreSQL and MariaDB servers are shared with other test runs, so each test
    gets a uniquely named schema (a database, on MariaDB) instead of touching `test`'s tables.
    """
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'cache.sqlite'}"
        return
    server_url = {"postgresql": POSTGRES_URL, "mariadb": MARIADB_URL}[backend]
    reason = _unreachable(server_url)
    if reason is not None:
        require_or_skip(reason)
    name = f"ppc_test_{uuid.uuid4().hex[:16]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f"CREATE {'SCHEMA' if backend == 'postgresql' else 'DATABASE'} {name}"))
        if backend == "postgresql":
            url = make_url(server_url).update_query_dict({"options": f"-csearch_path={name}"})
        else:
            url = make_url(server_url).set(database=name)
        try:
            yield url.render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                if backend == "postgresql":
                    conn.execute(text(f"DROP SCHEMA IF EXISTS {name} CASCADE"))
                else:
                    conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
    finally:
        admin.dispose()


def cache_settings(url: str, *, migrate_on_start: bool = True) -> CacheSettings:
    return CacheSettings(backend="sql", url=url, migrate_on_start=migrate_on_start, pool_size=5, echo=False)


def dynamo_cache(moto: Moto) -> Cache:
    """A DynamoCache on its own freshly created tables (a unique prefix) on moto."""
    from pypicloud_lite.cache.dynamo import DynamoCache

    settings = load_settings(
        {
            "storage.dir": "/nonexistent",
            **moto.dynamo_settings(),
        },
        environ={},
    )
    return DynamoCache.from_settings(settings.cache)


@contextmanager
def statements_on(target: Engine | type[Engine] = Engine) -> Iterator[list[str]]:
    """The SQL statements run meanwhile on one engine, or on every engine (the class); BEGIN and COMMIT are the
    driver's, not seen."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement.strip())

    event.listen(target, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(target, "before_cursor_execute", record)
