"""PackageIndex: the use cases (upload, list, download, yank, delete) over storage and cache."""

from __future__ import annotations

import hashlib
import logging
import tempfile
from collections.abc import Callable, Collection
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from packaging.version import InvalidVersion, Version

from pypicloud_lite.cache.base import Cache, ChangeListener
from pypicloud_lite.config import UploadSettings
from pypicloud_lite.errors import (
    Conflict,
    FileExists,
    InvalidInput,
    InvalidUpload,
    NotFound,
)
from pypicloud_lite.file_lease import FileLease, file_lease
from pypicloud_lite.metadata import parse_core_metadata, read_metadata_file
from pypicloud_lite.models import (
    CLOSED_STATUSES,
    PROJECT_STATUSES,
    AddFile,
    PackageFile,
    Project,
    ProjectState,
    ProjectSummary,
    Release,
    RemoveFile,
    SetStatus,
    SetYanked,
    canonical_version,
    latest_release,
    releases_of,
    utcnow,
)
from pypicloud_lite.naming import (
    DistFilename,
    is_valid_project_name,
    normalize,
    parse_filename,
)
from pypicloud_lite.reload import LOCK_NAME as RELOAD_LOCK
from pypicloud_lite.reload import ReloadRun, begin_reload
from pypicloud_lite.reload_state import recover_metadata
from pypicloud_lite.spool import CHUNK, SPOOL_PREFIX, SPOOL_SUFFIX, Received, Spooled, SpoolWriter, check_digests, spool
from pypicloud_lite.storage.base import DownloadURL, Storage
from pypicloud_lite.storage.local import remove_stale_files
from pypicloud_lite.stored_state import StateStore, seed_state, with_status, with_yanks

logger = logging.getLogger(__name__)

# No upload (or storage write) takes this long between two writes to its temporary file.
STALE_TEMPORARY_AGE = 3600


@dataclass(frozen=True)
class UploadForm:
    """The legacy-upload form fields the index uses; everything else is ignored."""

    # None from the browser form, which sends no name: the file's metadata names a new project.
    name: str | None
    version: str
    filetype: str | None = None
    summary: str | None = None
    requires_python: str | None = None
    md5_digest: str | None = None
    sha256_digest: str | None = None
    blake2_256_digest: str | None = None


@dataclass(frozen=True)
class UploadResult:
    file: PackageFile
    created: bool


@dataclass(frozen=True)
class _Given:
    """What the caller says of a file beside its bytes: when and from whom it came, and fallback fields."""

    upload_time: datetime
    uploader: str | None
    summary: str | None = None
    requires_python: str | None = None
    # "upstream" for a file cached from an upstream index (upstream/proxy.py), which joins only such projects.
    origin: str = "local"
    state: ProjectState | None = None  # the project's state as read under the lease (None: read when storing)


