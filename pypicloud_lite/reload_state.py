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
from pypicloud_lite.models import PackageFile, Project, ProjectState
from pypicloud_lite.storage.base import Storage
from pypicloud_lite.stored_state import StateStore, seed_state

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
        # From the listing: the project of each filename's record, and the projects with a state.
        self.records: dict[str, str] = {}
        self.states: set[str] = set()

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
        """Listed files as their records and project states describe them; those without a record stay listed.

        `rewritten`: objects whose bytes changed since they were indexed: their records describe old bytes.
        """

        def recorded(listed: PackageFile) -> PackageFile:
            state = states.get(listed.project)
            if rewritten or self.records.get(listed.filename) != listed.project:
                return as_stored(listed, state)
            record = self.store.read_file(listed.project, listed.filename)
            if record is None or record.size != listed.size:
                # Another tool rewrote the object: its bytes decide, read by the fill.
                return as_stored(listed, state)
            found = replace(record, storage_etag=listed.storage_etag, key=listed.key)
            return as_stored(found, state)

        return self._map(recorded, files)

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

    def record_back(self, rewritten: set[str]) -> None:
        """Write what storage lacks: records of files indexed without one, states of projects without one.

        Create-only: a record or state written meanwhile by an upload is the truth and stays. The
        records of `rewritten` files (another tool put other bytes under their keys) are replaced.
        """
        files = [f for f in self.cache.all_files() if f.sha256 is not None]
        replaced = [f for f in files if f.filename in rewritten]
        unrecorded = [f for f in files if self.records.get(f.filename) != f.project and f.filename not in rewritten]
        stateless = [p for p in self.cache.list_projects() if p.name not in self.states]
        self._map(self.store.write_file, replaced)
        self._map(self._record_file, unrecorded)
        self._map(self._record_project, stateless)
        if unrecorded or stateless:
            logger.info(
                "reload recorded %d file records and %d project states that storage lacked",
                len(unrecorded),
                len(stateless),
            )

    def _record_file(self, file: PackageFile) -> None:
        try:
            self.store.record_first_sight(file)
        except PypicloudLiteError as exc:
            logger.warning("reload could not record %s: %s", file.filename, exc.message)

    def _record_project(self, project: Project) -> None:
        files = self.cache.project_files(project.name)
        state = seed_state(project.name, project, files, project.display_name)
        try:
            self.store.update_project(project.name, lambda current: current or state)
        except PypicloudLiteError as exc:
            logger.warning("reload could not record the state of %s: %s", project.name, exc.message)
