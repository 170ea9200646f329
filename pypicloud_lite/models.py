"""Domain models shared by storage, cache, service, web and the sync Lambda."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, NamedTuple

from packaging.utils import canonicalize_version
from packaging.version import Version

from pypicloud_lite.naming import DistFilename, safe_name, sidecar_key, storage_key


@lru_cache(maxsize=4096)
def canonical_version(version: str) -> str:
    """The release a version names: PEP 440 equal versions (1.0, 1.0.0, 1.00, v1.0) give one string.

    As Warehouse keys its releases (`canonicalize_version`: normalized, trailing `.0`s dropped, so `1`);
    text that is no version (a row from before the checks) stays its own release.
    """
    return canonicalize_version(version)


@dataclass(frozen=True)
class CoreMetadata:
    """The core-metadata fields the index keeps (read from METADATA / PKG-INFO)."""

    metadata_version: str
    name: str
    version: str
    summary: str | None = None
    requires_python: str | None = None
    requires_dist: tuple[str, ...] = ()
    author: str | None = None
    author_email: str | None = None
    license: str | None = None
    home_page: str | None = None
    project_urls: tuple[tuple[str, str], ...] = ()
    classifiers: tuple[str, ...] = ()
    # The long description (README), cut to metadata.MAX_DESCRIPTION_CHARS: every cache row and record holds it.
    description: str | None = None
    description_content_type: str | None = None
    description_truncated: bool = False

    def to_dict(self) -> dict[str, Any]:
        # Shallow: every field is a string, None, a bool or a tuple of them (asdict's deep copy cost a reload
        # 0.3 ms a file).
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["requires_dist"] = list(self.requires_dist)
        data["project_urls"] = [list(pair) for pair in self.project_urls]
        data["classifiers"] = list(self.classifiers)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CoreMetadata:
        return cls(
            metadata_version=data["metadata_version"],
            name=data["name"],
            version=data["version"],
            summary=data.get("summary"),
            requires_python=data.get("requires_python"),
            requires_dist=tuple(data.get("requires_dist") or ()),
            author=data.get("author"),
            author_email=data.get("author_email"),
            license=data.get("license"),
            home_page=data.get("home_page"),
            project_urls=tuple((k, v) for k, v in data.get("project_urls") or ()),
            classifiers=tuple(data.get("classifiers") or ()),
            description=data.get("description"),
            description_content_type=data.get("description_content_type"),
            description_truncated=bool(data.get("description_truncated")),
        )


@dataclass(frozen=True)
class PackageFile:
    """One distribution file as the index knows it."""

    project: str
    filename: str
    version: str
    packagetype: str
    python_version: str
    size: int
    # None only between a reload listing a file and hashing it.
    sha256: str | None
    upload_time: datetime
    md5: str | None = None
    blake2_256: str | None = None
    requires_python: str | None = None
    summary: str | None = None
    metadata_sha256: str | None = None
    yanked: bool = False
    yanked_reason: str | None = None
    uploader: str | None = None
    core_metadata: CoreMetadata | None = field(default=None, compare=False)
    storage_etag: str | None = None
    # The object's key when another tool stored it outside `<project>/<filename>`
    # (a folder spelled `my_lib/` rather than `my-lib/`); None for the usual layout.
    key: str | None = None

    @property
    def parsed_version(self) -> Version:
        return Version(self.version)

    @property
    def canonical_version(self) -> str:
        """The release this file belongs to (`version` keeps the file's own spelling)."""
        return canonical_version(self.version)

    @classmethod
    def of(
        cls, dist: DistFilename, *, size: int, sha256: str | None, upload_time: datetime, **more: Any
    ) -> PackageFile:
        """The row of a file: project, version, type and Python tag come from its parsed filename."""
        return cls(
            project=dist.project,
            filename=dist.filename,
            version=str(dist.version),
            packagetype=dist.packagetype,
            python_version=dist.python_version,
            size=size,
            sha256=sha256,
            upload_time=upload_time,
            **more,
        )

    def described(self, raw_metadata: bytes | None, metadata: CoreMetadata | None) -> PackageFile:
        """This file with what its core metadata says (PEP 658 is offered for wheels only, as PyPI does:
        sdist metadata may be dynamic)."""
        offered = raw_metadata is not None and self.packagetype == "bdist_wheel"
        return replace(
            self,
            requires_python=metadata.requires_python if metadata else None,
            summary=metadata.summary if metadata else None,
            metadata_sha256=hashlib.sha256(raw_metadata).hexdigest() if offered and raw_metadata else None,
            core_metadata=metadata,
        )

    @property
    def object_key(self) -> str:
        return self.key or storage_key(self.project, self.filename)

    @property
    def sidecar_key(self) -> str:
        """Where its PEP 658 core-metadata sidecar lives: beside the object."""
        return sidecar_key(self.object_key)

    @property
    def upload_name(self) -> str:
        """The project name a twine upload of this file sends (`Foo.Bar-baz` for Name `Foo.Bar_baz`).

        A project that the upload form, a reload or an S3 event creates gets this name: the
        name it would have had, had the file come through twine.
        """
        return safe_name(self.core_metadata.name) if self.core_metadata else self.project


def same_row(a: PackageFile, b: PackageFile) -> bool:
    """Whether two reads of one filename found the same row: nothing was uploaded, yanked or filled in between.

    An upload always stamps a new upload time, a yank changes the yank fields, a fill the hash.
    """
    return (a.upload_time, a.sha256, a.size, a.yanked, a.yanked_reason, a.storage_etag) == (
        b.upload_time,
        b.sha256,
        b.size,
        b.yanked,
        b.yanked_reason,
        b.storage_etag,
    )


@dataclass(frozen=True)
class Grant:
    """Permissions of one user or group on one project: letters from "rwdo" (read, write, delete/yank, own)."""

    project: str
    kind: str  # "user" or "group"
    name: str
    perms: str


@dataclass(frozen=True)
class Project:
    """A project (normalized name) with the name it was first uploaded under."""

    name: str
    display_name: str
    serial: int
    status: str = "active"
    status_reason: str | None = None


@dataclass(frozen=True)
class ProjectSummary:
    """A project as listed by the management API: its newest release at a glance."""

    project: Project
    latest_version: str | None
    summary: str | None
    last_upload: datetime | None
    file_count: int


@dataclass(frozen=True)
class Release:
    """The files of one PEP 440 version, whatever spelling each filename gives it.

    `version` is the release's own spelling: that of its first-uploaded file, as PyPI keeps
    the version of a release's first upload (filename order breaks a tie).
    """

    version: str
    files: tuple[PackageFile, ...]

    @property
    def canonical_version(self) -> str:
        return canonical_version(self.version)

    @property
    def parsed_version(self) -> Version:
        return Version(self.version)

    @property
    def spellings(self) -> frozenset[str]:
        """Every version spelling its files carry."""
        return frozenset(f.version for f in self.files)

    @property
    def yanked(self) -> bool:
        return bool(self.files) and all(f.yanked for f in self.files)


def releases_of(files: Iterable[PackageFile]) -> list[Release]:
    """Files grouped into releases by PEP 440 version, oldest version first; each keeps its files' order."""
    grouped: dict[str, list[PackageFile]] = {}
    for file in files:
        grouped.setdefault(file.canonical_version, []).append(file)
    releases = [
        Release(min(group, key=lambda f: (f.upload_time, f.filename)).version, tuple(group))
        for group in grouped.values()
    ]
    return sorted(releases, key=_release_order)


def _release_order(release: Release) -> tuple[int, Version | str]:
    # A row from before the filename checks may hold no PEP 440 version: such releases sort first.
    try:
        return 1, release.parsed_version
    except ValueError:
        return 0, release.version


def joining_releases(new: Iterable[PackageFile], existing: Iterable[PackageFile]) -> list[PackageFile]:
    """New files as their releases take them: yanked, with the release's reason, when every file it has is.

    PyPI yanks releases, not files: a file added to a yanked release is yanked too. `existing` holds
    the files already indexed (of the new files' projects, at least).
    """
    states: dict[tuple[str, str], list[tuple[bool, str | None]]] = {}
    for file in existing:
        states.setdefault((file.project, file.canonical_version), []).append((file.yanked, file.yanked_reason))
    return [joining_release(file, states.get((file.project, file.canonical_version), [])) for file in new]


def joining_release(file: PackageFile, release: Iterable[tuple[bool, str | None]]) -> PackageFile:
    """`file` as its release takes it, from the (yanked, reason) of each file the release already has."""
    yanks = list(release)
    if not yanks or not all(yanked for yanked, _ in yanks):
        return file
    return replace(file, yanked=True, yanked_reason=next((reason for _, reason in yanks if reason), None))


def latest_release(files: list[PackageFile]) -> Release | None:
    """The release pip would pick by default: the newest non-yanked final release, else the newest."""
    releases = [r for r in releases_of(files) if _release_order(r)[0]]
    candidates = [r for r in releases if not r.yanked] or releases
    finals = [r for r in candidates if not r.parsed_version.is_prerelease]
    return (finals or candidates)[-1] if candidates else None


# PEP 792 project statuses.
PROJECT_STATUSES = ("active", "archived", "quarantined", "deprecated")
# Statuses under which no new file may be uploaded.
CLOSED_STATUSES = ("archived", "quarantined")
# Where a project comes from: uploaded here, or first served from an upstream index (see upstream/).
ORIGINS = ("local", "upstream")


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class CdnChange:
    """One change the CDN must hear about: a release's pages, and the file URL when its bytes went or changed."""

    project: str
    version: str | None = None
    # Set only for a file deleted or replaced: files are immutable, an upload never purges its URL.
    filename: str | None = None
    id: str = ""  # the outbox's own key, set by the cache


@dataclass(frozen=True)
class CdnBatch:
    """Pending changes claimed for one invalidation; its id is the CallerReference, so a retry never pays twice."""

    id: str
    created: datetime
    changes: tuple[CdnChange, ...]


@dataclass(frozen=True)
class CdnRecord:
    """The history of one sent invalidation, kept for ppc-cdn-report."""

    batch_id: str
    sent: datetime
    changes: int
    paths: int
    wildcards: int
    invalidation_id: str


# -- changes: what the cache's one write path takes (cache/base.py CacheWriter.apply) -------


@dataclass(frozen=True)
class HeldLease:
    """A lease (cache/base.py Leases) as its holder names it."""

    name: str
    holder: str


class LeaseRead(NamedTuple):
    """A filename's lease as taking it answered (Cache.lease_file): whether it was taken and, if so, the rows read
    under it: the file's, and its project's when asked for."""

    taken: bool
    file: PackageFile | None = None
    project: Project | None = None


@dataclass(frozen=True)
class AddFile:
    """Index a new file, creating its project (named `display_name`) if it is new.

    The file joins its release: when every file the release has is yanked, the new one is yanked too,
    with their reason (PyPI yanks releases, not files). A row already under the filename (a racing
    upload) is returned unchanged: the caller compares hashes.

    `lease`: the filename's lease, ended by the change once it returns (in the change's own transaction
    where the backend has one); if it raises, the lease may still be held.
    """

    file: PackageFile
    display_name: str
    lease: HeldLease | None = None


@dataclass(frozen=True)
class RemoveFile:
    """Take a file's row out of the index; its project stays."""

    filename: str


@dataclass(frozen=True)
class ReplaceFile:
    """Make the row of `file.filename` equal to `file` (its object was rewritten), creating it if missing."""

    file: PackageFile


@dataclass(frozen=True)
class FillDetails:
    """Fill in what a reload learned by reading an object (hash, metadata), if its row still has the same ETag.

    `display_name`: also name the project so, if it still has the normalized name a reload gives new projects.
    """

    file: PackageFile
    display_name: str | None = None


@dataclass(frozen=True)
class FillMany:
    """Several FillDetails under one serial: each applies as it would alone, the serial moves once if any did.

    A reload fills in thousands of files: one serial each would make every page re-render after every
    file. `Applied.count` is how many of them applied.
    """

    fills: Sequence[FillDetails]


@dataclass(frozen=True)
class SetYanked:
    """Yank (with a reason) or unyank every file of one release: `version` in any PEP 440 spelling names it."""

    project: str
    version: str
    yanked: bool
    reason: str | None = None


@dataclass(frozen=True)
class SetStatus:
    """Set a project's PEP 792 status and its reason."""

    project: str
    status: str
    reason: str | None = None


@dataclass(frozen=True)
class ProjectState:
    """What storage records of a project beyond its files (see pypicloud_lite/stored_state.py).

    `yanked` maps each yanked file's filename to its reason (None: yanked without one). `origin` is
    "upstream" for a project first served from an upstream index (its files cached here), whose pages
    keep showing the upstream's listing and which takes no local upload until an admin allows it.
    """

    name: str
    display_name: str
    status: str = "active"
    status_reason: str | None = None
    yanked: Mapping[str, str | None] = field(default_factory=dict)
    origin: str = "local"

    def yank_of(self, filename: str) -> tuple[bool, str | None]:
        return (filename in self.yanked, self.yanked.get(filename))


@dataclass(frozen=True)
class SyncProject:
    """Make a project's display name, status and its files' yanks equal to what storage records.

    Creates the project only when it has files, or a status other than active (an admin's decision
    outlives the files); files the state does not name as yanked are not yanked.
    """

    state: ProjectState


Change = AddFile | RemoveFile | ReplaceFile | FillDetails | FillMany | SetYanked | SetStatus | SyncProject


@dataclass(frozen=True)
class ReloadChanges:
    """A reload's difference between storage and cache, applied at once (one serial for all of it).

    `added` rows create their projects (named by `projects` where storage records a name); `changed` rows
    replace the rows of their filenames;
    `removed` rows are deleted; `etags` records storage ETags of rows that lacked one.
    `seen` holds the row each changed or removed filename had when the reload read the cache:
    a filename whose row is no longer that one (deleted and uploaded again, yanked, filled in)
    changed after the reload looked, so it is left alone; the next reload sees it afresh.
    Backends check and apply under the lock every change takes (SQL) or as conditional writes.
    """

    added: Sequence[PackageFile] = ()
    changed: Sequence[PackageFile] = ()
    removed: Sequence[str] = ()
    etags: Mapping[str, str] = field(default_factory=dict)
    seen: Mapping[str, PackageFile] = field(default_factory=dict)
    # Project states that differ from the cache, applied after the files (as SyncProject each), and the serial
    # each of their projects had when the reload read the cache, before it read the states (None: no project).
    projects: Sequence[ProjectState] = ()
    project_serials: Mapping[str, int | None] = field(default_factory=dict)

    def applies_to(self, filename: str, current: PackageFile | None) -> bool:
        """Whether the change or removal of `filename` still applies, `current` being its row now.

        It does when `current` is the row the reload saw, or when no row was given in `seen`.
        """
        seen = self.seen.get(filename)
        return seen is None or (current is not None and same_row(current, seen))

    def state_applies(self, name: str, serial: int | None) -> bool:
        """Whether the state of project `name` still applies, `serial` being the project's serial now (None: none).

        A project changed since the reload read the cache (a yank, a status change, an upload) may have a
        newer state in storage than the one the reload read: it is left alone; the next reload sees it afresh.
        """
        return name not in self.project_serials or self.project_serials[name] == serial

    def __bool__(self) -> bool:
        return bool(self.added or self.changed or self.removed or self.etags or self.projects)


@dataclass(frozen=True)
class Applied:
    """What one change did, as every in-process listener hears it.

    `serial`: the index serial the change committed at; None when it changed nothing.
    `count`: files (or the project) it matched; `file`: for AddFile, the row now stored
    under the filename (this one, or the one a racing upload wrote first).
    `projects`: the projects whose pages changed; `cdn`: whether purges went into the outbox.
    """

    serial: int | None
    count: int = 0
    file: PackageFile | None = None
    projects: frozenset[str] = frozenset()
    cdn: bool = False

    @property
    def changed(self) -> bool:
        return self.serial is not None
