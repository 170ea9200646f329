"""LocalStorage's cheap writes: an upload's spool file becomes the object without a copy, creates take no lock file."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from pypicloud_lite.storage.local import LOCKS_DIR, LocalStorage

KEY = "demo/demo-1.0.tar.gz"


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "spool" / "ppc-upload-x.part"
    path.parent.mkdir()
    path.write_bytes(b"demo bytes\n" * 100)
    return path


def _links_across_devices(source: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`source` is on another file system than the storage: link() refuses it."""
    link = os.link

    def cross_device(src: Path, dst: Path) -> None:
        if Path(src) == source:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        link(src, dst)

    monkeypatch.setattr(os, "link", cross_device)


def test_a_movable_source_on_the_same_file_system_becomes_the_object(tmp_path: Path, source: Path) -> None:
    storage = LocalStorage(tmp_path / "root")
    assert storage.put_new(KEY, source, movable=True) is True
    assert os.stat(tmp_path / "root" / KEY).st_ino == os.stat(source).st_ino
    assert storage.put_new(KEY, source, movable=True) is False  # still a create-if-absent


def test_a_movable_source_on_another_file_system_is_copied(
    tmp_path: Path, source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = LocalStorage(tmp_path / "root")
    _links_across_devices(source, monkeypatch)
    assert storage.put_new(KEY, source, movable=True) is True
    assert os.stat(tmp_path / "root" / KEY).st_ino != os.stat(source).st_ino
    assert (tmp_path / "root" / KEY).read_bytes() == source.read_bytes()
    assert [p.name for p in (tmp_path / "root" / "demo").iterdir()] == ["demo-1.0.tar.gz"]


def test_a_conditional_create_takes_no_lock_file(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "root")
    assert storage.put_if("_ppc/projects/demo.json", b"{}", None) is True
    assert storage.put_if("_ppc/projects/demo.json", b"{}", None) is False
    assert not (tmp_path / "root" / LOCKS_DIR).exists()


@pytest.mark.parametrize("synced", [False, True])
def test_a_source_the_caller_synced_is_not_synced_again(
    tmp_path: Path, source: Path, monkeypatch: pytest.MonkeyPatch, synced: bool
) -> None:
    # An upload's spool file is fsync'd in the background as soon as it is complete (spool.py's presync).
    fsyncs: list[int] = []
    monkeypatch.setattr(os, "fsync", fsyncs.append)
    storage = LocalStorage(tmp_path / "root")
    assert storage.put_new(KEY, source, movable=True, synced=synced) is True
    assert len(fsyncs) == (0 if synced else 1)
    # Copied to another file system, the copy is new bytes: synced whatever the source was.
    fsyncs.clear()
    _links_across_devices(source, monkeypatch)
    assert storage.put_new("demo/demo-2.0.tar.gz", source, movable=True, synced=synced) is True
    assert len(fsyncs) == (1 if synced else 2)
