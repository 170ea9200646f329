"""A large upload streams through the server: its resident memory does not grow with the file."""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path

from argon2 import PasswordHasher

from tests.support.common import UPLOADER, UPLOADER_PASSWORD
from tests.support.distbuilder import build_wheel
from tests.support.harness import Clients, start_server

MEGABYTES = 160


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc: not Linux?")


def _big_wheel(folder: Path) -> Path:
    """A valid wheel with a large incompressible member, written without holding it in memory."""
    path = folder / "big_wheel-1.0-py3-none-any.whl"
    chunk = os.urandom(1 << 20)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        with zf.open("big_wheel/blob.bin", "w", force_zip64=True) as blob:
            for _ in range(MEGABYTES):
                blob.write(chunk)
        zf.writestr("big_wheel-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: big-wheel\nVersion: 1.0\n")
        zf.writestr("big_wheel-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr("big_wheel-1.0.dist-info/RECORD", "")
    return path


def test_a_large_upload_keeps_the_server_memory_bounded(tmp_path: Path) -> None:
    for folder in ("server", "home", "small"):
        (tmp_path / folder).mkdir()
    # A cheap argon2 hash: the default one allocates 64 MiB per check, and that peak would hide the upload's.
    cheap = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash(UPLOADER_PASSWORD)
    server = start_server(tmp_path / "server", extra={"upload.max_size": "1GB", f"user.{UPLOADER}": cheap})
    try:
        clients = Clients(server, tmp_path / "home")
        small = build_wheel(tmp_path / "small", "small-first", "1.0")
        # The first upload pays for the password check and the imports.
        clients.twine(small).check()
        before = _peak_rss_mb(server.process.pid)
        big = _big_wheel(tmp_path)
        clients.twine(big).check()
        after = _peak_rss_mb(server.process.pid)
        stored = server.folder / "packages" / "big-wheel" / big.name
        assert stored.stat().st_size == big.stat().st_size
        digest = hashlib.sha256()
        with big.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
        assert server.listed_files("big-wheel")[big.name] == digest.hexdigest()
        assert after - before < MEGABYTES / 4, (
            f"peak RSS grew {after - before:.0f} MB over a {MEGABYTES} MB upload ({before:.0f} -> {after:.0f} MB)"
        )
    finally:
        server.stop()
