"""The upload spool: with presync, the spool file is on disk (fsync'd) before the context hands it back."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from pypicloud_lite import spool as spool_module
from pypicloud_lite.spool import SpoolWriter, spool


@pytest.mark.parametrize("presync", [False, True])
def test_presync_syncs_the_spool_file_in_the_background(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, presync: bool
) -> None:
    synced: list[str] = []
    fsync = os.fsync

    def recording(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        fsync(fd)

    monkeypatch.setattr(spool_module.os, "fsync", recording)
    with spool(io.BytesIO(b"wheel bytes" * 100), SpoolWriter(1 << 20, tmp_path, presync=presync)) as spooled:
        path = str(spooled.path)
        assert spooled.path.read_bytes() == b"wheel bytes" * 100
    # Waited for before the spool file closed (and went away).
    assert synced == ([path] if presync else [])
    assert not Path(path).exists()
