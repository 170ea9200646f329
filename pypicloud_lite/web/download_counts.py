"""Download counts kept in memory and added to the shared cache every few seconds, one write per batch.

A download costs a dictionary increment, not a write transaction: a thread of this process flushes what
was counted every FLUSH_SECONDS (and once more at exit). Counts not yet flushed are added to what the cache
says when this process shows them, so a page shows its own process's downloads at once; other servers'
appear after their next flush. A process killed outright loses at most its last few seconds of counts.
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections import Counter

from pypicloud_lite.cache.base import DownloadCounts
from pypicloud_lite.errors import PypicloudLiteError

logger = logging.getLogger(__name__)

FLUSH_SECONDS = 5.0


class DownloadCounter:
    def __init__(self, cache: DownloadCounts, flush_seconds: float | None = None) -> None:
        self._cache = cache
        self._flush_seconds = flush_seconds
        self._pending: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        # Serializes flushes: the timer's and an explicit one (tests, exit) never send the same batch twice.
        self._flushing = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def count(self, project: str, filename: str) -> None:
        with self._lock:
            self._pending[(project, filename)] += 1
            if self._thread is None:
                self._start()

    def _start(self) -> None:
        # Started by the first download, so processes that serve none (CLI, tests) run no thread.
        self._thread = threading.Thread(target=self._run, name="ppc-download-counts", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def _run(self) -> None:
        every = FLUSH_SECONDS if self._flush_seconds is None else self._flush_seconds
        while not self._stop.wait(every):
            self.flush()

    def flush(self) -> int:
        """Add what was counted since the last flush to the cache; returns how many downloads it sent."""
        with self._flushing:
            with self._lock:
                batch, self._pending = self._pending, Counter()
            if not batch:
                return 0
            try:
                self._cache.add_downloads(batch)
            except (PypicloudLiteError, OSError):
                # Kept for the next flush: a cache outage delays counts, it does not drop them.
                with self._lock:
                    self._pending.update(batch)
                logger.warning("download counts not saved yet (%d downloads): the cache failed", batch.total())
                return 0
            return batch.total()

    def counts(self, project: str) -> dict[str, int]:
        """Each file's downloads: the cache's, plus this process's not flushed yet."""
        counted = self._cache.download_counts(project)
        with self._lock:
            for (name, filename), added in self._pending.items():
                if name == project:
                    counted[filename] = counted.get(filename, 0) + added
        return counted

    def close(self) -> None:
        self._stop.set()
        try:
            self.flush()
        except Exception:
            logger.warning("download counts not saved at exit", exc_info=True)
