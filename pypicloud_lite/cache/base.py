"""The Cache interface: the metadata every index request is answered from, and the one path every change takes.

A backend implements four small roles:

* `CacheReader`: what the views, the page cache and a reload's diff read;
* `CacheWriter`: the write side. `apply(change)` and `apply_reload(changes)` are the
  only ways to change the index: the backend commits the change, the serial bump and
  the CDN outbox entry in one transaction, then every subscribed listener (the page
  cache, the CDN flusher) hears of it in this process;
* `Leases`: named, expiring locks with progress (the reload, the CDN window and flush);
* `CdnOutbox`: what the CDN flusher claims and sends.
"""

from __future__ import annotations

import logging
import secrets
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Mapping
from datetime import datetime

from pypicloud_lite.config import CacheSettings
from pypicloud_lite.models import (
    Applied,
    CdnBatch,
    CdnChange,
    CdnRecord,
    Change,
    HeldLease,
    LeaseRead,
    PackageFile,
    Project,
    ReloadChanges,
)

logger = logging.getLogger(__name__)

ChangeListener = Callable[[Applied], None]
# The leases that Leases.claim_once takes (the lock names' column holds 64 characters).
ONCE_PREFIX = "once:"


class CacheReader(ABC):
    """Reads; the serial names the state they read."""

    @abstractmethod
    def get_file(self, filename: str) -> PackageFile | None:
        """The file stored under this filename (filenames are unique index-wide)."""

    @abstractmethod
    def get_project(self, name: str) -> Project | None:
        """The project with this normalized name."""

    @abstractmethod
    def list_projects(self) -> list[Project]:
        """Every project, ordered by normalized name."""

    def projects_changed_since(self, serial: int) -> tuple[list[Project], int] | None:
        """The projects whose serial is above `serial` (every change stamps the projects it touches), in no particular
        order, and how many projects there are, read at one moment: what a listing read at `serial` needs to be
        current again, when the count says no project left. None where that costs about a whole listing: the caller
        lists again."""
        return None

    @abstractmethod
    def search_projects(
        self, query: str, offset: int, limit: int, only: Collection[str] | None = None
    ) -> tuple[list[Project], int]:
        """A page of projects whose normalized name contains `query` (and is in `only`), and the total matching."""

    @abstractmethod
    def counts(self) -> tuple[int, int]:
        """(projects, files), counted by the backend without loading the rows (the admin status panel)."""

    @abstractmethod
    def project_files(self, name: str) -> list[PackageFile]:
        """Every file of one project, ordered by filename."""

    @abstractmethod
    def files_of_projects(self, names: list[str]) -> list[PackageFile]:
        """Every file of these projects (one query for a page of projects)."""

    @abstractmethod
    def all_files(self) -> list[PackageFile]:
        """Every file row: the cache side of a reload's diff."""

    @abstractmethod
    def serial(self) -> int:
        """The index-wide change serial (0 for an index that never changed)."""


class CacheWriter(ABC):
    """The one change path: commit (with the serial and the outbox), then tell this process's listeners."""

    def __init__(self) -> None:
        self._listeners: list[ChangeListener] = []
        self._listeners_lock = threading.Lock()

    def subscribe(self, listener: ChangeListener) -> None:
        """Call `listener` after every change committed through this cache object."""
        with self._listeners_lock:
            self._listeners.append(listener)

    def apply(self, change: Change) -> Applied:
        """Apply one change; the serial moves (and the CDN outbox records it) only if something changed."""
        applied = self._commit(change)
        self.tell(applied)
        return applied

    def apply_reload(self, changes: ReloadChanges) -> Applied:
        """Apply a reload's diff at once: readers see the index before it or after it, never between."""
        if not changes:
            return Applied(None)
        applied = self._commit_reload(changes)
        self.tell(applied)
        return applied

    def tell(self, applied: Applied) -> None:
        """Tell this process's listeners of a committed change: one applied here, or by a reload's fill process."""
        if not applied.changed:
            return
        with self._listeners_lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(applied)
            except Exception:
                # The change is committed whatever a listener does: a missed CDN window is
                # flushed from the outbox by a later one, a page cache re-reads the serial.
                logger.warning("a change listener failed", exc_info=True)

    @abstractmethod
    def _commit(self, change: Change) -> Applied:
        """Write one change with its serial bump and outbox entry, atomically; no listeners."""

    @abstractmethod
    def _commit_reload(self, changes: ReloadChanges) -> Applied:
        """Write a non-empty reload diff under one serial; no listeners."""