class PackageIndex:
    def __init__(self, storage: Storage, cache: Cache, upload: UploadSettings) -> None:
        self.storage = storage
        self.cache = cache
        self.upload_settings = upload
        self.state = StateStore(storage)

    # -- uploads ---------------------------------------------------------------

    def upload(
        self,
        form: UploadForm,
        filename: str,
        content: Received,
        uploader: str | None,
        authorize: Callable[[Project | None], object] | None = None,
    ) -> UploadResult:
        """Store a distribution and index it; an identical re-upload changes nothing (`content`: see receiving()).

        `authorize` is called with the project's row (None: the upload would create the project), read under the
        filename's lease, before anything is stored: it raises to refuse the upload.
        """
        dist = parse_filename(filename)
        self._check_form(form, dist)
        with (
            self._spool(content) as spooled,
            self._file_lease(dist.filename, dist.project if authorize else None) as lease,
        ):
            if authorize is not None:
                authorize(lease.project)
            state = self.state.read_project(dist.project)  # once, under the lease (which may have been waited for)
            self._check_open(dist, state, lease)
            self._check_origin(state, "local")
            check_digests(spooled, form.md5_digest, form.sha256_digest, form.blake2_256_digest)
            given = _Given(utcnow(), uploader, form.summary, form.requires_python, state=state)
            return self._add(dist, spooled, given, form.name, lease)

    def import_file(
        self,
        filename: str,
        content: BinaryIO,
        *,
        upload_time: datetime | None,
        uploader: str | None,
        display_name: str | None,
        summary: str | None,
        origin: str = "local",
    ) -> UploadResult:
        """Add a file moved in from another index as upload() adds one, keeping its upload time and uploader.

        `upload_time`: when the other index took the file (None: now; one in the future is taken as now).
        `display_name` names a new project, if it is a valid name of the file's project (else the file's
        metadata does); `summary` fills in only what the file's own metadata leaves out. `origin`: the
        origin the file's project must have ("upstream" for a file cached from an upstream index).
        """
        dist = parse_filename(filename)
        self._check_open(dist, None)
        if display_name is not None and not (
            is_valid_project_name(display_name) and normalize(display_name) == dist.project
        ):
            logger.warning("import of %s: %r does not name its project, ignored", filename, display_name)
            display_name = None
        now = utcnow()
        when = now if upload_time is None else min(now, upload_time.astimezone(UTC))
        with (
            self._spool(content) as spooled,
            self._file_lease(dist.filename) as lease,
        ):
            return self._add(dist, spooled, _Given(when, uploader, summary, origin=origin), display_name, lease)

    def _spool(self, content: Received) -> AbstractContextManager[Spooled]:
        return nullcontext(content) if isinstance(content, Spooled) else spool(content, self.receiving())

    def receiving(self) -> SpoolWriter:
        """Where a request's upload is written as it is read: its `finish()` is upload()'s content."""
        settings = self.upload_settings
        return SpoolWriter(settings.max_size, settings.spool_dir, presync=self.storage.takes_sources)

    def _check_open(self, dist: DistFilename, state: ProjectState | None, lease: FileLease | None = None) -> None:
        """Refuse a file for a closed project: by its state in storage (written before the cache), else the cache's."""
        project = state or self._project_row(dist.project, lease)
        if project is not None and project.status in CLOSED_STATUSES:
            raise InvalidUpload(f"Project {project.display_name!r} is {project.status}: it takes no new uploads.")

    @staticmethod
    def _check_origin(state: ProjectState | None, origin: str) -> None:
        # Origin control (upstream/proxy.py): a name served from upstream takes a local upload only once
        # an admin has decided so, or a public project could be shadowed (or a private one hijacked).
        if state is None or state.origin == origin:
            return
        if origin == "local":
            raise Conflict(
                f"Project {state.display_name!r} is served from an upstream index: a local upload to it needs an "
                "admin to set its origin to local first."
            )
        raise Conflict(f"Project {state.display_name!r} is held in this index: it is not cached from upstream.")

    def _add(
        self, dist: DistFilename, spooled: Spooled, given: _Given, display_name: str | None, lease: FileLease | None
    ) -> UploadResult:
        """Index a spooled file under its filename's lease: the one path of upload() and import_file().

        `display_name` names a new project (None: the file's metadata does). An identical file already
        indexed is answered as it is; other bytes are refused.
        """
        existing = lease.existing if lease is not None else self.cache.get_file(dist.filename)
        if existing is not None and existing.sha256 is not None and self.storage.stat(existing.object_key) is None:
            return self._restore(existing, spooled, dist)
        if existing is not None:
            return UploadResult(self._same_file(existing, spooled.sha256), created=False)
        self.state.check_not_reused(dist.project, dist.filename, spooled.sha256)
        raw_metadata = read_metadata_file(spooled.path, dist)
        metadata = parse_core_metadata(raw_metadata, dist)
        record = PackageFile.of(
            dist,
            size=spooled.size,
            sha256=spooled.sha256,
            upload_time=given.upload_time,
            md5=spooled.md5,
            blake2_256=spooled.blake2_256,
            uploader=given.uploader,
        ).described(raw_metadata, metadata)
        # The caller's fields fill in only what the file's own metadata leaves out.
        record = replace(
            record,
            requires_python=record.requires_python or given.requires_python or None,
            summary=record.summary or given.summary or None,
        )
        name = display_name or record.upload_name
        return self._store(record, spooled, raw_metadata, name, given, lease=lease)

    def _check_form(self, form: UploadForm, dist: DistFilename) -> None:
        if form.name is not None and not is_valid_project_name(form.name):
            raise InvalidUpload(f"Invalid value for name: {form.name!r} is not a valid project name.")
        try:
            version = Version(form.version)
        except InvalidVersion as exc:
            raise InvalidUpload(f"Invalid value for version: {form.version!r} is not a valid PEP 440 version.") from exc
        if form.name is not None and normalize(form.name) != dist.project:
            raise InvalidUpload(f"Start filename for {form.name!r} with {normalize(form.name).replace('-', '_')!r}.")
        if version != dist.version:
            raise InvalidUpload(f"Version in filename should be {str(version)!r} not {str(dist.version)!r}.")
        if form.filetype and form.filetype != dist.packagetype:
            raise InvalidUpload(f"Invalid value for filetype: {form.filetype!r} does not match {dist.filename!r}.")

    def remove_stale_temporary_files(self, max_age: float = STALE_TEMPORARY_AGE) -> int:
        """At start-up: remove upload spool files and storage temporaries a killed process left behind.

        Several processes share the spool folder, so only files untouched for `max_age` go: one being
        written is younger, its mtime moving with every chunk.
        """
        spool_dir = self.upload_settings.spool_dir or Path(tempfile.gettempdir())
        removed = remove_stale_files(spool_dir.glob(f"{SPOOL_PREFIX}*{SPOOL_SUFFIX}"), max_age)
        removed += self.storage.remove_stale_temporary_files(max_age)
        if removed:
            logger.info("removed %d stale temporary files (older than %d s)", removed, max_age)
        return removed

    def _same_file(self, existing: PackageFile, sha256: str) -> PackageFile:
        # A file a reload has listed but not hashed yet is compared by its stored bytes.
        known = existing.sha256 or self._object_sha256(existing.object_key)
        if known != sha256:
            raise FileExists(
                f"File already exists: {existing.filename!r} is already in the index with different contents."
            )
        return existing

    def _restore(self, existing: PackageFile, spooled: Spooled, dist: DistFilename) -> UploadResult:
        """An identical re-upload of a file whose object is gone from storage writes it back (and its sidecar).

        The row says which bytes the filename holds: other bytes are refused as for any existing file.
        """
        if existing.sha256 != spooled.sha256:
            raise FileExists(
                f"File already exists: {existing.filename!r} is already in the index with different contents."
            )
        self.storage.put_new(existing.object_key, spooled.path, sha256=existing.sha256)
        if existing.metadata_sha256 is not None:
            raw_metadata = read_metadata_file(spooled.path, dist)
            if hashlib.sha256(raw_metadata).hexdigest() == existing.metadata_sha256:
                self.storage.put_bytes(existing.sidecar_key, raw_metadata)
        if self.state.read_file(existing.project, existing.filename) is None:
            self.state.write_file(existing)
        logger.warning("upload of %s restored its object, missing from storage", existing.filename)
        return UploadResult(existing, created=False)

    def _record_deletion(self, file: PackageFile) -> None:
        """Keep the deleted file's hash in storage (a rebuilt cache, a replica and a restore keep the rule too)."""
        self.state.record_deletion(file.project, file.filename, file.sha256 or self._object_sha256(file.object_key))

    def _file_lease(self, filename: str, project: str | None = None) -> AbstractContextManager[FileLease]:
        return file_lease(self.cache, filename, project)

    def _project_row(self, name: str, lease: FileLease | None) -> Project | None:
        """The project's cache row: as the upload's lease read it if it did (not twice more for a new one), else now."""
        return lease.project if lease is not None and lease.project_read else self.cache.get_project(name)

    def _object_sha256(self, key: str) -> str:
        digest = hashlib.sha256()
        known = self.storage.stat(key)
        if known is not None and known.sha256:
            return known.sha256
        with self.storage.open(key) as fh:
            while chunk := fh.read(CHUNK):
                digest.update(chunk)
        return digest.hexdigest()

    def _store(
        self,
        record: PackageFile,
        spooled: Spooled,
        raw_metadata: bytes,
        display_name: str,
        given: _Given,
        *,
        lease: FileLease | None,
    ) -> UploadResult:
        # The object is written before the row, so the index never lists a file storage lacks.
        key = record.object_key
        spooled.check_synced()  # then the object is not synced again
        written = self.storage.put_new(key, spooled.path, sha256=record.sha256, movable=True, synced=spooled.synced)
        if not written and self._object_sha256(key) != record.sha256:
            # A racing upload of other bytes won the conditional write.
            raise FileExists(f"File already exists: {record.filename!r} is already stored with different contents.")
        try:
            # The object's ETag lets a reload notice when another tool overwrites it, even at the same size.
            stored_object = self.storage.stat(key)
            if stored_object is not None:
                record = replace(record, storage_etag=stored_object.etag)
            if record.metadata_sha256 is not None:
                # PEP 658 for wheels only: an sdist's metadata may be dynamic; its record keeps what it says.
                self.storage.put_bytes(record.sidecar_key, raw_metadata)
            # Storage records every fact before the cache shows it (stored_state.py): a new project's state is
            # made with the upload's name, its origin checked again (an upload racing the first upstream fetch loses).
            state = given.state or self.state.read_project(record.project)
            state = state or self._change_state(record.project, lambda new: new, display_name, lease)
            self._check_origin(state, given.origin)
            record = self._joining(record, state)
            self.state.write_file(record)
            # The lease ends with the row's transaction: one write fewer per upload.
            applied = self.cache.apply(AddFile(record, state.display_name, lease.held if lease else None))
            if lease is not None:
                lease.ended = True
            stored, created = applied.file, applied.changed
            assert stored is not None, "AddFile answers with the row stored under the filename"
        except BaseException:
            if written:
                self._discard_unindexed(record)
            raise
        logger.info("upload %s by %s (%s)", record.filename, record.uploader, "stored" if created else "existing")
        return UploadResult(self._same_file(stored, spooled.sha256), created=created)

    def _discard_unindexed(self, record: PackageFile) -> None:
        """Remove an object whose row could not be written, unless a racing upload indexed it."""
        try:
            if self.cache.get_file(record.filename) is not None:
                return
        except Exception:  # noqa: BLE001 - the cache is failing; the object must go regardless
            logger.warning("cache unreadable while discarding %s", record.filename)
        self.storage.delete(record.sidecar_key)
        self.storage.delete(record.object_key)
        self.state.delete_file(record.project, record.filename)

    def _change_state(
        self,
        name: str,
        edit: Callable[[ProjectState], ProjectState],
        display_name: str | None = None,
        lease: FileLease | None = None,
    ) -> ProjectState:
        """Apply `edit` to the project's state in storage (conditional, retried): before the cache shows it.
        A project without one is seeded from its cache rows (`lease`: an upload's, see _project_row)."""

        def change(current: ProjectState | None) -> ProjectState:
            if current is None:
                project = self._project_row(name, lease)
                files = self.cache.project_files(name) if project else []
                current = seed_state(name, project, files, display_name or name)
            return edit(current)

        state = self.state.update_project(name, change)
        assert state is not None, "change() always answers a state"
        return state

    def _joining(self, record: PackageFile, state: ProjectState) -> PackageFile:
        """The file as its release takes it: yanked, with the release's reason, when every file of it is.

        Recorded in the project's state first, as every yank is; the cache decides the same from its rows.
        """
        if not state.yanked:
            return record  # nothing is yanked: no release to join yanked
        files = self.cache.project_files(record.project)
        release = [f for f in files if f.canonical_version == record.canonical_version]
        if not release or not all(f.filename in state.yanked for f in release):
            return record
        reason = next((state.yanked[f.filename] for f in release if state.yanked[f.filename]), None)
        self._change_state(record.project, lambda s: with_yanks(s, [record.filename], True, reason))
        return replace(record, yanked=True, yanked_reason=reason)

    def subscribe(self, listener: ChangeListener) -> None:
        """Hear of every change this process commits to the index: uploads, deletes, yanks, reloads."""
        self.cache.subscribe(listener)

    # -- reads -----------------------------------------------------------------

    def serial(self) -> int:
        return self.cache.serial()

    def list_projects(self) -> list[Project]:
        return self.cache.list_projects()

    def projects_changed_since(self, serial: int) -> tuple[list[Project], int] | None:
        return self.cache.projects_changed_since(serial)

    def counts(self) -> tuple[int, int]:
        """(projects, files) in the index: for the admin status panel, not per request."""
        return self.cache.counts()

    def find_project(self, name: str) -> Project | None:
        return self.cache.get_project(normalize(name))

    def get_project(self, name: str) -> Project:
        project = self.find_project(name)
        if project is None:
            raise NotFound(f"No project named {name!r} in this index.")
        return project

    def project_files(self, project: Project) -> list[PackageFile]:
        return self.cache.project_files(project.name)

    def files_of(self, name: str) -> list[PackageFile]:
        """The files of the project of this normalized name: none when there is no such project."""
        return self.cache.project_files(name)

    def search_projects(
        self, query: str, page: int, per_page: int, only: Collection[str] | None = None
    ) -> tuple[list[ProjectSummary], int]:
        """One page of projects (among `only`, if given) with latest release, summary and last upload time."""
        offset = (page - 1) * per_page
        projects, total = self.cache.search_projects(normalize(query) if query else "", offset, per_page, only)
        by_project: dict[str, list[PackageFile]] = {}
        for file in self.cache.files_of_projects([p.name for p in projects]):
            by_project.setdefault(file.project, []).append(file)
        summaries = []
        for project in projects:
            files = by_project.get(project.name, [])
            latest = latest_release(files)
            summaries.append(
                ProjectSummary(
                    project=project,
                    latest_version=latest.version if latest else None,
                    summary=next((f.summary for f in latest.files if f.summary), None) if latest else None,
                    last_upload=max((f.upload_time for f in files), default=None),
                    file_count=len(files),
                )
            )
        return summaries, total

    def get_file(self, project: str, filename: str) -> PackageFile:
        file = self.cache.get_file(filename)
        if file is None or file.project != normalize(project):
            raise NotFound(f"No file named {filename!r} in project {project!r}.")
        return file

    def downloadable_file(self, project: str, filename: str) -> PackageFile:
        """A file that may be offered for download: none of a quarantined project (PEP 792)."""
        if self.get_project(project).status == "quarantined":
            raise NotFound(f"Project {project!r} is quarantined: its files are not offered for download.")
        return self.get_file(project, filename)

    def offered_files(self, project: Project) -> list[PackageFile]:
        """The files the simple API lists: none while the project is quarantined."""
        return [] if project.status == "quarantined" else self.project_files(project)

    def open_file(self, file: PackageFile, start: int = 0, end: int | None = None) -> BinaryIO:
        return self.storage.open(file.object_key, start, end)

    def require_stored(self, file: PackageFile) -> None:
        """NotFound, as open_file raises it, when the file's object is gone from storage (a HEAD opens nothing)."""
        if self.storage.stat(file.object_key) is None:
            raise NotFound(f"No such object: {file.object_key}")

    def read_metadata(self, file: PackageFile) -> bytes:
        """The PEP 658 core metadata of a file (small: bounded at upload)."""
        if file.metadata_sha256 is None:
            raise NotFound(f"No core metadata is published for {file.filename!r}.")
        try:
            with self.storage.open(file.sidecar_key) as fh:
                raw = fh.read()
            if hashlib.sha256(raw).hexdigest() == file.metadata_sha256:
                return raw
        except NotFound:
            pass
        # A wheel the reload or the S3 sync read keeps its metadata in its record; a lost sidecar is re-read.
        recovered = recover_metadata(self.storage, self.state, file)
        if recovered is None:
            raise NotFound(f"The core metadata of {file.filename!r} is missing from storage.")
        return recovered

    def download_url(self, file: PackageFile) -> DownloadURL | None:
        return self.storage.download_url(file.object_key, file.filename)

    # -- changes ---------------------------------------------------------------

    def yank(self, project: str, version: str, reason: str | None = None) -> int:
        return self._set_yanked(project, version, True, reason or None)

    def unyank(self, project: str, version: str) -> int:
        return self._set_yanked(project, version, False, None)

    def _set_yanked(self, project: str, version: str, yanked: bool, reason: str | None) -> int:
        name = self.get_project(project).name
        # PEP 440 equality: "1.0.0" names release "1.0", as in every other lookup of a version.
        release = self.release(name, version)
        filenames = [f.filename for f in release.files]
        self._change_state(name, lambda state: with_yanks(state, filenames, yanked, reason))
        count = self.cache.apply(SetYanked(name, release.version, yanked, reason)).count
        if not count:
            raise NotFound(f"No version {version!r} of project {project!r}.")
        return count

    def release(self, project: str, version: str) -> Release:
        """One release, named by any PEP 440 spelling of its version; NotFound if it has no file."""
        try:
            Version(version)
        except InvalidVersion as exc:
            raise NotFound(f"No version {version!r} of project {project!r}.") from exc
        return self.release_in(self.cache.project_files(normalize(project)), project, version)

    @staticmethod
    def release_in(files: list[PackageFile], project: str, version: str) -> Release:
        """The release `version` names among these files of `project`; NotFound if none."""
        wanted = canonical_version(version)
        found = [f for f in files if f.canonical_version == wanted]
        if not found:
            raise NotFound(f"No version {version!r} of project {project!r}.")
        return releases_of(found)[0]

    def release_files(self, project: str, version: str) -> list[PackageFile]:
        """The files of one release, the version compared as PEP 440 does; NotFound if none."""
        return list(self.release(project, version).files)

    def begin_reload(self, workers: int = 16, verify_sidecars: bool = False) -> ReloadRun:
        """Take the reload lease (Conflict if a reload runs anywhere); `execute()` the result to reload.

        `verify_sidecars`: also read each advertised PEP 658 sidecar to repair corrupt ones (one GET each).
        """
        return begin_reload(self.storage, self.cache, workers, verify_sidecars)

    def reload_state(self) -> tuple[bool, dict[str, object] | None]:
        """(whether a reload runs now, its latest progress or last result)."""
        return self.cache.lock_state(RELOAD_LOCK)

    def set_status(self, project: str, status: str, reason: str | None = None) -> Project:
        if status not in PROJECT_STATUSES:
            raise InvalidInput(f"Unknown project status {status!r}: use one of {', '.join(PROJECT_STATUSES)}.")
        found = self.get_project(project)
        name = found.name
        reason = (reason or None) if status != "active" else None
        self._change_state(name, lambda state: with_status(state, status, reason))
        self.cache.apply(SetStatus(name, status, reason))
        # Back to active without files, the project leaves the index: the status set is still the answer.
        return self.find_project(name) or replace(found, status=status, status_reason=reason)

    def delete_version(self, project: str, version: str) -> list[str]:
        """Delete every file of one release; returns the filenames deleted."""
        name = self.get_project(project).name
        files = self.release_files(name, version)
        for file in files:
            self.delete_file(name, file.filename)
        return [f.filename for f in files]

    def delete_project(self, project: str) -> list[str]:
        """Delete every file of a project and the project with them (its status too: an empty project with
        an active status leaves the index); the filenames stay used, as on PyPI. Returns them."""
        found = self.get_project(project)
        if found.status != "active":
            self._change_state(found.name, lambda state: with_status(state, "active", None))
            self.cache.apply(SetStatus(found.name, "active", None))
        files = self.project_files(found)
        for file in files:
            self.delete_file(found.name, file.filename)
        return [f.filename for f in files]

    def delete_file(self, project: str, filename: str) -> None:
        with self._file_lease(filename):
            self._delete_file(self.get_file(project, filename))

    def _delete_file(self, file: PackageFile) -> None:
        # Recorded before anything goes: a delete that stops halfway still keeps the filename used.
        self._record_deletion(file)
        # The row goes before the object, so the index never lists a file storage lacks.
        self.cache.apply(RemoveFile(file.filename))
        self.storage.delete(file.object_key)
        self.storage.delete(file.sidecar_key)
        self.state.delete_file(file.project, file.filename)
        # A filename may come back with its bytes: as a new file, not yanked.
        self._change_state(file.project, lambda state: with_yanks(state, [file.filename], False, None))
        # A reload that listed the object before it went may have put the row back: take it out again.
        self.cache.apply(RemoveFile(file.filename))
