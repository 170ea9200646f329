"""pypiserver's package folder: distributions anywhere below it, named by their filenames, no other records."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path

from pypicloud_lite.importing.peer import Found, PeerFile, Skipped, explain_filename, mtime, open_regular, read_tree


def read_pypiserver(root: Path) -> Iterator[Found]:
    """Every distribution below `root`, flat or nested, as pypiserver lists them (dot paths are hidden).

    pypiserver keeps no upload time, uploader or summary: the mtime is the upload time, the rest comes
    from the file. GPG signatures (`.asc`) are not distributions.
    """
    return read_tree(root, partial(_entry, root))


def _entry(root: Path, path: Path) -> Found:
    source = str(path.relative_to(root))
    if path.name.endswith(".asc"):
        return Skipped(source, "a GPG signature (.asc), not a distribution")
    dist = explain_filename(path.name)
    if isinstance(dist, str):
        return Skipped(source, dist)
    return PeerFile(
        filename=path.name,
        source=source,
        display_name=None,
        upload_time=mtime(path),
        uploader=None,
        summary=None,
        open=partial(open_regular, path),
    )