class Leases(ABC):
    """Named leases held by one holder until they expire or are released, with the holder's progress."""

    @abstractmethod
    def acquire_lock(self, name: str, holder: str, ttl: float) -> bool:
        """Take (or extend, for the same holder) a named lease; False if someone else holds it."""

    @abstractmethod
    def update_lock(self, name: str, holder: str, ttl: float, progress: dict[str, object]) -> bool:
        """Extend the lease and record its holder's progress; False if `holder` no longer holds it."""

    @abstractmethod
    def release_lock(self, name: str, holder: str, progress: dict[str, object]) -> None:
        """End the lease, keeping the final progress (the last result) readable."""

    @abstractmethod
    def lock_state(self, name: str) -> tuple[bool, dict[str, object] | None]:
        """(held now, the last recorded progress)."""

    def claim_once(self, key: str, ttl: float) -> bool:
        """True for the first claim of `key` (at most 56 characters) in every process sharing this cache, False
        while that claim lasts (`ttl` seconds): a lease that nobody else can take, held by a holder nobody knows."""
        return self.acquire_lock(f"{ONCE_PREFIX}{key}", secrets.token_hex(8), ttl)


class CdnOutbox(ABC):
    """The purges that changes recorded, claimed in batches by the CDN flusher (pypicloud_lite/cdn.py)."""

    @abstractmethod
    def outbox_pending(self, limit: int) -> list[CdnChange]:
        """Recorded changes that no batch has claimed yet, oldest first."""

    @abstractmethod
    def outbox_batch(self) -> CdnBatch | None:
        """The batch claimed but not closed yet (its flush failed or died), with its changes."""

    @abstractmethod
    def open_outbox_batch(self, batch: CdnBatch) -> None:
        """Record `batch` as claimed: its changes leave the pending set. Call it holding the flush lease."""

    @abstractmethod
    def close_outbox_batch(self, batch: CdnBatch, record: CdnRecord) -> None:
        """The invalidation went out: drop the batch and its changes, keep `record` (idempotent)."""

    @abstractmethod
    def cdn_history(self, since: datetime) -> list[CdnRecord]:
        """Records of invalidations sent since then, oldest first."""


class DownloadCounts(ABC):
    """How often each file was downloaded, as the servers counted it."""

    @abstractmethod
    def add_downloads(self, counts: Mapping[tuple[str, str], int]) -> None:
        """Add each (project, filename)'s new downloads: one batch, a few seconds' worth from one process."""

    @abstractmethod
    def download_counts(self, project: str) -> dict[str, int]:
        """Downloads of each file of the project ever counted (deleted files too; never-downloaded ones absent)."""


class Cache(CacheReader, CacheWriter, Leases, CdnOutbox, DownloadCounts):
    """A whole cache backend: every role, plus its lifecycle."""

    # Whether changes are recorded in the CDN outbox: the ini's cdn.*, or the index's CDN (cdn.settle_cdn).
    cdn_outbox: bool = False
    # What build_cache built it from: another process (a reload's fill) opens the same cache with it.
    built_from: CacheSettings | None = None
    # Whether a write runs on this process's CPU (an embedded database) rather than waiting on a server: a
    # thread writing beside one that reads would only take the GIL from it.
    writes_on_the_cpu: bool = False

    def lease_file(self, lease: HeldLease, ttl: float, filename: str, project: str | None = None) -> LeaseRead:
        """Take a filename's lease and read the file's row under it, and `project`'s row when given (an upload
        checks its uploader's permission by it): nothing is read when the lease is not taken.

        A backend with transactions does all of it in one.
        """
        if not self.acquire_lock(lease.name, lease.holder, ttl):
            return LeaseRead(False)
        return LeaseRead(True, self.get_file(filename), self.get_project(project) if project else None)

    @abstractmethod
    def check_health(self) -> None:
        """Raise BackendUnavailable if the cache cannot be used."""

    @abstractmethod
    def close(self) -> None:
        """Release connections and pools."""
