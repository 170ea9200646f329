"""The Cache interface: the metadata every index request is answered from."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection
from datetime import datetime

from pypicloud_lite.models import CdnBatch, CdnChange, CdnRecord, PackageFile, Project

logger = logging.getLogger(__name__)


class Cache(ABC):
    """Every change bumps the global serial and the project's serial in the same write.

    With the CDN outbox on, every change also records what the CDN must purge, in
    that same write, and `on_cdn_change` runs once the change is committed.
    """

    on_cdn_change: Callable[[], None] | None = None

    def _cdn_changed(self) -> None:
        """Tell the CDN flusher (it claims the window); the change is committed whatever happens here."""
        if self.on_cdn_change is None:
            return
        try:
            self.on_cdn_change()
        except Exception:
            # The change sits in the outbox: a later window or the server's timer purges it.
            logger.warning("could not schedule the CDN flush", exc_info=True)

    @abstractmethod
    def get_file(self, filename: str) -> PackageFile | None:
        """The file stored under this filename (filenames are unique index-wide)."""

    @abstractmethod
    def add_file(self, file: PackageFile, display_name: str) -> tuple[PackageFile, bool]:
        """Record a new file, creating its project if needed: (the stored row, whether it was added).

        If a row already exists under the filename (a racing upload), it is
        returned unchanged and nothing is written: the caller compares hashes.
        """

    @abstractmethod
    def delete_file(self, filename: str) -> bool:
        """Remove a file's row; False if there was none. The project is kept."""

    @abstractmethod
    def set_yanked(self, project: str, version: str, yanked: bool, reason: str | None) -> int:
        """Yank or unyank every file of one release; returns how many files changed."""

    @abstractmethod
    def set_project_status(self, name: str, status: str, reason: str | None) -> bool:
        """Set a project's PEP 792 status; False if there is no such project."""

    @abstractmethod
    def get_project(self, name: str) -> Project | None:
        """The project with this normalized name."""

    @abstractmethod
    def list_projects(self) -> list[Project]:
        """Every project, ordered by normalized name."""

    @abstractmethod
    def search_projects(
        self, query: str, offset: int, limit: int, only: Collection[str] | None = None
    ) -> tuple[list[Project], int]:
        """A page of projects whose normalized name contains `query` (and is in `only`), and the total matching."""

    @abstractmethod
    def counts(self) -> tuple[int, int]:
        """(projects, files), counted by the backend without loading the rows (the admin status panel)."""

    @abstractmethod
    def files_of_projects(self, names: list[str]) -> list[PackageFile]:
        """Every file of these projects (one query for a page of projects)."""

    @abstractmethod
    def project_files(self, name: str) -> list[PackageFile]:
        """Every file of one project, ordered by filename."""

    # -- reload ----------------------------------------------------------------

    @abstractmethod
    def all_files(self) -> list[PackageFile]:
        """Every file row: the cache side of a reload's diff."""

    @abstractmethod
    def apply_reload(
        self, added: list[PackageFile], changed: list[PackageFile], removed: list[str], etags: dict[str, str]
    ) -> None:
        """Apply a reload's diff at once: readers see the index before it or after it, never between.

        `added` rows create their projects; `changed` rows replace the rows of their
        filenames; `removed` rows are deleted; `etags` records storage ETags of rows
        that lacked one. One serial bump for the whole diff.
        """

    @abstractmethod
    def update_details(self, file: PackageFile, display_name: str | None = None) -> bool:
        """Fill in a listed file's hash and metadata, if its row still has the same storage ETag.

        `display_name`: also name the project so, if it still has the normalized name that
        `apply_reload` gives the projects it creates (a reload learns names from metadata).
        """

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

    # -- CDN outbox --------------------------------------------------------------

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

    @abstractmethod
    def serial(self) -> int:
        """The index-wide change serial (0 for an index that never changed)."""

    @abstractmethod
    def check_health(self) -> None:
        """Raise BackendUnavailable if the cache cannot be used."""

    @abstractmethod
    def close(self) -> None:
        """Release connections and pools."""
