"""The serial read on every index request: always the latest committed serial, across processes.

On SQLite the reader skips its SELECT while the WAL-index header is unchanged; these tests
check that every committed change, from this process or another, is seen by the next read.
"""

from __future__ import annotations

import multiprocessing
import sqlite3
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
