"""What storage records beyond the bytes: a record per file and a state per project, under `_ppc/`.

Every fact the index shows that a file's bytes cannot say lives in storage, written before the
change is acknowledged, so that a cache rebuilt from storage, a replica region fed by the S3 sync
and a restored copy all show the same index:

* `_ppc/files/<project>/<filename>.json`: written when the file is uploaded: upload time, uploader,
  size, hashes and core metadata. Never changed afterwards: a filename never holds other bytes, and
  its upload time never moves. It is the truth about its file.
* `_ppc/seen/<project>.<batch>.json`: the same records for files another tool placed, written when the
  index first sees them (a reload's fill, the S3 sync): one object per batch of up to SIGHTINGS_BATCH
  files of one project, so that a reload of 20,000 such files writes one object per project, not
  20,000. A file with a record of its own is shown as that record says; else as its sightings say
  (first_sighted: the same choice in every region and every restore).
* `_ppc/projects/<project>.json`: display name, status and its reason, the yanked files and their
  reasons. Changed by read-modify-write with a conditional write (S3 `If-Match`/`If-None-Match`,
  an atomic replace under a lock locally), retried on a lost race: concurrent yanks and status
  changes from any number of processes never lose one another.

All are plain JSON, readable by hand and by a restore script. Read as hostile input: a record
that is too large, malformed, or about another file than its key names is ignored (and logged).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import random
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, TypeVar

from pypicloud_lite.errors import Conflict, FilenameReused, InvalidInput, InvalidUpload, NotFound
from pypicloud_lite.models import ORIGINS, PROJECT_STATUSES, CoreMetadata, PackageFile, Project, ProjectState, utcnow
from pypicloud_lite.naming import (
    file_record_key,
    parse_filename,
    project_state_key,
    sighting_key,
    sightings_prefix,
    tombstone_key,
)
from pypicloud_lite.storage.base import Storage

logger = logging.getLogger(__name__)
R = TypeVar("R")

FORMAT = 1
# A file record holds one file's core metadata (bounded at upload); a project state one line per yanked file.
MAX_RECORD_BYTES = 1024 * 1024
MAX_STATE_BYTES = 16 * 1024 * 1024
# A deletion record is a small JSON object; more than this is not one of ours.
TOMBSTONE_MAX_BYTES = 4096
# A batch of first sightings holds at most SIGHTINGS_BATCH files' records.
SIGHTINGS_BATCH = 200
MAX_SIGHTINGS_BYTES = 64 * 1024 * 1024
# A read-modify-write that keeps losing to other writers gives up (Conflict: the client retries).
UPDATE_ATTEMPTS = 40

_HEX = {"sha256": 64, "md5": 32, "blake2_256": 64, "metadata_sha256": 64}
_OPTIONAL_TEXT = ("uploader", "requires_python", "summary")


def _dump(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def _record_doc(file: PackageFile, raw_metadata: bytes | None) -> dict[str, Any]:
    kept: dict[str, str] = {}
    if raw_metadata is not None and file.metadata_sha256 is not None:
        try:
            kept["metadata"] = raw_metadata.decode("utf-8")
        except UnicodeDecodeError:
            kept["metadata_base64"] = base64.b64encode(raw_metadata).decode("ascii")
    return {
        **kept,
        "format": FORMAT,
        "project": file.project,
        "filename": file.filename,
        "size": file.size,
        "sha256": file.sha256,
        "md5": file.md5,
        "blake2_256": file.blake2_256,
        "upload_time": file.upload_time.isoformat(),
        "uploader": file.uploader,
        "requires_python": file.requires_python,
        "summary": file.summary,
        "metadata_sha256": file.metadata_sha256,
        "core_metadata": file.core_metadata.to_dict() if file.core_metadata else None,
    }


def file_record(file: PackageFile, raw_metadata: bytes | None = None) -> bytes:
    """The record of a file: what its row holds that the filename and the listing cannot say.

    `raw_metadata`: a wheel's core metadata as served at its PEP 658 URL, kept here when no sidecar
    holds it (a file the reload or the S3 sync read): text, or base64 when it is not UTF-8.
    """
    return _dump(_record_doc(file, raw_metadata))


def _load(data: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise InvalidInput(f"{what} is not JSON") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise InvalidInput(f"{what} is not a format-{FORMAT} record of this index")
    return doc


def _text(doc: dict[str, Any], name: str, what: str) -> str | None:
    value = doc.get(name)
    if value is not None and not isinstance(value, str):
        raise InvalidInput(f"{what}: {name} is not text")
    return value


def parse_file_record(data: bytes, project: str, filename: str) -> PackageFile:
    """The row a file record describes (not yanked: yanks live in the project state); InvalidInput if unusable."""
    what = f"the record of {filename}"
    return _parse_record_doc(_load(data, what), project, filename, what)


def _parse_record_doc(doc: dict[str, Any], project: str, filename: str, what: str) -> PackageFile:
    if doc.get("project") != project or doc.get("filename") != filename:
        raise InvalidInput(f"{what} describes another file ({doc.get('project')}/{doc.get('filename')})")
    try:
        dist = parse_filename(filename)
    except InvalidUpload as exc:
        raise InvalidInput(f"{what}: {exc.message}") from exc
    size = doc.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise InvalidInput(f"{what}: size is not a count of bytes")
    digests = {}
    for name, length in _HEX.items():
        value = _text(doc, name, what)
        if value is not None and not re.fullmatch(f"[0-9a-f]{{{length}}}", value):
            raise InvalidInput(f"{what}: {name} is not a hex digest")
        digests[name] = value
    if digests["sha256"] is None:
        raise InvalidInput(f"{what} has no sha256")
    try:
        upload_time = datetime.fromisoformat(str(doc.get("upload_time")))
    except ValueError as exc:
        raise InvalidInput(f"{what}: upload_time is not an ISO 8601 time") from exc
    if upload_time.tzinfo is None:
        raise InvalidInput(f"{what}: upload_time has no time zone")
    metadata = doc.get("core_metadata")
    try:
        core = CoreMetadata.from_dict(metadata) if metadata is not None else None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InvalidInput(f"{what}: core_metadata is malformed") from exc
    texts = {name: _text(doc, name, what) for name in _OPTIONAL_TEXT}
    return PackageFile.of(dist, size=size, upload_time=upload_time, core_metadata=core, **digests, **texts)


def record_metadata(data: bytes, file: PackageFile) -> bytes | None:
    """The core metadata a file record keeps for `file`, if it is the one `file` advertises."""
    return _kept_metadata(_load(data, f"the record of {file.filename}"), file)


def sighted_metadata(data: bytes, file: PackageFile) -> bytes | None:
    """The core metadata a batch of first sightings keeps for `file`, if it is the one `file` advertises."""
    entries = _load(data, f"the first sightings of {file.filename}").get("files")
    for entry in entries if isinstance(entries, list) else []:
        found = (
            _kept_metadata(entry, file) if isinstance(entry, dict) and entry.get("filename") == file.filename else None
        )
        if found is not None:
            return found
    return None


def _kept_metadata(doc: dict[str, Any], file: PackageFile) -> bytes | None:
    text, encoded = doc.get("metadata"), doc.get("metadata_base64")
    if encoded is None and text is None:
        return None
    try:
        raw = text.encode("utf-8") if isinstance(text, str) else base64.b64decode(str(encoded), validate=True)
    except (ValueError, UnicodeEncodeError):
        return None
    return raw if hashlib.sha256(raw).hexdigest() == file.metadata_sha256 else None


@dataclass(frozen=True)
class Sightings:
    """One batch of first sightings: the records of files another tool placed, as one reader first saw them."""

    key: str
    # The storage that wrote it (Storage.identity): one written elsewhere came with a replica or a restore.
    storage: str
    files: dict[str, PackageFile]


def sightings(project: str, storage: str, files: list[tuple[PackageFile, bytes | None]]) -> bytes:
    return _dump(
        {
            "format": FORMAT,
            "project": project,
            "storage": storage,
            "files": [_record_doc(file, raw_metadata) for file, raw_metadata in files],
        }
    )


def parse_sightings(data: bytes, key: str, project: str) -> Sightings:
    what = f"the first sightings {key}"
    doc = _load(data, what)
    storage, entries = _text(doc, "storage", what), doc.get("files")
    if doc.get("project") != project or storage is None or not isinstance(entries, list):
        raise InvalidInput(f"{what}: not a list of files of project {project!r} with the storage that saw them")
    files = {}
    for entry in entries:
        filename = entry.get("filename") if isinstance(entry, dict) else None
        if not isinstance(filename, str):
            raise InvalidInput(f"{what}: an entry names no file")
        files[filename] = _parse_record_doc(entry, project, filename, f"{what}, {filename}")
    return Sightings(key, storage, files)


def first_sighted(found: list[Sightings], here: str) -> dict[str, PackageFile]:
    """What each file is shown as, of all the sightings of it: the same in every region and every restore.

    A sighting written by another storage wins over this storage's own (the origin's, come with
    replication, as a replicated file record replaces a replica's own); then the earliest; then the
    first key. Every copy of a bucket or folder therefore ends up choosing the origin's sighting.
    """
    best: dict[str, tuple[tuple[bool, datetime, str], PackageFile]] = {}
    for batch in found:
        for filename, file in batch.files.items():
            rank = (batch.storage == here, file.upload_time, batch.key)
            if filename not in best or rank < best[filename][0]:
                best[filename] = (rank, file)
    return {filename: file for filename, (_, file) in best.items()}


def project_state(state: ProjectState) -> bytes:
    doc: dict[str, Any] = {"origin": state.origin} if state.origin != "local" else {}
    return _dump(
        {
            **doc,
            "format": FORMAT,
            "name": state.name,
            "display_name": state.display_name,
            "status": state.status,
            "status_reason": state.status_reason,
            "yanked": dict(sorted(state.yanked.items())),
        }
    )


def parse_project_state(data: bytes, name: str) -> ProjectState:
    what = f"the state of project {name}"
    doc = _load(data, what)
    if doc.get("name") != name:
        raise InvalidInput(f"{what} names another project ({doc.get('name')!r})")
    display_name, status = _text(doc, "display_name", what), doc.get("status")
    if not display_name or status not in PROJECT_STATUSES:
        raise InvalidInput(f"{what}: no display name, or an unknown status")
    yanked = doc.get("yanked") or {}
    if not isinstance(yanked, dict) or not all(isinstance(v, str | None) for v in yanked.values()):
        raise InvalidInput(f"{what}: yanked is not a map of filenames to reasons")
    origin = doc.get("origin") or "local"  # states written before upstreams existed are local
    if origin not in ORIGINS:
        raise InvalidInput(f"{what}: unknown origin {origin!r}")
    return ProjectState(name, display_name, status, _text(doc, "status_reason", what), yanked, origin)


class StateStore:
    """Reads and writes the file records and project states of one storage."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    # -- file records ----------------------------------------------------------------------

    def read_file(self, project: str, filename: str) -> PackageFile | None:
        """The file's record as a row, or None if it has none (or an unusable one, which is logged)."""
        key = file_record_key(project, filename)
        return self._read(key, MAX_RECORD_BYTES, lambda data, _: parse_file_record(data, project, filename), None)

    def read_metadata(self, file: PackageFile) -> bytes | None:
        """The core metadata `file` advertises, from its record or its first sightings (None: they do not keep it)."""
        key = file_record_key(file.project, file.filename)
        if (found := self._read(key, MAX_RECORD_BYTES, record_metadata, file)) is not None:
            return found
        for obj in self.storage.list(sightings_prefix(file.project)):
            if (found := self._read(obj.key, MAX_SIGHTINGS_BYTES, sighted_metadata, file)) is not None:
                return found
        return None

    def _read(self, key: str, limit: int, parse: Callable[..., R | None], *about: Any) -> R | None:
        """`parse` of the object under `key` (and `about`); None when it is absent or unusable (which is logged)."""
        try:
            found = self.storage.read_versioned(key, limit)
            return parse(found.data, *about) if found else None
        except InvalidInput as exc:
            logger.warning("ignoring %s: %s", key, exc.message)
            return None

    def write_file(self, file: PackageFile, raw_metadata: bytes | None = None) -> None:
        """Record an uploaded file (replacing a record left by an earlier, deleted file of the same bytes)."""
        self.storage.put_bytes(file_record_key(file.project, file.filename), file_record(file, raw_metadata))

    def record_sightings(self, project: str, files: list[tuple[PackageFile, bytes | None]]) -> None:
        """Record files another tool placed, first seen now, in one object: their times are fixed from now on.

        One object for many files: a reload of a folder of 20,000 files writes one per project, not one
        per file. Each batch has a key of its own, so concurrent readers never overwrite one another.
        """
        if files:
            batch = f"{time.time_ns():020d}-{uuid.uuid4().hex[:12]}"
            data = sightings(project, self.storage.identity, files)
            self.storage.put_if(sighting_key(project, batch), data, None)

    def read_sightings(self, project: str, keys: list[str] | None = None) -> dict[str, PackageFile]:
        """The first sightings of the project's files (`keys`: its sightings objects, when the caller listed them)."""
        if keys is None:
            keys = [obj.key for obj in self.storage.list(sightings_prefix(project))]
        found = [self._read(key, MAX_SIGHTINGS_BYTES, parse_sightings, key, project) for key in sorted(keys)]
        return first_sighted([batch for batch in found if batch is not None], self.storage.identity)

    def read_sightings_in(self, key: str, project: str) -> list[str]:
        """The filenames one sightings object names (none when it is absent or unusable)."""
        found = self._read(key, MAX_SIGHTINGS_BYTES, parse_sightings, key, project)
        return sorted(found.files) if found else []

    def delete_file(self, project: str, filename: str) -> None:
        self.storage.delete(file_record_key(project, filename))

    # -- tombstones of deleted files -------------------------------------------------------

    def check_not_reused(self, project: str, filename: str, sha256: str) -> None:
        """PyPI's rule: a deleted filename never comes back with other bytes (its URL was served immutable).

        The same bytes may come back: every cached copy of the URL is still right, and an accidental
        delete can be undone by uploading the file again.
        """
        try:
            with self.storage.open(tombstone_key(project, filename)) as fh:
                record = json.loads(fh.read(TOMBSTONE_MAX_BYTES))
        except NotFound:
            return
        except ValueError:
            record = {}  # unreadable: treat as other bytes, the safe side
        if not isinstance(record, dict) or record.get("sha256") != sha256:
            # Not "File already exists": twine --skip-existing would then skip it silently, as PyPI's wording avoids.
            raise FilenameReused(
                f"This filename has already been used, use a different version: {filename!r} was deleted "
                "from this index, and a filename never comes back with other contents."
            )

    def record_deletion(self, project: str, filename: str, sha256: str) -> None:
        """The tombstone of a deleted file: its hash, which check_not_reused compares a new upload's with."""
        record = {"filename": filename, "sha256": sha256, "deleted": utcnow().isoformat()}
        self.storage.put_bytes(tombstone_key(project, filename), json.dumps(record).encode())

    # -- project states --------------------------------------------------------------------

    def read_project(self, name: str) -> ProjectState | None:
        return self._read(project_state_key(name), MAX_STATE_BYTES, parse_project_state, name)

    def create_project(self, state: ProjectState) -> bool:
        """Write the state of a project that has none; False (nothing written) if one exists."""
        return self.storage.put_if(project_state_key(state.name), project_state(state), None)

    def update_project(
        self, name: str, change: Callable[[ProjectState | None], ProjectState | None]
    ) -> ProjectState | None:
        """Apply `change` to the project's state with a conditional write, again on each lost race.

        `change` gets the state as stored (None: none yet) and returns the new one (None or the
        same: nothing to write). Conflict when other writers keep winning.
        """
        key = project_state_key(name)
        for attempt in range(UPDATE_ATTEMPTS):
            found = self.storage.read_versioned(key, MAX_STATE_BYTES)
            current = None
            if found is not None:
                try:
                    current = parse_project_state(found.data, name)
                except InvalidInput as exc:
                    logger.warning("replacing the unusable %s: %s", key, exc.message)
            wanted = change(current)
            if wanted is None or wanted == current:
                return current
            if self.storage.put_if(key, project_state(wanted), found.token if found else None):
                return wanted
            time.sleep(random.uniform(0, min(0.5, 0.005 * 2**attempt)))  # noqa: S311 - jitter, not secrecy
        raise Conflict(f"The state of project {name!r} keeps changing under this write; try again shortly.")


# -- the edits the index makes to a project's state ------------------------------------------


def with_yanks(state: ProjectState, filenames: list[str], yanked: bool, reason: str | None) -> ProjectState:
    marks = dict(state.yanked)
    for filename in filenames:
        if yanked:
            marks[filename] = reason
        else:
            marks.pop(filename, None)
    return replace(state, yanked=marks)


def with_status(state: ProjectState, status: str, reason: str | None) -> ProjectState:
    return replace(state, status=status, status_reason=reason)


def seed_state(name: str, project: Project | None, files: list[PackageFile], display_name: str) -> ProjectState:
    """The state of a project the cache knows but storage has no state for (an index from before states)."""
    if project is None:
        return ProjectState(name, display_name)
    yanked = {f.filename: f.yanked_reason for f in files if f.yanked}
    return ProjectState(name, project.display_name, project.status, project.status_reason, yanked)
