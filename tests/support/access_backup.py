"""The access data backed up, the database lost and the backup restored, each the way the README's "Backup and
restore" says: SQLite's online backup, `pg_dump`/`pg_restore` or `mysqldump`/`mysql` of the access tables."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.support.cache import MARIADB_URL, POSTGRES_URL
from tests.support.common import require_or_skip

ACCESS_TABLES = (
    "ppc_users",
    "ppc_groups",
    "ppc_group_members",
    "ppc_grants",
    "ppc_tokens",
    "ppc_namespaces",
    "ppc_publishers",
)
TOOL_TIMEOUT = 60


def sqlite_backup(source: Path, target: Path) -> None:
    """Python's sqlite3 online backup (`sqlite3 DB ".backup FILE"` from a shell): safe while servers write."""
    target.parent.mkdir(parents=True, exist_ok=True)
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        require_or_skip(f"{name} not installed")
    assert found is not None
    return found


def _run(*args: str, stdin: Path | None = None, stdout: Path | None = None) -> None:
    with open(stdin or "/dev/null", "rb") as src, open(stdout or "/dev/null", "wb") as dst:
        done = subprocess.run(args, stdin=src, stdout=dst, stderr=subprocess.PIPE, timeout=TOOL_TIMEOUT, check=False)
    assert done.returncode == 0, f"{args[0]} failed ({done.returncode}): {done.stderr.decode(errors='replace')}"


@dataclass(frozen=True)
class AccessBackup:
    """One database (`url`) whose access tables are backed up to `file`, then lost and restored."""

    url: str
    file: Path

    @property
    def backend(self) -> str:
        return make_url(self.url).get_backend_name()

    @property
    def _sqlite_path(self) -> Path:
        database = make_url(self.url).database
        assert database is not None
        return Path(database)

    @property
    def _name(self) -> str:
        """The PostgreSQL schema (fresh_database's search_path) or the MariaDB database."""
        parsed = make_url(self.url)
        if self.backend == "postgresql":
            options = parsed.query["options"]
            assert isinstance(options, str)
            return options.removeprefix("-csearch_path=")
        assert parsed.database is not None
        return parsed.database

    @property
    def restore_needs_schema(self) -> bool:
        """Whether the schema must be at head (`ppc-migrate`, or a server's start) before `restore`."""
        return self.backend != "sqlite"

    def backup(self) -> None:
        self.file.parent.mkdir(parents=True, exist_ok=True)
        if self.backend == "sqlite":
            sqlite_backup(self._sqlite_path, self.file)
        elif self.backend == "postgresql":
            tables = [arg for table in ACCESS_TABLES for arg in ("-t", f"{self._name}.{table}")]
            _run(_tool("pg_dump"), *_pg_connection(), "--data-only", "-Fc", "-f", str(self.file), *tables)
        else:
            _run(
                _tool("mysqldump"),
                *_mysql_connection(),
                "--no-create-info",
                self._name,
                *ACCESS_TABLES,
                stdout=self.file,
            )

    def lose(self) -> None:
        """The database is gone: an empty file, schema or database in its place."""
        if self.backend == "sqlite":
            for suffix in ("", "-wal", "-shm"):
                path = self._sqlite_path
                path.with_name(path.name + suffix).unlink(missing_ok=True)
            return
        server = POSTGRES_URL if self.backend == "postgresql" else MARIADB_URL
        kind = "SCHEMA" if self.backend == "postgresql" else "DATABASE"
        admin = create_engine(server, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                conn.execute(text(f"DROP {kind} {self._name}{' CASCADE' if kind == 'SCHEMA' else ''}"))
                conn.execute(text(f"CREATE {kind} {self._name}"))
        finally:
            admin.dispose()

    def restore(self) -> None:
        if self.backend == "sqlite":
            sqlite_backup(self.file, self._sqlite_path)
        elif self.backend == "postgresql":
            _run(_tool("pg_restore"), *_pg_connection(), "--data-only", str(self.file))
        else:
            _run(_tool("mysql"), *_mysql_connection(), self._name, stdin=self.file)


def _pg_connection() -> list[str]:
    url = make_url(POSTGRES_URL)
    return ["-h", str(url.host), "-p", str(url.port), "-U", str(url.username), "-d", str(url.database)]


def _mysql_connection() -> list[str]:
    url = make_url(MARIADB_URL)
    return ["-h", str(url.host), "-P", str(url.port), "-u", str(url.username)]
