"""Import what a peer layout yields into the index, file by file: one outcome each, and the import goes on."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass

from pypicloud_lite.errors import NotFound, PypicloudLiteError
from pypicloud_lite.importing.peer import Found, PeerFile, Skipped
from pypicloud_lite.naming import parse_filename
from pypicloud_lite.service import PackageIndex

logger = logging.getLogger(__name__)

IMPORTED, EXISTING, SKIPPED, FAILED = "imported", "existing", "skipped", "failed"
WOULD_IMPORT = "would import"


@dataclass(frozen=True)
class Outcome:
    source: str
    status: str
    reason: str = ""

    def line(self) -> str:
        return f"{self.source}: {self.status}" + (f": {self.reason}" if self.reason else "")


def summary(counts: Counter[str], dry_run: bool = False) -> str:
    """`2 imported, 1 existing, 3 skipped, 0 failed` (`would import` in a dry run)."""
    first = WOULD_IMPORT if dry_run else IMPORTED
    return ", ".join(f"{counts[status]} {status}" for status in (first, EXISTING, SKIPPED, FAILED))


def import_files(
    index: PackageIndex, found: Iterable[Found], *, dry_run: bool = False, uploader: str | None = None
) -> Iterator[Outcome]:
    """Import each file (`uploader` stands in where the peer recorded none); `dry_run`: say what would happen.

    An identical file already in the index is "existing"; a file the index refuses (other bytes under
    a used filename, a broken archive, a closed project) or cannot read is "failed", and the rest go on.
    """
    for item in found:
        if isinstance(item, Skipped):
            logger.warning("skipped %s: %s", item.source, item.reason)
            yield Outcome(item.source, SKIPPED, item.reason)
        elif dry_run:
            yield Outcome(item.source, EXISTING if _indexed(index, item) else WOULD_IMPORT)
        else:
            yield _import(index, item, uploader)


def _indexed(index: PackageIndex, item: PeerFile) -> bool:
    try:
        index.get_file(parse_filename(item.filename).project, item.filename)
    except NotFound:
        return False
    return True


def _import(index: PackageIndex, item: PeerFile, uploader: str | None) -> Outcome:
    try:
        with closing(item.open()) as content:
            result = index.import_file(
                item.filename,
                content,
                upload_time=item.upload_time,
                uploader=item.uploader or uploader,
                display_name=item.display_name,
                summary=item.summary,
            )
    except PypicloudLiteError as exc:
        logger.warning("import of %s failed: %s", item.source, exc.message)
        return Outcome(item.source, FAILED, exc.message)
    except OSError as exc:
        logger.warning("import of %s failed: %s", item.source, exc)
        return Outcome(item.source, FAILED, f"cannot be read ({exc})")
    return Outcome(item.source, IMPORTED if result.created else EXISTING)
