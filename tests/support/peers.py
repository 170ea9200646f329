"""Helpers of the import tests (tests/importing/, tests/test_service_import.py): an index over local storage
and SQLite, and peer layouts written exactly as pypicloud, pypiserver and devpi write them."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from pypicloud_lite.cache.sql import SQLCache
from pypicloud_lite.config import CacheSettings, UploadSettings
from pypicloud_lite.importing.peer import Found
from pypicloud_lite.importing.run import import_files
from pypicloud_lite.models import PackageFile
from pypicloud_lite.service import PackageIndex
from pypicloud_lite.storage.local import LocalStorage
from tests.support.data import DATA_DIR

DEVPI_EXPORT = DATA_DIR / "peers" / "devpi-export"


@contextmanager
def local_index(root: Path) -> Iterator[PackageIndex]:
    """A PackageIndex over local storage and an SQLite cache, both under `root`."""
    cache = SQLCache.from_settings(
        CacheSettings(
            backend="sql", url=f"sqlite:///{root / 'cache.sqlite'}", migrate_on_start=True, pool_size=5, echo=False
        )
    )
    try:
        yield PackageIndex(
            LocalStorage(root / "packages"), cache, UploadSettings(max_size=1_000_000, spool_dir=root / "spool")
        )
    finally:
        cache.close()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def set_mtime(path: Path, when: datetime) -> None:
    os.utime(path, (when.timestamp(), when.timestamp()))


def pypicloud_s3_key(prefix: str, project: str, filename: str, *, prepend_hash: bool = True) -> str:
    """pypicloud's S3 key (object_store.py calculate_path): `<prefix><md5(filename)[:4]>/<name>/<filename>`."""
    path = f"{project}/{filename}"
    if prepend_hash:
        path = hashlib.md5(filename.encode()).hexdigest()[:4] + "/" + path
    return prefix + path


def write_pypicloud_local(
    root: Path, project: str, version: str, dist: Path, meta: dict[str, str] | None, mtime: datetime
) -> Path:
    """A file as pypicloud's FileStorage keeps it: `<dir>/<name>/<version>/<filename>` and a one-line `.meta`."""
    folder = root / project / version
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / dist.name
    shutil.copyfile(dist, target)
    if meta is not None:
        # json.dump's defaults, as pypicloud writes it: one line, ASCII escapes, no trailing newline.
        (folder / (dist.name + ".meta")).write_text(json.dumps(meta), encoding="ascii")
    set_mtime(target, mtime)
    return target


def copy_devpi_export(dest: Path) -> Path:
    """The real devpi-export kept in tests/data, copied so a test may change it."""
    shutil.copytree(DEVPI_EXPORT, dest)
    return dest


def import_all(index: PackageIndex, found: Iterable[Found], **options: Any) -> dict[str, str]:
    """Import everything and answer {source: "status" or "status: reason"}."""
    return {o.source: o.status + (f": {o.reason}" if o.reason else "") for o in import_files(index, found, **options)}


def files_of(index: PackageIndex, project: str) -> dict[str, PackageFile]:
    return {f.filename: f for f in index.project_files(index.get_project(project))}
