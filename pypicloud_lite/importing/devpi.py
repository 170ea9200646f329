"""devpi-export: `dataindex.json` (dumpversion "1" or "2"), files at `<user>/<index>/<project>/<version>/<file>`."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import partial
from pathlib import Path
from typing import Any

from pypicloud_lite.errors import InvalidInput
from pypicloud_lite.importing.peer import (
    MAX_SUMMARY,
    MAX_UPLOADER,
    Found,
    PeerFile,
    Skipped,
    clean_text,
    explain_filename,
    open_regular,
    read_json,
)
from pypicloud_lite.naming import DistFilename, normalize

DATAINDEX = "dataindex.json"
# An export's index lists every release's metadata (descriptions included): large, but not unbounded.
DATAINDEX_MAX_BYTES = 256 * 1024 * 1024
DUMPVERSIONS = ("1", "2")
_SKIPPED_TYPES = {"doczip": "a devpi documentation zip, not a distribution", "toxresult": "a devpi tox result"}


def load_export(root: Path) -> dict[str, Any]:
    """The export's `dataindex.json`, checked to be one devpi-export writes."""
    data = read_json(root / DATAINDEX, DATAINDEX_MAX_BYTES)
    if not isinstance(data, dict) or not isinstance(data.get("indexes"), dict):
        raise InvalidInput(f"{root / DATAINDEX}: not a devpi export (no indexes)")
    if data.get("dumpversion") not in DUMPVERSIONS:
        raise InvalidInput(
            f"{root / DATAINDEX}: dumpversion {data.get('dumpversion')!r} is not one this import reads "
            f"({', '.join(DUMPVERSIONS)})"
        )
    return data


def _files(index: object) -> list[object]:
    files = index.get("files") if isinstance(index, dict) else None
    return files if isinstance(files, list) else []


def _projects_of(index: object) -> set[str]:
    return {
        normalize(entry["projectname"])
        for entry in _files(index)
        if isinstance(entry, dict) and entry.get("type") == "releasefile" and isinstance(entry.get("projectname"), str)
    }


def _describe(indexes: Mapping[str, object]) -> str:
    return ", ".join(f"{name} ({len(_files(ix))} files)" for name, ix in sorted(indexes.items()))


def choose_indexes(data: dict[str, Any], wanted: str | None) -> list[str]:
    """The indexes to import: `wanted`, or else every stage holding files when no project is in two of them."""
    indexes: dict[str, object] = data["indexes"]
    if wanted is not None:
        if wanted not in indexes:
            raise InvalidInput(f"no index {wanted!r} in this export; it has: {_describe(indexes)}")
        return [wanted]
    stages = {
        name: ix
        for name, ix in indexes.items()
        if isinstance(ix, dict)
        and isinstance(ix.get("indexconfig"), dict)
        and ix["indexconfig"].get("type") != "mirror"
        and _files(ix)
    }
    if not stages:
        raise InvalidInput(f"no index of this export holds uploaded files; it has: {_describe(indexes)}")
    seen: dict[str, str] = {}
    for name in sorted(stages):
        for project in sorted(_projects_of(stages[name])):
            if project in seen:
                raise InvalidInput(
                    f"indexes {seen[project]} and {name} both hold project {project!r}: choose one with --index "
                    f"(the export has: {_describe(indexes)})"
                )
            seen[project] = name
    return sorted(stages)


def read_devpi_export(root: Path, wanted: str | None = None) -> Iterator[Found]:
    """The release files of the chosen indexes (see choose_indexes), with devpi's name, summary and upload log.

    Upload time: the file entry's `last_modified` (what devpi's own import keeps), else its upload log's time.
    """
    data = load_export(root)
    base = root.resolve()
    for name in choose_indexes(data, wanted):
        index = data["indexes"][name]
        projects = _versions_by_project(index.get("projects") if isinstance(index, dict) else None)
        for number, entry in enumerate(_files(index)):
            yield _entry(base, name, projects, number, entry)


def _versions_by_project(projects: object) -> dict[str, dict[str, object]]:
    # Exports from devpi 3.x keyed projects by their own spelling: merged by the normalized name, as devpi does.
    merged: dict[str, dict[str, object]] = {}
    if isinstance(projects, dict):
        for project, versions in projects.items():
            if isinstance(project, str) and isinstance(versions, dict):
                merged.setdefault(normalize(project), {}).update(versions)
    return merged


def _entry(base: Path, index: str, projects: dict[str, dict[str, object]], number: int, entry: object) -> Found:
    if not isinstance(entry, dict) or not isinstance(entry.get("relpath"), str):
        return Skipped(f"{index} files[{number}]", "not a file entry with a relpath")
    relpath: str = entry["relpath"]
    kind = entry.get("type")
    if kind != "releasefile":
        return Skipped(relpath, _SKIPPED_TYPES.get(str(kind), f"of type {kind!r}, not a release file"))
    found = _release_file(base, index, relpath, entry)
    if isinstance(found, str):
        return Skipped(relpath, found)
    path, dist = found
    mapping = _mapping(entry.get("entrymapping"))
    version = entry.get("version") or mapping.get("version")
    release = _mapping(projects.get(dist.project, {}).get(version) if isinstance(version, str) else None)
    upload = _upload_log(entry.get("log"))
    return PeerFile(
        filename=dist.filename,
        source=relpath,
        display_name=clean_text(release.get("name"), MAX_SUMMARY),
        upload_time=_last_modified(mapping.get("last_modified")) or _log_time(upload.get("when")),
        uploader=clean_text(upload.get("who"), MAX_UPLOADER),
        summary=clean_text(release.get("summary"), MAX_SUMMARY),
        open=partial(open_regular, path),
    )


def _release_file(base: Path, index: str, relpath: str, entry: dict[str, Any]) -> tuple[Path, DistFilename] | str:
    """The release file an entry lists, inside the export, or why it is not imported."""
    parts = relpath.split("/")
    if len(parts) != 5 or "/".join(parts[:2]) != index or any(p in ("", ".", "..") or "\\" in p for p in parts):
        return f"not {index}/<project>/<version>/<filename>, where devpi-export puts release files"
    dist = explain_filename(parts[-1])
    if isinstance(dist, str):
        return dist
    if not isinstance(entry.get("projectname"), str) or normalize(entry["projectname"]) != dist.project:
        return f"its entry names project {entry.get('projectname')!r}, its filename {dist.project!r}"
    path = base / relpath
    if not path.resolve().is_relative_to(base):
        return "leads out of the export folder (a symbolic link)"
    if not path.is_file():
        return "listed in dataindex.json but missing from the export"
    return path, dist


def _mapping(value: object) -> dict[str, object]:
    return value if isinstance(value, dict) else {}


def _upload_log(log: object) -> dict[str, object]:
    """The first `upload` record of a file's log (a push copies it along, so it names the first uploader)."""
    if isinstance(log, list):
        for record in log:
            if isinstance(record, dict) and record.get("what") == "upload":
                return record
    return {}


def _last_modified(value: object) -> datetime | None:
    """An RFC 1123 date (`Sat, 05 Dec 2026 17:18:53 GMT`), in UTC."""
    if not isinstance(value, str):
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _log_time(value: object) -> datetime | None:
    """A log's `when`: six integers, UTC (`time.gmtime()[:6]`)."""
    if not isinstance(value, list) or len(value) != 6 or not all(type(v) is int for v in value):
        return None
    try:
        year, month, day, hour, minute, second = value
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except (ValueError, OverflowError):
        return None
