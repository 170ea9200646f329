"""SQLite is refused on a network file system, and set up for concurrent use (WAL, busy timeout) elsewhere."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from pypicloud_lite.db.engine import create_db_engine, refuse_network_filesystem
from pypicloud_lite.errors import ConfigError
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
