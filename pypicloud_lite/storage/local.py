"""LocalStorage: package files in a folder on this machine (the embedded default)."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from pypicloud_lite.errors import BackendUnavailable, NotFound
from pypicloud_lite.storage.base import Storage, StoredObject

logger = logging.getLogger(__name__)


class LocalStorage(Storage):
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root not in path.parents:
            raise NotFound(f"No such object: {key}")
        return path

    def _temp_beside(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".part")
        os.close(fd)
        return Path(name)

    def put_new(self, key: str, source: Path) -> bool:
        path = self._path(key)
        tmp = self._temp_beside(path)
        try:
            shutil.copyfile(source, tmp)
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            # link() refuses an existing target: an atomic create-if-absent.
            os.link(tmp, path)
            return True
        except FileExistsError:
            return False
        except OSError as exc:
            raise BackendUnavailable(f"Cannot write {key} to storage: {exc.strerror}") from exc
        finally:
            tmp.unlink(missing_ok=True)

    def put_bytes(self, key: str, data: bytes) -> None:
        path = self._path(key)
        tmp = self._temp_beside(path)
        try:
            tmp.write_bytes(data)
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise BackendUnavailable(f"Cannot write {key} to storage: {exc.strerror}") from exc

    def open(self, key: str) -> BinaryIO:
        try:
            return open(self._path(key), "rb")
        except (FileNotFoundError, IsADirectoryError) as exc:
            raise NotFound(f"No such object: {key}") from exc

    def stat(self, key: str) -> StoredObject | None:
        try:
            st = self._path(key).stat()
        except (FileNotFoundError, NotFound):
            return None
        if not stat.S_ISREG(st.st_mode):
            # A project folder is a key prefix, not an object.
            return None
        return StoredObject(key, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC))

    def delete(self, key: str) -> None:
        # A folder is a key prefix, not an object: nothing to delete.
        with contextlib.suppress(IsADirectoryError):
            self._path(key).unlink(missing_ok=True)

    def list(self, prefix: str = "") -> Iterator[StoredObject]:
        for dirpath, _dirs, files in os.walk(self.root):
            for name in sorted(files):
                if name.startswith(".tmp-"):
                    continue
                path = Path(dirpath) / name
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    st = path.stat()
                    yield StoredObject(key, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC))

    def check_health(self) -> None:
        if not os.access(self.root, os.W_OK):
            raise BackendUnavailable(f"Storage folder {self.root} is not writable")
