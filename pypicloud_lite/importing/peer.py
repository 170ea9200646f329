"""What every peer layout yields (a file to import, or a skip and why), and the guarded reads they share."""

from __future__ import annotations

import json
import os
import stat
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from pypicloud_lite.errors import InvalidInput, InvalidUpload
from pypicloud_lite.naming import DistFilename, parse_filename

# Longer text from a peer's records is not a summary or a user name but noise (PyPI's summary limit is 512).
MAX_SUMMARY = 512
MAX_UPLOADER = 200


@dataclass(frozen=True)
class PeerFile:
    """A distribution another index holds, with what it recorded about it (None: it recorded nothing)."""

    filename: str
    # Where it was found (a path or key): for the report.
    source: str
    display_name: str | None
    upload_time: datetime | None
    uploader: str | None
    summary: str | None
    open: Callable[[], BinaryIO]


@dataclass(frozen=True)
class Skipped:
    """Something in the peer's layout that is not imported, and why."""

    source: str
    reason: str


Found = PeerFile | Skipped


def explain_filename(filename: str) -> DistFilename | str:
    """The distribution a filename names, or why it names none."""
    try:
        return parse_filename(filename)
    except InvalidUpload as exc:
        return exc.message


def clean_text(value: object, limit: int) -> str | None:
    """A peer's text field: a short single-line string, else None (no control characters from a hostile record)."""
    if not isinstance(value, str):
        return None
    value = " ".join(value.split())
    if not value or len(value) > limit or any(unicodedata.category(ch).startswith("C") for ch in value):
        return None
    return value


def mtime(path: Path) -> datetime:
    """When a file was last written, in UTC: what pypiserver and pypicloud's file storage show as its upload time."""
    return datetime.fromtimestamp(path.lstat().st_mtime, UTC)


def open_regular(path: Path) -> BinaryIO:
    """Open a regular file for reading, not through a symbolic link, and never block on a FIFO or a device."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path} is not a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_json(path: Path, limit: int) -> Any:
    """A JSON file of at most `limit` bytes; InvalidInput saying what is wrong with it otherwise."""
    try:
        with open_regular(path) as fh:
            data = fh.read(limit + 1)
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    if len(data) > limit:
        raise InvalidInput(f"{path}: larger than {limit} bytes, not read")
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise InvalidInput(f"{path}: not JSON ({exc})") from exc


def read_tree(root: Path, entry: Callable[[Path], Found | None]) -> Iterator[Found]:
    """`entry(path)` of every regular file under `root` (sorted; None: nothing to report), never following a
    symbolic link out of it. A file or folder whose name starts with "." is hidden: skipped, not entered."""
    if not root.is_dir():
        raise InvalidInput(f"{root}: not a folder")
    for folder, dirnames, filenames in os.walk(root):
        here = Path(folder)
        dirnames.sort()
        for name in list(dirnames):
            path = here / name
            reason = None
            if path.is_symlink():
                reason = "a symbolic link to a folder: not followed"
            elif name.startswith("."):
                reason = "a dot folder: hidden, not read"
            if reason:
                dirnames.remove(name)
                yield Skipped(str(path.relative_to(root)), reason)
        for name in sorted(filenames):
            path = here / name
            mode = path.lstat().st_mode
            if name.startswith("."):
                yield Skipped(str(path.relative_to(root)), "a dot file: hidden, or a temporary file of a write")
            elif stat.S_ISLNK(mode):
                yield Skipped(str(path.relative_to(root)), "a symbolic link: not followed")
            elif not stat.S_ISREG(mode):
                yield Skipped(str(path.relative_to(root)), "not a regular file")
            elif (found := entry(path)) is not None:
                yield found
