"""The serial read on every index request: always the latest committed serial, across processes.

On SQLite the reader skips its SELECT while the WAL-index header is unchanged; these tests
check that every committed change, from this process or another, is seen by the next read.
"""

from __future__ import annotations

import multiprocessing
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pypicloud_lite.cache.sql import SQLCache
from pypicloud_lite.cache.sql.serial_reader import SerialReader, WalIndexWatch
from pypicloud_lite.config import load_settings
from pypicloud_lite.models import AddFile, PackageFile


def _cache(path: Path) -> SQLCache:
    settings = load_settings(
        {"storage.dir": str(path.parent / "packages"), "cache.url": f"sqlite:///{path}", "cache.migrate_on_start": "1"},
        environ={},
    )
    return SQLCache.from_settings(settings.cache)


def _file(n: int) -> PackageFile:
    return PackageFile(
        project="demo",
        filename=f"demo-{n}.0-py3-none-any.whl",
        version=f"{n}.0",
        packagetype="bdist_wheel",
        python_version="py3",
        size=1,
        sha256="0" * 64,
        upload_time=datetime.now(UTC),
    )


@pytest.fixture
def database(tmp_path: Path) -> Path:
    return tmp_path / "cache.sqlite"


@pytest.fixture
def pair(database: Path) -> Iterator[tuple[SQLCache, SQLCache]]:
    """Two caches on one file: two server processes, as far as SQLite can tell."""
    writer, reader = _cache(database), _cache(database)
    yield writer, reader
    writer.close()
    reader.close()


class CountingSelects:
    def __init__(self, reader: SerialReader, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        select = reader._select

        def counted() -> int:
            self.count += 1
            return select()

        monkeypatch.setattr(reader, "_select", counted)


def test_unchanged_database_costs_no_select_and_every_write_is_seen(
    pair: tuple[SQLCache, SQLCache], monkeypatch: pytest.MonkeyPatch
) -> None:
    writer, reader = pair
    # The first read opens the reader's connection (and so the -shm file); the second notes the header.
    reader.serial()
    first = reader.serial()
    selects = CountingSelects(reader._serial, monkeypatch)
    for _ in range(50):
        assert reader.serial() == first
    assert selects.count == 0, "an unchanged WAL-index header must answer without a SELECT"
    for n in range(1, 30):
        writer.apply(AddFile(_file(n), "Demo"))
        expected = writer.serial()
        assert reader.serial() == expected == first + n
    assert selects.count == 29


def test_a_write_from_another_process_is_seen_on_the_next_read(database: Path) -> None:
    reader = _cache(database)
    try:
        before = reader.serial()
        for n in range(1, 4):
            ctx = multiprocessing.get_context("spawn")
            child = ctx.Process(target=_write_one, args=(database, n))
            child.start()
            child.join(60)
            assert child.exitcode == 0
            assert reader.serial() == before + n
    finally:
        reader.close()


def _write_one(database: Path, n: int) -> None:
    cache = _cache(database)
    cache.apply(AddFile(_file(n), "Demo"))
    cache.close()


def test_checkpoints_and_foreign_writes_never_leave_a_stale_serial(
    pair: tuple[SQLCache, SQLCache], database: Path
) -> None:
    writer, reader = pair
    raw = sqlite3.connect(database, isolation_level=None)
    try:
        for n in range(1, 20):
            writer.apply(AddFile(_file(n), "Demo"))
            if n % 3 == 0:
                raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            if n % 5 == 0:
                # Another tool changing the serial row directly, outside pypicloud_lite.
                raw.execute("UPDATE ppc_index_state SET serial = serial + 100 WHERE id = 1")
            truth = raw.execute("SELECT serial FROM ppc_index_state WHERE id = 1").fetchone()[0]
            assert reader.serial() == truth
    finally:
        raw.close()


def test_no_shm_file_means_the_select_answers(tmp_path: Path) -> None:
    watch = WalIndexWatch(tmp_path / "missing.sqlite")
    assert watch.token() is None
    watch.close()


def test_a_header_being_written_is_not_trusted(tmp_path: Path) -> None:
    """The two copies differ while a writer is between them: no token, so the reader SELECTs."""
    shm = tmp_path / "db.sqlite-shm"
    header = bytearray(48)
    header[12] = 1  # isInit
    shm.write_bytes(bytes(header) + bytes(header) + bytes(32768))
    watch = WalIndexWatch(tmp_path / "db.sqlite")
    assert watch.token() == bytes(header)
    changed = bytearray(header)
    changed[8] = 7  # iChange moved in the first copy only
    shm.write_bytes(bytes(changed) + bytes(header) + bytes(32768))
    assert watch.token() is None
    uninitialised = bytes(48)
    shm.write_bytes(uninitialised + uninitialised + bytes(32768))
    assert watch.token() is None
    watch.close()


# Where SQLite's unix VFS takes its "dead man switch" lock in the -shm file: every connection that has the file
# open holds it shared; a new connection that can take it exclusively truncates and rebuilds the file.
_DMS_BYTE = 128
_PROBE = """
import fcntl, os, sys
descriptor = os.open(sys.argv[1], os.O_RDWR)
try:
    fcntl.lockf(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, int(sys.argv[2]))
except OSError:
    print("held")
else:
    print("free")
"""


def _dms_held_elsewhere(database: Path) -> bool:
    """Whether another process sees SQLite's shared lock on the -shm file (POSIX locks belong to a process)."""
    probe = subprocess.run(
        [sys.executable, "-c", _PROBE, f"{database}-shm", str(_DMS_BYTE)], capture_output=True, text=True, check=True
    )
    return probe.stdout.strip() == "held"


def test_reading_the_header_keeps_the_locks_sqlite_holds_on_the_file(database: Path) -> None:
    """Closing any descriptor of a file releases every POSIX lock the process holds on it. A watch that opened the
    -shm file and closed it again released SQLite's own: the next connection of another process then truncated and
    rebuilt the file under every mapping of it, and the server died of a SIGBUS reading its header."""
    connection = sqlite3.connect(database)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("CREATE TABLE t (x)")
        connection.commit()
        assert _dms_held_elsewhere(database)
        watches = [WalIndexWatch(database), WalIndexWatch(database)]
        for watch in watches:
            assert watch.token() is not None
        watches[0].close()
        assert _dms_held_elsewhere(database), "a watch closed while another uses the file"
        assert watches[1].token() is not None
        assert _dms_held_elsewhere(database), "reading the header released SQLite's locks"
        watches[1].close()
    finally:
        connection.close()
