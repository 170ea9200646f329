"""The Storage interface: where package files and their metadata sidecars live."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from pypicloud_lite.errors import NotFound


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    last_modified: datetime
    # Changes whenever the object's bytes change (S3 ETag; size and mtime locally).
    etag: str = ""
    # Known without reading the object (an S3 SHA-256 checksum), else None.
    sha256: str | None = None


@dataclass(frozen=True)
class DownloadURL:
    """Where a client can fetch an object itself, and for how many seconds it may keep using that URL (0: once)."""

    url: str
    max_age: int


@dataclass(frozen=True)
class Versioned:
    """A small object's bytes and the version token a conditional write of it compares against."""

    data: bytes
    token: str


def checked_key(key: str) -> str:
    """A key made of plain path segments: no '..', '.', empty segment, leading '/' or backslash.

    A trailing '/' names a prefix (a project folder): valid, and never an object.
    """
    if not key or "\\" in key or any(part in ("", ".", "..") for part in key.removesuffix("/").split("/")):
        raise NotFound(f"No such object: {key}")
    return key


class Storage(ABC):
    """Keys are `<normalized project>/<filename>`; objects are immutable once written."""

    # How many objects a reload reads at once, at most (None: its pypi.reload_workers). A remote read
    # waits on the network, so many pay off; a local one is CPU under the GIL, so more threads only
    # take turns with the threads serving pages.
    parallel_reads: int | None = None
    # Reading an object is CPU (hashing, parsing), not waiting: a large reload reads them in a process of its
    # own, at a lower priority, so the server's request threads keep their GIL and their cores. The storage
    # is then pickled to that process: only a storage that pickles sets this.
    reads_out_of_process: bool = False
    # Whether a movable put_new makes the source file itself the object (LocalStorage, same file system):
    # then an upload's spool file is worth syncing to disk early (spool.py presync).
    takes_sources: bool = False

    @property
    @abstractmethod
    def identity(self) -> str:
        """Which bucket or folder this is: a copy of it (a replica, a restore) has another identity."""

    @abstractmethod
    def put_new(
        self, key: str, source: Path, sha256: str | None = None, *, movable: bool = False, synced: bool = False
    ) -> bool:
        """Store `source` under `key` unless an object is already there.

        `sha256`, when the caller knows it, is kept with the object where a
        reload can read it without downloading the object. `movable`: the
        caller never changes `source` again (an upload's spool file), so a
        backend may make it the object itself instead of copying it.
        `synced`: the caller has fsync'd `source` (an upload's spool file,
        synced in the background while it was checked): made the object
        itself, it need not be synced again.

        Returns False (and changes nothing) when the key exists: two racing
        writers of one key cannot overwrite each other.
        """

    @abstractmethod
    def put_bytes(self, key: str, data: bytes) -> None:
        """Store a small derived object (a metadata sidecar), replacing any previous one."""

    @abstractmethod
    def read_versioned(self, key: str, limit: int = 16 * 1024 * 1024) -> Versioned | None:
        """A small object's bytes (NotFound past `limit`) and its version token, or None if absent."""

    @abstractmethod
    def put_if(self, key: str, data: bytes, token: str | None) -> bool:
        """Write `data` under `key` only if the object is still the version `token` names (None: still absent).

        Returns False, writing nothing, when another writer changed (or created, or deleted) it since:
        the caller reads again and retries, so concurrent read-modify-writes never lose one another.
        """

    @abstractmethod
    def open(self, key: str, start: int = 0, end: int | None = None) -> BinaryIO:
        """A readable stream of the object's bytes start..end (inclusive; None: to the end); NotFound if absent."""

    @abstractmethod
    def stat(self, key: str) -> StoredObject | None:
        """Size, time, etag and (if the backend keeps it) sha256 of the object, or None if absent."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; removing an absent object is not an error."""

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[StoredObject]:
        """Every object whose key starts with `prefix`."""

    def download_url(self, key: str, filename: str) -> DownloadURL | None:
        """A URL the client may fetch the object from directly, or None to stream it."""
        return None

    def remove_stale_temporary_files(self, max_age: float) -> int:
        """Remove what a crashed writer left behind, older than `max_age` seconds; how many were removed."""
        return 0

    @abstractmethod
    def check_health(self) -> None:
        """Raise BackendUnavailable if storage cannot be used."""
