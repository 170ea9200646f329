"""The reload's side of stored state: read what storage records of files and projects, and record back what it lacks.

A file with a record is indexed from it (upload time, uploader, hashes, core metadata) without
reading the file; a project's state gives its display name, status and yanks. A file another tool
placed, or one indexed before records existed, has its facts recorded once, when the reload first
sees it: from then on its upload time never changes, whichever region or rebuild shows it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TypeVar

from pypicloud_lite.cache.base import Cache
from pypicloud_lite.errors import PypicloudLiteError
from pypicloud_lite.indexing import read_description
from pypicloud_lite.models import PackageFile, Project, ProjectState
from pypicloud_lite.storage.base import Storage
from pypicloud_lite.stored_state import SIGHTINGS_BATCH, StateStore, seed_state

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


def as_stored(file: PackageFile, state: ProjectState | None) -> PackageFile:
    """The file with the yank its project's state records (unchanged when the project has no state)."""
    if state is None:
        return file
    yanked, reason = state.yank_of(file.filename)
    return replace(file, yanked=yanked, yanked_reason=reason)


def state_differs(state: ProjectState, project: Project | None, files: Iterable[PackageFile]) -> bool:
    """Whether the cache shows this project otherwise than its stored state says."""
    if project is None:
        return True
    if (project.display_name, project.status, project.status_reason) != (
        state.display_name,
        state.status,
        state.status_reason,
    ):
        return True
    return any(state.yank_of(f.filename) != (f.yanked, f.yanked_reason if f.yanked else None) for f in files)


class StoredFacts:
    """The file records and project states one reload lists, reads and writes back."""

    def __init__(self, storage: Storage, cache: Cache, workers: int) -> None:
        self.store = StateStore(storage)
        self.cache = cache
        self.workers = workers
        # From the listing: the project of each filename's record, and the projects with a state. Files
        # found in first sightings join `records` once those are read: then they are recorded too.
        self.records: dict[str, str] = {}
        self.states: set[str] = set()
        self.sightings: dict[str, list[str]] = {}
        # What those sightings say, once read: by project, by filename.
        self.sighted: dict[str, dict[str, PackageFile]] = {}

    def _map(self, work: Callable[[T], R], items: Sequence[T]) -> list[R]:
        if len(items) < 2:
            return [work(item) for item in items]
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="ppc-state") as pool:
            return list(pool.map(work, items))

    def read_states(self) -> dict[str, ProjectState]:
        """Every project state the listing found (one GET each, in parallel)."""
        names = sorted(self.states)
        return {s.name: s for s in self._map(self.store.read_project, names) if s is not None}

    def as_recorded(
        self, files: list[PackageFile], states: dict[str, ProjectState], rewritten: bool = False
    ) -> list[PackageFile]:
        """Listed files as their records (else their first sightings) and project states describe them; those
        with neither stay listed, for the fill to read.

        `rewritten`: objects whose bytes changed since they were indexed: their records describe old bytes.
        """
        sighted = {} if rewritten else self._sighted({f.project for f in files if f.filename not in self.records})

        def recorded(listed: PackageFile) -> PackageFile:
            state = states.get(listed.project)
            if rewritten:
                return as_stored(listed, state)
            if self.records.get(listed.filename) == listed.project:
                record = self.store.read_file(listed.project, listed.filename)
            else:
                record = sighted.get(listed.project, {}).get(listed.filename)
            if record is None or record.size != listed.size:
                # Another tool rewrote the object: its bytes decide, read by the fill.
                return as_stored(listed, state)
            self.records[listed.filename] = listed.project
            return as_stored(replace(record, storage_etag=listed.storage_etag, key=listed.key), state)

        # Only files with a record of their own cost a read: the rest stay in order without a trip through the pool.
        with_record = [f for f in files if not rewritten and self.records.get(f.filename) == f.project]
        read = dict(zip((f.filename for f in with_record), self._map(recorded, with_record), strict=True))
        return [read.get(f.filename) or recorded(f) for f in files]

    def _sighted(self, projects: set[str]) -> dict[str, dict[str, PackageFile]]:
        """The first sightings of the files of `projects` that the listing found (one GET per sightings object,
        once per reload)."""
        wanted = sorted(p for p in projects if p in self.sightings and p not in self.sighted)
        found = self._map(lambda project: self.store.read_sightings(project, self.sightings[project]), wanted)
        self.sighted.update(zip(wanted, found, strict=True))
        return self.sighted

    @staticmethod
    def differing(
        states: dict[str, ProjectState],
        projects: dict[str, Project],
        snapshot: dict[str, PackageFile],
        applied: Sequence[PackageFile],
        removed: Sequence[str],
    ) -> list[ProjectState]:
        """The states the cache (its `projects` and `snapshot`) does not show yet, once `applied` and `removed` are."""
        if not states:
            return []
        after = {name: f for name, f in snapshot.items() if name not in set(removed)}
        after.update((f.filename, f) for f in applied)
        by_project: dict[str, list[PackageFile]] = {}
        for file in after.values():
            by_project.setdefault(file.project, []).append(file)
        return [
            state
            for name, state in sorted(states.items())
            if state_differs(state, projects.get(name), by_project.get(name, []))
        ]

    def record_back(self, files: Iterable[PackageFile], projects: dict[str, Project]) -> None:
        """Write what storage lacks: records of the `files` indexed without one, states of projects without one.

        `files`: the rows the reload leaves with a hash; `projects`: the cache's projects before it (the ones
        it creates are named by the cache now). Create-only: what an upload wrote meanwhile stays.
        """
        by_project: dict[str, list[PackageFile]] = {}
        for file in files:
            by_project.setdefault(file.project, []).append(file)
        unlisted = {f.project for f in self._unrecorded(by_project)}
        # The files without a record of their own may be in their project's first sightings (one GET a project).
        self._sighted(unlisted)
        unrecorded = self._unrecorded(by_project)
        created = [name for name in by_project if name not in projects]
        current = {p.name: p for p in self.cache.list_projects()} if created else projects
        stateless = [
            (current[name], group) for name, group in by_project.items() if name not in self.states and name in current
        ]
        self._map(self._record_sightings, by_batch(unrecorded))
        self._map(self._record_project, stateless)
        if unrecorded or stateless:
            logger.info(
                "reload recorded %d first sightings of files and %d project states that storage lacked",
                len(unrecorded),
                len(stateless),
            )

    def _unrecorded(self, by_project: dict[str, list[PackageFile]]) -> list[PackageFile]:
        def recorded(file: PackageFile) -> bool:
            sighted = self.sighted.get(file.project, {}).get(file.filename)
            return self.records.get(file.filename) == file.project or (
                sighted is not None and sighted.size == file.size
            )

        return [file for group in by_project.values() for file in group if not recorded(file)]

    def _record_sightings(self, files: list[PackageFile]) -> None:
        record_sightings(self.store, [(file, None) for file in files])

    def _record_project(self, item: tuple[Project, list[PackageFile]]) -> None:
        project, files = item
        state = seed_state(project.name, project, files, project.display_name)
        try:
            # The listing found no state: create it, no read first (one written meanwhile stays).
            self.store.create_project(state)
        except PypicloudLiteError as exc:
            logger.warning("reload could not record the state of %s: %s", project.name, exc.message)


