"""SQLite is refused on a network file system, and set up for concurrent use (WAL, busy timeout) elsewhere."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text

from pypicloud_lite.db import engine as engine_module
from pypicloud_lite.db.engine import connection, create_db_engine, refuse_network_filesystem, write_engine
from pypicloud_lite.errors import BackendUnavailable, ConfigError
from tests.support.cache import cache_settings

MOUNTS = """\
sysfs /sys sysfs rw 0 0
/dev/sda1 / ext4 rw 0 0
server:/export /mnt/shared nfs4 rw,relatime 0 0
//nas/share /mnt/smb cifs rw 0 0
/dev/sdb1 /mnt/shared/local ext4 rw 0 0
"""


@pytest.fixture
def mounts(tmp_path: Path) -> Path:
    path = tmp_path / "mounts"
    path.write_text(MOUNTS)
    return path


@pytest.mark.parametrize("database", ["/mnt/shared/var/cache.sqlite", "/mnt/smb/cache.sqlite"])
def test_network_file_systems_are_refused(mounts: Path, database: str) -> None:
    with pytest.raises(ConfigError, match="network file system"):
        refuse_network_filesystem(Path(database), mounts)


@pytest.mark.parametrize("database", ["/var/lib/ppc/cache.sqlite", "/mnt/shared/local/cache.sqlite"])
def test_local_file_systems_are_accepted(mounts: Path, database: str) -> None:
    # The longest mount point wins: an ext4 disk mounted inside an NFS tree is local.
    refuse_network_filesystem(Path(database), mounts)


def test_no_mount_table_means_nothing_to_refuse(tmp_path: Path) -> None:
    refuse_network_filesystem(Path("/anything/cache.sqlite"), tmp_path / "absent")


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(tmp_path: Path) -> None:
    engine = create_db_engine(cache_settings(f"sqlite:///{tmp_path / 'cache.sqlite'}"))
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 30000
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    engine.dispose()


def test_a_write_takes_the_lock_as_it_begins_and_a_lock_held_past_the_busy_timeout_is_a_503(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "SQLITE_BUSY_TIMEOUT_MS", 100)
    database = tmp_path / "cache.sqlite"
    engine = create_db_engine(cache_settings(f"sqlite:///{database}"))
    writes = write_engine(engine)
    other = sqlite3.connect(database, timeout=0, isolation_level=None)
    try:
        # Held from BEGIN, before any statement: a writer queues there, not on its first write.
        with connection(writes, "test database"), pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(BackendUnavailable, match="test database"), connection(writes, "test database"):
            pytest.fail("the write transaction began while another connection held the write lock")
        with connection(engine, "test database") as conn:  # reads go on beside the writer (WAL)
            assert conn.execute(text("SELECT 1")).scalar() == 1
        other.execute("ROLLBACK")
        with connection(writes, "test database") as conn:
            assert conn.execute(text("SELECT 1")).scalar() == 1
    finally:
        other.close()
        engine.dispose()
