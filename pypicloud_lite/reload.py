"""Rebuild the cache from what storage holds, without ever serving an empty or half index.

1. Take the reload lease in the cache (one reload at a time, across processes).
2. Snapshot the cache, then list storage (one LIST per 1,000 objects on S3).
3. Diff by filename: added, changed (size or ETag differ), removed, unchanged.
   A row is only removed after a HEAD confirms its object is gone, so a file
   uploaded while the listing ran is never lost.
4. Apply the diff in one transaction: new files are listed at once, from what
   the key and the listing say (name, version, size, time).
5. Fill in what needs the object (sha256 from its checksum or by reading it,
   the core metadata, requires-python, summary) with a bounded pool, and record
   the files read in storage (first sightings, one object per batch of one
   project's files, with a wheel's metadata: no sidecar); the hashes appear in
   the index in batches, each under one serial, at most about a second after
   they were read. A large local fill reads, records and applies in niced
   processes with a cache of their own (reload_fill.py).
6. Only when asked (`verify_sidecars=True`, `ppc-reload --verify-sidecars`,
   `POST /admin/reload?verify_sidecars=1`): read the PEP 658 sidecar of every unchanged
   wheel that advertises metadata (`metadata_sha256`), one GET each, and write back those
   missing or holding other bytes than the row's hash from the object's bytes. Without it
   a missing sidecar costs nothing here: the metadata view reads the file's record, else
   the object, and writes the sidecar back (reload_state.recover_metadata).
   If the object's metadata hashes differently from the row, the row is updated (`FillDetails`).
   Each repair is counted in `repaired` and logged.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace

from pypicloud_lite.activity import requests_begun
from pypicloud_lite.cache import Cache, settings_elsewhere
from pypicloud_lite.errors import Conflict, NotFound, PypicloudLiteError
from pypicloud_lite.indexing import describe_object, listed_file
from pypicloud_lite.models import FillDetails, PackageFile, Project, ReloadChanges, RemoveFile
from pypicloud_lite.naming import (
    INTERNAL_PREFIX,
    METADATA_SUFFIX,
    DistFilename,
    explain_key,
    parse_record_key,
    parse_sighting_key,
    parse_state_key,
)
from pypicloud_lite.reload_fill import (
    FillApplier,
    FillProcesses,
    FillReport,
    Read,
    ToRead,
    fill_task,
    fill_tasks,
    read_one,
)
from pypicloud_lite.reload_state import StoredFacts, by_batch, record_sightings
from pypicloud_lite.storage.base import Storage, StoredObject
from pypicloud_lite.stored_state import StateStore

logger = logging.getLogger(__name__)

LOCK_NAME = "reload"
LOCK_TTL = 300.0
PROGRESS_EVERY = 1000
# How often a fill in processes takes their counts into its progress.
PROGRESS_SECONDS = 0.5
FILL_BATCH_ROWS = 1000
FILL_BATCH_SECONDS = 1.0
# A fill process applies at the ticks every process shares (reload_fill.next_tick), not after so many rows: at
# full speed one reads about 1,250 small files a second. This bound only keeps a batch's memory in check.
FILL_PROCESS_BATCH_ROWS = 5000
# A fill of at least this many files of a storage that reads on the CPU runs in a process of its own, in chunks.
FILL_OUT_OF_PROCESS_MIN = 200
FILL_CHUNK = 50
# How many such processes: the reading is CPU-bound, and each niced process only takes a core the server leaves idle.
FILL_PROCESSES = max(1, min(2, os.cpu_count() or 1))


@dataclass
class ReloadProgress:
    """Counts of a reload; also its final result. Kept in the lock row, readable by every process."""

    state: str = "listing"  # listing, filling, done, failed
    listed: int = 0  # package files (not sidecars, records or strays)
    objects: int = 0  # every object listed
    expected: int = 0  # package files the cache held when the reload began: the listing's estimate of its total
    to_fill: int = 0  # files the fill reads (known once listed and applied)
    filled: int = 0
    started: float = 0.0  # wall-clock seconds since the epoch: elapsed time and ETA on any process
    added: int = 0
    removed: int = 0
    changed: int = 0
    unchanged: int = 0
    hashed: int = 0
    failed: int = 0
    # PEP 658 sidecars rewritten because they were missing or (with verify_sidecars) corrupt.
    repaired: int = 0
    # Objects that are neither a servable distribution nor a sidecar (strays, names the upload
    # checks refuse): left in storage, never indexed.
    skipped: int = 0
    visible_seconds: float | None = None
    complete_seconds: float | None = None
    error: str | None = None
    holder: str = field(default="", repr=False)

    def as_dict(self) -> dict[str, object]:
        data = asdict(self)
        del data["holder"]
        return data


@contextmanager
def _listing_frozen() -> Iterator[None]:
    """Keep what exists now (the listing, the snapshot, the server's own objects) out of the cyclic collector's
    full passes while the fill runs.

    A reload runs in the server's process. Each full pass walked every object the listing made, about 100 ms at
    20,000 files with the GIL held, so every request waited; the fill's reports set off one every second or two.
    Those objects live until the reload ends anyway. Refcounting still frees what is not cyclic meanwhile.
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


class ReloadRun:
    """One reload, holding the lease from `begin_reload` until `execute` ends."""

    def __init__(
        self, storage: Storage, cache: Cache, workers: int, holder: str, verify_sidecars: bool = False
    ) -> None:
        self.storage = storage
        self.verify_sidecars = verify_sidecars
        self.cache = cache
        self.workers = workers
        self.progress = ReloadProgress(holder=holder)
        self.sidecars: set[str] = set()
        # Objects whose bytes changed since indexed: their old sidecar describes the old bytes.
        self.rewritten: set[str] = set()
        self.unfilled: list[PackageFile] = []
        # Unchanged rows advertising a sidecar: (row, whether the listing has the sidecar).
        self.advertised: list[tuple[PackageFile, bool]] = []
        # The first-uploaded file of each project this reload creates: its metadata names the project.
        self.namers: set[str] = set()
        # What storage records beyond the bytes: file records and project states (stored_state.py).
        self.facts = StoredFacts(storage, cache, workers)
        # The rows this reload leaves with a hash, by filename, and the projects the cache had before it:
        # what record_back compares with what storage records, without reading the cache again.
        self.indexed: dict[str, PackageFile] = {}
        self.projects: dict[str, Project] = {}
        self._lock = threading.Lock()
        self._last_report = 0.0
        # A large fill's processes, started once the listing says there is one (_start_processes).
        self._processes: FillProcesses | None = None
        # Files listed so far that neither the cache nor a record (nor a sightings object) listed before them has.
        self._fresh = 0

    def _report(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last_report > 1.0:
            self._last_report = now
            self.cache.update_lock(LOCK_NAME, self.progress.holder, LOCK_TTL, self.progress.as_dict())

    def execute(self, on_visible: Callable[[ReloadProgress], None] | None = None) -> ReloadProgress:
        started = time.monotonic()
        self.progress.started = time.time()
        try:
            added, changed = self._list_and_apply()
            self.progress.visible_seconds = round(time.monotonic() - started, 3)
            if on_visible is not None:
                on_visible(self.progress)
            self.progress.state = "filling"
            self.progress.to_fill = len(added) + len(changed)
            self._report(force=True)
            with _listing_frozen():
                self._fill(added + changed)
            self._repair_sidecars()
            # Facts only the cache held (an index from before stored state) go to storage now: from here
            # on they never change, and a rebuild shows them. The fill recorded the files it read.
            self.facts.record_back(self.indexed.values(), self.projects)
            self.progress.state = "done"
            self.progress.complete_seconds = round(time.monotonic() - started, 3)
            logger.info("reload done: %s", self.progress.as_dict())
        except PypicloudLiteError as exc:
            self.progress.state = "failed"
            self.progress.error = exc.message
            logger.warning("reload failed, nothing removed: %s", exc.message)
            raise
        except Exception as exc:
            self.progress.state = "failed"
            self.progress.error = f"{type(exc).__name__}: {exc}"
            logger.exception("reload failed unexpectedly")
            raise
        finally:
            if self._processes is not None:
                self._processes.close()
            self.cache.release_lock(LOCK_NAME, self.progress.holder, self.progress.as_dict())
        return self.progress

    def _list_and_apply(self) -> tuple[list[PackageFile], list[PackageFile]]:
        # The snapshot comes first: a row written after it belongs to an object written before it.
        snapshot = {f.filename: f for f in self.cache.all_files()}
        self.progress.expected = len(snapshot)
        # Before the states are read: a project changed after this has a serial of its own (state_applies).
        projects = self.projects = {p.name: p for p in self.cache.list_projects()}
        found: dict[str, tuple[DistFilename, StoredObject]] = {}
        for obj in self.storage.list():  # a failure here propagates before anything is applied
            self.progress.objects += 1
            if obj.key.endswith(METADATA_SUFFIX):
                self.sidecars.add(obj.key)
            elif isinstance(dist := explain_key(obj.key), DistFilename):
                found[dist.filename] = (dist, obj)
                self.progress.listed += 1
                self._listed_fresh(dist, snapshot)
            elif (record := parse_record_key(obj.key)) is not None:
                self.facts.records[record[1]] = record[0]
            elif (project := parse_state_key(obj.key)) is not None:
                self.facts.states.add(project)
            elif (sighted := parse_sighting_key(obj.key)) is not None:
                self.facts.sightings.setdefault(sighted, []).append(obj.key)
            elif not obj.key.startswith(INTERNAL_PREFIX):  # the index's own records are no strays
                self.progress.skipped += 1
                logger.warning("reload skips %r: %s", obj.key, dist)
            if self.progress.objects % PROGRESS_EVERY == 0:
                self._report()

        added, changed, etags = self._diff(snapshot, found)
        # What storage recorded of each file and project, rather than what the listing guesses.
        states = self.facts.read_states()
        added = self.facts.as_recorded(added, states)
        changed = self.facts.as_recorded(changed, states, rewritten=True)
        # Files another tool placed (no record) are read once; the rest came complete from their records.
        unread = [f for f in added if f.sha256 is None], [f for f in changed if f.sha256 is None] + self.unfilled
        self._start_processes(len(unread[0]) + len(unread[1]), listed=True)
        self.namers = _namers(added, known={row.project for row in snapshot.values()})
        # Only rows whose object is confirmed gone are removed: an upload racing the listing
        # has its object written before its row, so it is found here.
        removed = []
        for row in (r for name, r in snapshot.items() if name not in found):
            if self.storage.stat(row.object_key) is None:
                removed.append(row.filename)
            self._report()
        # Fencing: a run whose lease lapsed (and may have been taken over) must not apply.
        if not self.cache.update_lock(LOCK_NAME, self.progress.holder, LOCK_TTL, self.progress.as_dict()):
            raise Conflict("This reload lost its lease to another reload; it applied nothing.")
        seen = {name: snapshot[name] for name in [*(f.filename for f in changed), *removed]}
        differing = self.facts.differing(states, projects, snapshot, [*added, *changed], removed)
        serials = {s.name: projects[s.name].serial if s.name in projects else None for s in differing}
        self.cache.apply_reload(ReloadChanges(added, changed, removed, etags, seen, differing, serials))
        gone = {*removed, *(f.filename for f in changed)}
        self.indexed = {name: row for name, row in snapshot.items() if name not in gone and row.sha256 is not None}
        self.indexed.update((f.filename, f) for f in [*added, *changed] if f.sha256 is not None)
        self.progress.added, self.progress.changed, self.progress.removed = len(added), len(changed), len(removed)
        self._report(force=True)
        self._drop_vanished([f for f in added if f.sha256 is not None])
        return unread

    def _drop_vanished(self, recorded: list[PackageFile]) -> None:
        """Take out rows this reload added from records whose objects a delete removed meanwhile.

        A delete removes its row again after its object; a reload that listed the object before it went
        and applied after that second removal would leave a row without its object. The fill's read
        catches that for files it reads; files indexed from their records are not read, so storage is
        listed once more (one LIST per 1,000 objects): a delete that removes its object after this
        listing removes its row after this reload's apply, by itself.
        """
        if not recorded:
            return
        present = {obj.key for obj in self.storage.list()}
        for file in recorded:
            if file.object_key not in present and self.storage.stat(file.object_key) is None:
                self.cache.apply(RemoveFile(file.filename))
                self.indexed.pop(file.filename, None)
                self.progress.added -= 1

    def _diff(
        self, snapshot: dict[str, PackageFile], found: dict[str, tuple[DistFilename, StoredObject]]
    ) -> tuple[list[PackageFile], list[PackageFile], dict[str, str]]:
        """(added, changed, storage ETags to record) by filename; counts the unchanged."""
        added: list[PackageFile] = []
        changed: list[PackageFile] = []
        etags: dict[str, str] = {}
        for filename, (dist, obj) in found.items():
            row = snapshot.get(filename)
            if row is None:
                added.append(listed_file(dist, obj))
            elif row.size != obj.size or (row.storage_etag is not None and row.storage_etag != obj.etag):
                # Its bytes are read again; what the index recorded of its upload (time, uploader, yank) stays.
                kept = {name: getattr(row, name) for name in ("upload_time", "uploader", "yanked", "yanked_reason")}
                changed.append(replace(listed_file(dist, obj), **kept))
                self.rewritten.add(filename)
            else:
                self.progress.unchanged += 1
                if row.storage_etag is None:
                    etags[filename] = obj.etag
                if row.sha256 is None:
                    # Listed by an earlier reload that could not finish filling it in.
                    self.unfilled.append(replace(row, storage_etag=row.storage_etag or obj.etag))
                elif row.metadata_sha256 is not None and self.verify_sidecars:
                    # A missing sidecar needs no reload: the metadata view reads the record, else the object.
                    present = row.sidecar_key in self.sidecars
                    self.advertised.append((replace(row, storage_etag=row.storage_etag or obj.etag), present))
        return added, changed, etags

    def _listed_fresh(self, dist: DistFilename, snapshot: dict[str, PackageFile]) -> None:
        """Count a listed file the fill will likely read, and start the fill's processes once there are enough.

        Likely: the cache has a row of it that an earlier reload listed and did not fill in (it is read again),
        or none, and no record or sightings of it came before it in the listing (storage lists `_ppc/` before
        the folders of lowercase project names). Started then, the processes' start (about half a second of
        CPU each) is over before the listing is applied, not after.
        """
        row = snapshot.get(dist.filename)
        if row is not None:
            if row.sha256 is not None:
                return
        elif dist.filename in self.facts.records or dist.project in self.facts.sightings:
            return
        self._fresh += 1
        if self._fresh == FILL_OUT_OF_PROCESS_MIN:
            self._start_processes(self._fresh, listed=False)

    def _start_processes(self, unfilled: int, *, listed: bool) -> None:
        """Start the processes of a large fill now, so that they start while the listing is applied.

        A large fill of a storage that reads on the CPU runs in niced processes that apply what they read
        through a cache of their own (when the cache can be opened elsewhere): the server's process keeps
        its GIL and a core for its requests, and only hears of the changes. Once the whole listing is known
        (`listed`), processes started on a guess that it falls short of a large fill are closed again.
        """
        large = unfilled >= FILL_OUT_OF_PROCESS_MIN
        if self._processes is not None:
            if listed and not large:
                self._processes.close()
                self._processes = None
            return
        settings = settings_elsewhere(self.cache)
        if settings is not None and self.storage.reads_out_of_process and large:
            self._processes = FillProcesses(settings, FILL_PROCESSES)

    def _fill(self, files: list[PackageFile]) -> None:
        """Read every listed file, record what storage lacks of it, and fill its row in, in batches of one serial each.

        In the processes _start_processes started, if it did; otherwise threads read, and this thread applies.
        """
        if not files:
            return
        reads = [[self._to_read(listed) for listed in group] for group in by_batch(files)]
        if self._processes is not None:
            self._fill_in_processes(reads, self._processes)
        else:
            self._fill_in_threads(reads)

    def _fill_in_processes(self, reads: list[list[ToRead]], processes: FillProcesses) -> None:
        # Tasks of whole batches, enough of them to keep every process busy to the end: each process applies
        # what it read every FILL_PROCESS_BATCH_ROWS rows or at each tick of FILL_BATCH_SECONDS, not at a task's end.
        # Then one flush task per process, queued behind them: a process that runs out of tasks applies what it
        # holds at once, while the others finish theirs.
        chunk = max(FILL_CHUNK, sum(len(group) for group in reads) // (4 * FILL_PROCESSES))
        before = (self.progress.filled, self.progress.hashed, self.progress.failed)
        seen = requests_begun()
        pending = {
            processes.pool.submit(fill_task, self.storage, task, FILL_PROCESS_BATCH_ROWS, FILL_BATCH_SECONDS)
            for task in fill_tasks(reads, chunk)
        }
        pending.update(processes.flush())
        while pending:
            done, pending = wait(pending, timeout=PROGRESS_SECONDS, return_when=FIRST_COMPLETED)
            # Requests since the last look: the processes rest while the kernel also keeps them waiting.
            seen, last_seen = requests_begun(), seen
            processes.serving(seen != last_seen)
            self.progress.filled, self.progress.hashed, self.progress.failed = (
                start + count for start, count in zip(before, processes.now(), strict=True)
            )
            for task in done:
                # An unexpected error fails the reload, as anywhere else (execute closes the processes).
                self._take(task.result())
            self._report()

    def _fill_in_threads(self, reads: list[list[ToRead]]) -> None:
        applier = FillApplier(self.cache, FILL_BATCH_ROWS, FILL_BATCH_SECONDS, record=self._record_sightings)
        done: queue.SimpleQueue[tuple[ToRead, Future[tuple[Read, bytes | None]]]] = queue.SimpleQueue()
        workers = min(self.workers, self.storage.parallel_reads or self.workers)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ppc-reload") as pool:
            try:
                for todo in (todo for group in reads for todo in group):
                    pool.submit(read_one, self.storage, todo).add_done_callback(
                        lambda future, todo=todo: done.put((todo, future))  # type: ignore[misc]
                    )
                for _ in range(sum(len(group) for group in reads)):
                    while True:
                        try:
                            todo, future = done.get(timeout=applier.wait())
                            break
                        except queue.Empty:
                            applier.flush()
                    applier.take(todo, *future.result())
                    applier.flush_if_due()
                    self._take(applier.take_report())
                applier.flush()
                self._take(applier.take_report())
            except BaseException:
                pool.shutdown(cancel_futures=True)
                raise

    def _take(self, report: FillReport) -> None:
        """What a fill did: its counts, its records and project states, and (from a fill process) its changes."""
        self.progress.filled += report.filled
        self.progress.hashed += report.hashed
        self.progress.failed += report.failed
        self.indexed.update((file.filename, file) for file in report.indexed)
        self.facts.records.update(report.recorded)
        self.facts.states.update(report.named)
        for applied in report.applied:
            self.cache.tell(applied)
        self._report()

    def _to_read(self, listed: PackageFile) -> ToRead:
        return ToRead(
            listed,
            listed.filename in self.rewritten,
            listed.sidecar_key in self.sidecars,
            trust_listing=listed.sidecar_key not in self.sidecars and bool(listed.storage_etag),
            names_project=listed.filename in self.namers,
        )

    def _record_sightings(self, unsighted: list[tuple[PackageFile, bytes | None]]) -> list[PackageFile]:
        """Record the first sightings of files threads read (one object per project), in parallel; the files recorded.

        What storage refuses is left to record_back, which tries again at the end.
        """
        raw = {file.filename: metadata for file, metadata in unsighted}
        groups = by_batch(file for file, _ in unsighted)
        store = StateStore(self.storage)
        with ThreadPoolExecutor(max_workers=min(self.workers, len(groups)), thread_name_prefix="ppc-sight") as pool:
            taken = pool.map(lambda group: record_sightings(store, [(f, raw[f.filename]) for f in group]), groups)
            return [file for group, recorded in zip(groups, list(taken), strict=True) if recorded for file in group]

    def _repair_sidecars(self) -> None:
        if not self.advertised:
            return
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="ppc-repair") as pool:
            for repaired in pool.map(self._repair_one, self.advertised):
                if repaired:
                    with self._lock:
                        self.progress.repaired += 1
                self._report()

    def _repair_one(self, item: tuple[PackageFile, bool]) -> bool:
        """Rewrite the sidecar of `row` from its object if it is missing or holds other bytes."""
        row, present = item
        key, sidecar = row.object_key, row.sidecar_key
        try:
            if present:
                try:
                    with self.storage.open(sidecar) as fh:
                        if hashlib.sha256(fh.read()).hexdigest() == row.metadata_sha256:
                            return False
                    why = "corrupt"
                except NotFound:
                    why = "missing"
            else:
                why = "missing"
            obj = self.storage.stat(key)
            if obj is None:
                return False  # deleted meanwhile: the next reload removes its row
            # As if rewritten: the bytes of the object say what the sidecar is, and it is written back.
            filled = describe_object(self.storage, row, obj, rewritten=True)
        except PypicloudLiteError as exc:
            logger.warning("reload could not repair the sidecar of %s: %s", key, exc.message)
            return False
        if filled.metadata_sha256 != row.metadata_sha256 or filled.sha256 != row.sha256:
            # The object's metadata is not what the row advertises: the row follows the bytes.
            self.cache.apply(FillDetails(filled))
        if filled.metadata_sha256 is None:
            logger.warning(
                "reload found the %s sidecar %s; its object has no readable metadata to advertise", why, sidecar
            )
        else:
            logger.warning("reload repaired the %s sidecar %s", why, sidecar)
        return True


def _namers(added: list[PackageFile], known: set[str]) -> set[str]:
    """Filenames of the first-uploaded file of each new project, as an upload would have named it."""
    first: dict[str, PackageFile] = {}
    for file in added:
        if file.project in known:
            continue
        seen = first.get(file.project)
        if seen is None or (file.upload_time, file.filename) < (seen.upload_time, seen.filename):
            first[file.project] = file
    return {file.filename for file in first.values()}


def begin_reload(storage: Storage, cache: Cache, workers: int = 16, verify_sidecars: bool = False) -> ReloadRun:
    """Take the reload lease, or Conflict if another reload (in any process) holds it.

    `verify_sidecars`: also read every advertised PEP 658 sidecar to find corrupt ones (one GET each).
    """
    holder = uuid.uuid4().hex
    if not cache.acquire_lock(LOCK_NAME, holder, LOCK_TTL):
        raise Conflict("A reload is already running; wait for it to finish (GET /admin/reload shows its progress).")
    return ReloadRun(storage, cache, workers, holder, verify_sidecars)