def recover_metadata(storage: Storage, store: StateStore, file: PackageFile) -> bytes | None:
    """The core metadata `file` advertises when its sidecar is missing: from its record, else from its bytes
    (then written back as its sidecar). None when neither gives the metadata the row advertises."""
    raw = store.read_metadata(file)
    if raw is not None:
        return raw
    obj = storage.stat(file.object_key)
    if obj is None:
        return None
    try:
        found, raw = read_description(storage, file, obj, rewritten=True, write_sidecar=False)
    except PypicloudLiteError as exc:
        logger.warning("cannot read the metadata of %s again: %s", file.object_key, exc.message)
        return None
    if raw is None or found.metadata_sha256 != file.metadata_sha256:
        logger.warning("%s has no readable metadata matching what its row advertises", file.object_key)
        return None
    storage.put_bytes(file.sidecar_key, raw)
    return raw


def by_batch(files: Iterable[PackageFile]) -> list[list[PackageFile]]:
    """`files` in batches of one project each, of at most SIGHTINGS_BATCH files."""
    batches: list[list[PackageFile]] = []
    for file in sorted(files, key=lambda f: f.project):
        if not batches or batches[-1][0].project != file.project or len(batches[-1]) >= SIGHTINGS_BATCH:
            batches.append([])
        batches[-1].append(file)
    return batches


def record_sightings(store: StateStore, files: list[tuple[PackageFile, bytes | None]]) -> bool:
    """Record first sightings of one project's files (with their core metadata); False when storage refused."""
    try:
        store.record_sightings(files[0][0].project, files)
    except PypicloudLiteError as exc:
        logger.warning("could not record the first sightings of %d files: %s", len(files), exc.message)
        return False
    return True


def record_rewritten(store: StateStore, file: PackageFile, raw_metadata: bytes | None) -> bool:
    """Record a file whose object another tool rewrote: a record of its own replaces the one of old bytes."""
    try:
        store.write_file(file, raw_metadata)
    except PypicloudLiteError as exc:
        logger.warning("reload could not record %s: %s", file.filename, exc.message)
        return False
    return True
