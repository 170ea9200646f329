"""LocalStorage: package files in a folder on this machine (the embedded default)."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import io
import itertools
import logging
import os
import shutil
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, cast

from pypicloud_lite.errors import BackendUnavailable, InvalidInput, NotFound
from pypicloud_lite.storage.base import Storage, StoredObject, Versioned, checked_key

logger = logging.getLogger(__name__)


# A write goes to a temporary file beside its object first, then is linked or renamed into place.
TEMP_PREFIX, TEMP_SUFFIX = ".tmp-", ".part"
# Conditional writes serialize on a lock file per key in this folder (hidden: no key starts with a dot).
LOCKS_DIR = ".locks"
_TEMP_COUNTER = itertools.count()


def remove_stale_files(paths: Iterable[Path], max_age: float) -> int:
    """Remove the regular files among `paths` last modified more than `max_age` seconds ago; how many."""
    removed = 0
    cutoff = time.time() - max_age
    for path in paths:
        try:
            st = path.lstat()
            if stat.S_ISREG(st.st_mode) and st.st_mtime < cutoff:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            continue  # another process cleaned it first
        except OSError as exc:
            logger.warning("Cannot remove the stale temporary file %s: %s", path, exc.strerror)
    return removed


class _Slice(io.RawIOBase):
    """At most `remaining` bytes of an open file, from where it stands."""

    def __init__(self, fh: BinaryIO, remaining: int) -> None:
        self._fh = fh
        self._remaining = remaining

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._fh.read(min(len(buffer), self._remaining))
        buffer[: len(data)] = data
        self._remaining -= len(data)
        return len(data)

    def close(self) -> None:
        self._fh.close()
        super().close()


def _stored(key: str, st: os.stat_result) -> StoredObject:
    modified = datetime.fromtimestamp(st.st_mtime, UTC)
    return StoredObject(key, st.st_size, modified, etag=f"{st.st_size:x}-{st.st_mtime_ns:x}")


class LocalStorage(Storage):
    parallel_reads = 1
    reads_out_of_process = True
    takes_sources = True

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    @property
    def identity(self) -> str:
        return f"file://{self.root}"

    def _path(self, key: str) -> Path:
        checked = checked_key(key)
        if not self._may_link(checked):
            return self.root / checked  # plain segments under the resolved root: nothing to resolve
        path = (self.root / checked).resolve()
        if self.root not in path.parents:
            raise NotFound(f"No such object: {key}")
        return path

    def _may_link(self, key: str) -> bool:
        """Whether a segment of `key` is a symlink (or cannot be told): only then is the path resolved.

        One lstat a segment instead of resolve()'s one for each segment of the root as well (a reload
        looks up every object three times).
        """
        current = str(self.root)
        for part in key.removesuffix("/").split("/"):
            current = f"{current}/{part}"
            try:
                if stat.S_ISLNK(os.lstat(current).st_mode):
                    return True
            except FileNotFoundError:
                return False  # nothing below it exists: no link to follow
            except (OSError, ValueError):
                return True
        return False

    def _temp_beside(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX)
        os.close(fd)
        return Path(name)

    @staticmethod
    def _write_temp(path: Path, data: bytes) -> Path:
        """`data` in a new temporary file beside `path` (its folder made if missing): one create, one write.

        A reload writes a sidecar and a record for every file another tool placed; mkstemp's reopen and a
        mkdir attempt per write cost more than reading a small distribution.
        """
        name = (
            path.parent / f"{TEMP_PREFIX}{os.getpid()}-{threading.get_native_id()}-{next(_TEMP_COUNTER)}{TEMP_SUFFIX}"
        )
        try:
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        except BaseException:
            os.close(fd)
            name.unlink(missing_ok=True)
            raise
        os.close(fd)
        return name

    def remove_stale_temporary_files(self, max_age: float) -> int:
        # Only files no write has touched for max_age: another process may be writing a younger one.
        return remove_stale_files(self.root.rglob(f"{TEMP_PREFIX}*{TEMP_SUFFIX}"), max_age)

    def put_new(
        self, key: str, source: Path, sha256: str | None = None, *, movable: bool = False, synced: bool = False
    ) -> bool:
        # A package file is on disk before it is acknowledged: fsync'd before it gets its name.
        if movable:
            linked = self._link_in_place(key, source, synced)
            if linked is not None:
                return linked
        return self._create(key, lambda tmp: shutil.copyfile(source, tmp), durable=True)

    def _link_in_place(self, key: str, source: Path, synced: bool) -> bool | None:
        """Give `source` itself the key's name (no copy, no temporary file); None if it is on another file system.

        Its bytes are on disk before it has the name: synced here unless the caller did (`synced`).
        """
        path = self._path(key)
        try:
            if not synced:
                with open(source, "rb") as fh:
                    os.fsync(fh.fileno())
            try:
                os.link(source, path)  # as in _create: refuses an existing target
            except FileNotFoundError:
                # The project's folder, made when missing: a mkdir per upload costs as much as a new file here.
                path.parent.mkdir(parents=True, exist_ok=True)
                os.link(source, path)
            return True
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno == errno.EXDEV:
                return None
            raise BackendUnavailable(f"Cannot write {key} to storage: {exc.strerror}") from exc

    def _create(self, key: str, fill: Callable[[Path], object], durable: bool) -> bool:
        """Write a new object through a temporary file that `fill` writes; False if the key exists."""
        path = self._path(key)
        tmp = self._temp_beside(path)
        try:
            fill(tmp)
            if durable:
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
        self._place(key, data, os.replace)

    def _place(self, key: str, data: bytes, place: Callable[[Path, Path], None]) -> bool:
        """`data` written beside the object, then put in place by `place` (False: link() found an object there)."""
        path = self._path(key)
        try:
            tmp = self._write_temp(path, data)
        except OSError as exc:
            raise BackendUnavailable(f"Cannot write {key} to storage: {exc.strerror}") from exc
        renamed = False
        try:
            place(tmp, path)
            renamed = place is os.replace
            return True
        except FileExistsError:
            return False
        except OSError as exc:
            raise BackendUnavailable(f"Cannot write {key} to storage: {exc.strerror}") from exc
        finally:
            if not renamed:  # a rename took the temporary name with it; a link leaves it
                tmp.unlink(missing_ok=True)

    def read_versioned(self, key: str, limit: int = 16 * 1024 * 1024) -> Versioned | None:
        try:
            with open(self._path(key), "rb") as fh:
                # As much as the file holds, and a byte more (more only if it grew): a read of `limit` would take,
                # and give back, that much memory for each small state object (16 µs, more than reading it).
                size = os.fstat(fh.fileno()).st_size
                data = fh.read(min(size, limit) + 1)
                if size < len(data) <= limit:  # it grew since: the rest, up to the limit
                    data += fh.read(limit + 1 - len(data))
        except (FileNotFoundError, IsADirectoryError):
            return None
        if len(data) > limit:
            raise InvalidInput(f"{key} is larger than {limit} bytes: not a state object of this index")
        # The token is the content's hash: os.replace swaps whole files, so a read sees one version.
        return Versioned(data, hashlib.sha256(data).hexdigest())

    @contextlib.contextmanager
    def _key_lock(self, key: str) -> Iterator[None]:
        """An exclusive lock on one key among every process sharing this folder (flock on a lock file)."""
        locks = self.root / LOCKS_DIR
        locks.mkdir(exist_ok=True)
        with open(locks / hashlib.sha256(key.encode()).hexdigest()[:40], "a+b") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def put_if(self, key: str, data: bytes, token: str | None) -> bool:
        if token is None:
            # Create-if-absent needs no lock (nor a lock file per key): link() is atomic.
            return self._place(key, data, os.link)
        try:
            with self._key_lock(key):
                current = self.read_versioned(key)
                if (current.token if current else None) != token:
                    return False
                self.put_bytes(key, data)
                return True
        except OSError as exc:
            raise BackendUnavailable(f"Cannot write {key} to storage: {exc.strerror}") from exc

    def open(self, key: str, start: int = 0, end: int | None = None) -> BinaryIO:
        try:
            fh = open(self._path(key), "rb")  # noqa: SIM115 - the caller closes the stream
        except (FileNotFoundError, IsADirectoryError) as exc:
            raise NotFound(f"No such object: {key}") from exc
        fh.seek(start)
        if end is None:
            return fh
        return cast(BinaryIO, io.BufferedReader(_Slice(fh, end - start + 1)))

    def stat(self, key: str) -> StoredObject | None:
        try:
            st = self._path(key).stat()
        except (FileNotFoundError, NotFound):
            return None
        if not stat.S_ISREG(st.st_mode):
            # A project folder is a key prefix, not an object.
            return None
        return _stored(key, st)

    def delete(self, key: str) -> None:
        # A folder is a key prefix, not an object: nothing to delete.
        with contextlib.suppress(IsADirectoryError):
            self._path(key).unlink(missing_ok=True)

    def list(self, prefix: str = "") -> Iterator[StoredObject]:
        # Only the folder the prefix names (or the one its last segment begins in) is walked.
        folder = prefix.rpartition("/")[0]
        try:
            start = self._path(folder + "/") if folder else self.root
        except NotFound:
            return  # no key starts with a prefix that is no path
        for dirpath, dirs, files in os.walk(start):
            # Dot-folders hold no keys (the key locks); pruned in place, os.walk does not enter them. Sorted, as S3
            # lists keys: a reload finds `_ppc/` before the folders of lowercase project names.
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                if name.startswith(".tmp-"):
                    continue
                path = Path(dirpath) / name
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    try:
                        st = path.stat()
                    except FileNotFoundError:
                        continue  # deleted while the folder was walked
                    yield _stored(key, st)

    def check_health(self) -> None:
        if not os.access(self.root, os.W_OK):
            raise BackendUnavailable(f"Storage folder {self.root} is not writable")
        # A real listing (one entry), as a reload makes: access() alone passes for root on a broken mount.
        try:
            with os.scandir(self.root) as entries:
                next(entries, None)
        except OSError as exc:
            raise BackendUnavailable(f"Storage folder {self.root} cannot be listed: {exc.strerror}") from exc
