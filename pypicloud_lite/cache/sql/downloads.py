"""Download counts as rows of the download-counts table, added to a batch at a time."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from contextlib import AbstractContextManager

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pypicloud_lite.cache.base import DownloadCounts
from pypicloud_lite.db.tables import DownloadCountRow

_ROW = DownloadCountRow


class SQLDownloads(DownloadCounts):
    """One write transaction per batch: an UPDATE per file, an INSERT for a file counted the first time."""

    @abstractmethod
    def _session(self, write: bool = False) -> AbstractContextManager[Session]:
        """A transaction on the cache's database."""

    def add_downloads(self, counts: Mapping[tuple[str, str], int]) -> None:
        try:
            self._add(counts)
        except IntegrityError:
            # Another server inserted one of these files' first row meanwhile: now every row exists.
            self._add(counts)

    def _add(self, counts: Mapping[tuple[str, str], int]) -> None:
        with self._session(write=True) as session:
            # In key order: two servers flushing at once lock rows in the same order (no deadlock).
            for (project, filename), added in sorted(counts.items()):
                where = (_ROW.project == project) & (_ROW.filename == filename)
                done = session.execute(update(_ROW).where(where).values(count=_ROW.count + added))
                if getattr(done, "rowcount", 0) == 0:
                    session.execute(insert(_ROW).values(project=project, filename=filename, count=added))

    def download_counts(self, project: str) -> dict[str, int]:
        with self._session() as session:
            rows = session.execute(select(_ROW.filename, _ROW.count).where(_ROW.project == project))
            return {filename: int(count) for filename, count in rows}
