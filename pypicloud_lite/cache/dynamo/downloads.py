"""Download counts as items of the projects table's "downloads#<project>" partitions, added to with ADD."""

from __future__ import annotations

from collections.abc import Mapping

from pypicloud_lite.cache.base import DownloadCounts
from pypicloud_lite.cache.dynamo.items import translated
from pypicloud_lite.cache.dynamo.tables import DynamoTables

PARTITION_PREFIX = "downloads#"


class DynamoDownloads(DownloadCounts):
    """One UpdateItem per file and batch: ADD is atomic, so servers flushing at once never lose a count."""

    t: DynamoTables

    @translated
    def add_downloads(self, counts: Mapping[tuple[str, str], int]) -> None:
        d = self.t.downloads
        for (project, filename), added in sorted(counts.items()):
            d(f"{PARTITION_PREFIX}{project}", filename).update(actions=[d.downloads.add(added)])

    @translated
    def download_counts(self, project: str) -> dict[str, int]:
        items = self.t.downloads.query(f"{PARTITION_PREFIX}{project}", consistent_read=True)
        return {item.name: int(item.downloads) for item in items}
