"""pypicloud's file storage: `<dir>/<normalized name>/<version>/<filename>` with a JSON `<filename>.meta` beside it."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from functools import partial
from pathlib import Path

from packaging.utils import canonicalize_version

from pypicloud_lite.errors import InvalidInput
from pypicloud_lite.importing.peer import (
    MAX_SUMMARY,
    MAX_UPLOADER,
    Found,
    PeerFile,
    Skipped,
    clean_text,
    explain_filename,
    mtime,
    open_regular,
    read_json,
    read_tree,
)
from pypicloud_lite.naming import normalize

logger = logging.getLogger(__name__)

META_SUFFIX = ".meta"
# pypicloud writes five short fields; anything larger is not one of its sidecars.
META_MAX_BYTES = 64 * 1024


def read_pypicloud_local(root: Path) -> Iterator[Found]:
    """Every file of a pypicloud `storage.dir`, with the uploader and summary of its `.meta` sidecar.

    Upload time: the file's mtime, as pypicloud's own reload takes it. Leftover temporary files of a
    write (`.<filename>.<uid>`, `.metadata.<uid>`) are skipped, which pypicloud itself does not do.
    """
    return read_tree(root, partial(_entry, root))


def _entry(root: Path, path: Path) -> Found | None:
    source = str(path.relative_to(root))
    if path.name.endswith(META_SUFFIX):
        # Read with its file; one whose file is gone is worth a line.
        exists = path.with_name(path.name.removesuffix(META_SUFFIX)).exists()
        return None if exists else Skipped(source, "a .meta sidecar without its file")
    folders = path.relative_to(root).parts[:-1]
    if len(folders) != 2:
        return Skipped(source, "not <name>/<version>/<filename>, the layout of pypicloud's file storage")
    dist = explain_filename(path.name)
    if isinstance(dist, str):
        return Skipped(source, dist)
    name, version = folders
    if normalize(name) != dist.project:
        return Skipped(source, f"its folder {name!r} does not name the project of {path.name!r} ({dist.project!r})")
    if canonicalize_version(version) != canonicalize_version(str(dist.version)):
        return Skipped(source, f"its folder {version!r} does not name the version of {path.name!r}")
    meta = _read_meta(path.with_name(path.name + META_SUFFIX))
    return PeerFile(
        filename=path.name,
        source=source,
        # pypicloud keeps only the normalized name: the file's metadata names a new project.
        display_name=None,
        upload_time=mtime(path),
        uploader=clean_text(meta.get("uploader"), MAX_UPLOADER),
        summary=clean_text(meta.get("summary"), MAX_SUMMARY),
        open=partial(open_regular, path),
    )


def _read_meta(path: Path) -> dict[str, object]:
    """The sidecar's fields; none when it is missing (pypicloud before 0.5) or not a small JSON object."""
    if not path.exists():
        return {}
    try:
        meta = read_json(path, META_MAX_BYTES)
    except InvalidInput as exc:
        logger.warning("ignoring the sidecar %s", exc.message)
        return {}
    if not isinstance(meta, dict):
        logger.warning("ignoring the sidecar %s: not a JSON object", path)
        return {}
    return meta
