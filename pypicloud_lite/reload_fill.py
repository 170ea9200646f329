"""The reload's fill: read each object a reload listed bare, record what it says, and apply it to the cache.

Reads run in the reload's threads, or (a large fill of local storage) in niced processes of their own,
which also apply what they read through a cache of their own: the server's process then only hears of
the changes (`FillReport.applied`). Files another tool placed are recorded as first sightings, one
object per batch of one project's files (stored_state.py): a fill of 20,000 files writes about one
object per project, not one per file.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import multiprocessing.context
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from pypicloud_lite.cache import Cache, build_cache
from pypicloud_lite.config import CacheSettings
from pypicloud_lite.errors import NotFound, PypicloudLiteError
from pypicloud_lite.indexing import read_description
from pypicloud_lite.models import Applied, FillDetails, FillMany, PackageFile, ProjectState, RemoveFile
from pypicloud_lite.reload_pacing import Pacer
from pypicloud_lite.reload_state import record_rewritten, record_sightings
from pypicloud_lite.storage.base import Storage, StoredObject
from pypicloud_lite.stored_state import StateStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ToRead:
    listed: PackageFile
    # Its bytes changed since indexed: its sidecar and record describe old bytes.
    rewritten: bool
    sidecar_listed: bool
    # Without a sidecar the object is read anyway, and the listing has said its size and ETag: a HEAD
    # (one more request per file on S3) would only add a checksum.
    trust_listing: bool
    # The first-uploaded file of a project this reload creates: its metadata names the project.
    names_project: bool = False


@dataclass(frozen=True)
class Read:
    listed: PackageFile
    filled: PackageFile | None = None
    gone: bool = False
    error: str | None = None
    # Whether storage took its record (a first sighting, or the record of rewritten bytes) already.
    recorded: bool = False
    # Whether storage took the state of the new project this file names.
    named: bool = False


def next_tick(seconds: float) -> float:
    """The monotonic time of the next multiple of `seconds` on the wall clock, which every process shares."""
    return time.monotonic() + seconds - time.time() % seconds


def fill_tasks(batches: list[list[ToRead]], files: int) -> list[list[list[ToRead]]]:
    """Whole batches, grouped into tasks of at least `files` files each (the last one: what is left)."""
    tasks: list[list[list[ToRead]]] = []
    count = files
    for batch in batches:
        if count >= files:
            tasks.append([])
            count = 0
        tasks[-1].append(batch)
        count += len(batch)
    return tasks


def read_and_record(storage: Storage, batches: list[list[ToRead]], sightings: bool) -> list[tuple[Read, bytes | None]]:
    """Read each object; record rewritten bytes in a record of their own, and (`sightings`) the new files of each
    batch as one object of first sightings, and the state of each new project a file names. Each read comes with
    the core metadata to record, when it is not yet."""
    store, done = StateStore(storage), list[tuple[Read, bytes | None]]()
    for batch in batches:
        reads = [read_one(storage, todo) for todo in batch]
        new = [
            (read.filled, raw)
            for (read, raw), todo in zip(reads, batch, strict=True)
            if read.filled and not todo.rewritten
        ]
        # Their facts go to storage as they are read: from now on their upload times never change.
        sighted = sightings and bool(new) and record_sightings(store, new)
        for (read, raw_metadata), todo in zip(reads, batch, strict=True):
            if read.filled is None:
                done.append((read, None))
            elif todo.rewritten:
                done.append((replace(read, recorded=record_rewritten(store, read.filled, raw_metadata)), None))
            else:
                named = sighted and todo.names_project and name_project(store, read.filled)
                done.append((replace(read, recorded=sighted, named=named), None if sighted else raw_metadata))
    return done


def name_project(store: StateStore, file: PackageFile) -> bool:
    """Create the state of the new project `file` names, as the reload names it (create-only, no read first)."""
    try:
        store.create_project(ProjectState(file.project, file.upload_name))
    except PypicloudLiteError as exc:
        logger.warning("could not record the state of %s: %s", file.project, exc.message)
        return False
    return True


def read_one(storage: Storage, read: ToRead) -> tuple[Read, bytes | None]:
    listed = read.listed
    try:
        if read.trust_listing and listed.storage_etag:
            obj: StoredObject | None = StoredObject(
                listed.object_key, listed.size, listed.upload_time, etag=listed.storage_etag
            )
        else:
            obj = storage.stat(listed.object_key)
        if obj is None:
            return Read(listed, gone=True), None
        # A new file gets no sidecar: its record keeps the metadata, which the metadata view reads from there.
        # A rewritten object's sidecar (if any) describes the old bytes: it is written again.
        filled, raw_metadata = read_description(
            storage,
            listed,
            obj,
            rewritten=read.rewritten,
            sidecar_exists=read.sidecar_listed,
            write_sidecar=read.rewritten,
        )
    except NotFound:
        return Read(listed, gone=True), None
    except PypicloudLiteError as exc:
        return Read(listed, error=exc.message), None
    return Read(listed, filled), raw_metadata


@dataclass
class FillReport:
    """What a fill did with the files it read, for the reload: counts, what storage recorded, the changes made."""

    filled: int = 0
    hashed: int = 0
    failed: int = 0
    # The rows it left with a hash, without their core metadata (the reload's record_back needs the rest).
    indexed: list[PackageFile] = field(default_factory=list)
    # (filename, project) of the files storage has recorded now, and the projects whose state it created.
    recorded: list[tuple[str, str]] = field(default_factory=list)
    named: list[str] = field(default_factory=list)
    # The changes it committed (kept only in a fill's own process, whose listeners are not the server's).
    applied: list[Applied] = field(default_factory=list)


# Records first sightings of files read by threads (not recorded yet); returns the files storage took.
Recorder = Callable[[list[tuple[PackageFile, bytes | None]]], Iterable[PackageFile]]


class FillApplier:
    """What a fill read, applied to the cache in FillMany batches, each under one serial.

    One serial a file would make every page render again after every file. A batch is applied once it has
    `rows` rows or at the first tick of the wall clock's `seconds` grid after its first row, whichever comes
    first (a slow object holds nothing back, and every fill process moves the serial at the same ticks, not
    each at its own moments), and the last one by `flush`. The files of a batch are recorded in storage
    before it is applied: by the reader (read_and_record), or else by `record` first. With a `pool` (one
    thread), batches are applied there while the caller reads on; `drain` waits for them.
    """

    def __init__(
        self,
        cache: Cache,
        rows: int,
        seconds: float,
        *,
        record: Recorder | None = None,
        keep_applied: bool = False,
        pool: Executor | None = None,
    ) -> None:
        self.cache, self.rows, self.seconds = cache, rows, seconds
        self.record, self.keep_applied, self.pool = record, keep_applied, pool
        self.batch: list[FillDetails] = []
        self.unsighted: list[tuple[PackageFile, bytes | None]] = []
        self.due = 0.0
        self.applying: list[Future[None]] = []
        # The report, as the reading thread and the applying one add to it.
        self.lock = threading.Lock()
        self.report = FillReport()
        # The batch, as the reading thread and a ticking one (tick_in_background) change it.
        self.batching = threading.RLock()
        self.failure: BaseException | None = None

    def take(self, todo: ToRead, read: Read, raw_metadata: bytes | None) -> None:
        """One file read: a row to fill in (applied with its batch), a row to remove, or a failure."""
        listed, filled = read.listed, read.filled
        if read.gone:
            # Deleted since the listing: a row without its object is always stale.
            self._applied(self.cache.apply(RemoveFile(listed.filename)), filled=1, failed=1)
            return
        if filled is None:
            logger.warning("reload could not fill in %s: %s", listed.object_key, read.error)
            self._applied(Applied(None), filled=1, failed=1)
            return
        with self.lock:
            self.report.filled += 1
            if read.named:
                self.report.named.append(filled.project)
            if read.recorded:
                self.report.recorded.append((filled.filename, filled.project))
        named = filled.upload_name if todo.names_project and filled.core_metadata else None
        with self.batching:
            if not read.recorded:
                self.unsighted.append((filled, raw_metadata))
            if not self.batch:
                self.due = next_tick(self.seconds)
            self.batch.append(FillDetails(filled, display_name=named))
            if len(self.batch) >= self.rows:
                self.flush()

    def wait(self) -> float | None:
        """Seconds until the pending batch is due (None: nothing pending)."""
        return max(self.due - time.monotonic(), 0.0) if self.batch else None

    def flush_if_due(self) -> None:
        if self.failure is not None:
            raise self.failure  # applying at a tick failed: the fill ends here, as if it had failed here
        if self.batch and time.monotonic() >= self.due:
            self.flush()

    def tick_in_background(self) -> None:
        """Apply a batch its reader left due, from a thread of its own, a quarter of a tick after each tick, as long
        as the process lives: a process waiting for its next task (or for the others to finish theirs) would
        otherwise hold its rows until then. A reader at work applies at the tick itself (flush_if_due), where its
        pacing counts the apply's time too. A failure is raised by the next flush_if_due or flush."""
        late = self.seconds / 4

        def tick() -> None:
            while self.failure is None:
                time.sleep(self.seconds - (time.time() - late) % self.seconds)
                try:
                    with self.batching:
                        self.flush_if_due()
                except BaseException as exc:  # noqa: BLE001 - handed to the reading thread, which raises it
                    self.failure = exc

        threading.Thread(target=tick, name="ppc-fill-tick", daemon=True).start()

    def flush(self) -> None:
        if self.failure is not None:
            raise self.failure
        with self.batching:
            batch = self.batch
            if not batch:
                return
            self.batch = []
            if self.record is not None and self.unsighted:
                recorded = [(f.filename, f.project) for f in self.record(self.unsighted)]
                with self.lock:
                    self.report.recorded.extend(recorded)
            # Without a recorder they were offered to storage as they were read: what it refused is left to
            # record_back.
            self.unsighted = []
            if self.pool is None:
                self._apply(batch)
                return
            for done in [future for future in self.applying if future.done()]:
                done.result()  # an error applying an earlier batch ends the fill here
                self.applying.remove(done)
            self.applying.append(self.pool.submit(self._apply, batch))

    def drain(self) -> None:
        """Wait until every batch handed to the pool is applied (raising what applying one raised)."""
        with self.batching:
            applying, self.applying = self.applying, []
        for future in applying:
            future.result()

    def take_report(self) -> FillReport:
        with self.lock:
            report, self.report = self.report, FillReport()
        return report

    def _apply(self, batch: list[FillDetails]) -> None:
        applied = self.cache.apply(FillMany(batch))
        indexed = [replace(fill.file, core_metadata=None) for fill in batch]
        hashed = len(batch)
        if applied.count != len(batch):
            # Some were refused: their row changed since the listing. Fine if an upload indexed it meanwhile.
            hashed = sum(1 for fill in batch if (row := self.cache.get_file(fill.file.filename)) and row.sha256)
        self._applied(applied, hashed=hashed, failed=len(batch) - hashed, indexed=indexed)

    def _applied(
        self,
        applied: Applied,
        *,
        filled: int = 0,
        hashed: int = 0,
        failed: int = 0,
        indexed: Iterable[PackageFile] = (),
    ) -> None:
        with self.lock:
            report = self.report
            report.filled, report.hashed, report.failed = (
                report.filled + filled,
                report.hashed + hashed,
                report.failed + failed,
            )
            report.indexed.extend(indexed)
            if self.keep_applied and applied.changed:
                report.applied.append(applied)


# The niceness of a fill's processes: background work, they take the CPU the server's request threads leave.
FILL_NICE = 19
# How long a fill process's last flush waits for the others' (which may still be at their last task, paced
# under load): only a guard against a process that hangs.
FLUSH_BARRIER_SECONDS = 3600.0
# What a fill process keeps from its start to its end (start_filler).
_process: list[Filler] = []


class Counts(Protocol):
    """multiprocessing's shared array of three counts, with its lock."""

    def __getitem__(self, index: int) -> int: ...
    def __setitem__(self, index: int, value: int) -> None: ...
    def get_lock(self) -> AbstractContextManager[Any]: ...


class Flag(Protocol):
    """A shared value of multiprocessing (RawValue)."""

    value: int


class BarrierLike(Protocol):
    """multiprocessing's Barrier."""

    def wait(self, timeout: float | None = None) -> int: ...
    def abort(self) -> None: ...


@dataclass
class Filler:
    """A fill process's own: its cache (the reload's, opened again), the counts (filled, hashed, failed) every
    fill process adds to as it goes (the reload's progress moves with each batch, not with each task), the
    barrier of the fill's last flush, whether the server answers requests, the pacer that reads it; and its
    applier, made by its first task, which keeps the rows it has not applied yet from one task to the next."""

    cache: Cache
    counts: Counts
    barrier: BarrierLike
    pacer: Pacer
    applier: FillApplier | None = None


class FillProcesses:
    """The processes of a large fill, started as soon as the reload knows it has one.

    Each starts an interpreter, imports the index and opens the cache again (about a second of CPU): started while
    the reload still applies its listing, that happens before the fill rather than at its start. `counts` are
    the shared counts every process adds to as it goes.
    """

    def __init__(self, settings: CacheSettings, processes: int) -> None:
        context = BackgroundSpawnContext()  # never fork a process that has threads
        self.processes = processes
        self.counts: Counts = context.Array("q", 3)  # filled, hashed, failed
        self.barrier: BarrierLike = context.Barrier(processes)
        # Whether the process that started them answered requests lately (serving): their pacers read it.
        self.busy: Flag = context.RawValue("b", 0)
        self.pool = ProcessPoolExecutor(
            processes,
            mp_context=context,
            initializer=start_filler,
            initargs=(settings, self.counts, self.barrier, self.busy),
        )
        # A spawning pool starts a process per task it cannot give an idle one: one small task each starts them all.
        for _ in range(processes):
            self.pool.submit(os.getpid)

    def flush(self) -> list[Future[FillReport]]:
        """Have every process apply what it holds (flush_task) once the tasks submitted before are taken: one task
        each, as each waits for the others."""
        return [self.pool.submit(flush_task) for _ in range(self.processes)]

    def serving(self, busy: bool) -> None:
        """Tell the processes whether requests came since the last call (reload_pacing.Pacer)."""
        self.busy.value = int(busy)

    def now(self) -> tuple[int, int, int]:
        with self.counts.get_lock():
            return self.counts[0], self.counts[1], self.counts[2]

    def close(self) -> None:
        # A reload that failed before every process reached the last flush leaves some waiting there: released.
        self.barrier.abort()
        # Not waiting for them to exit: each ends its interpreter with the cache's modules loaded (measured: 0.15 s,
        # against 0.03 s without the cache), which the reload, done by then, need not wait for. The pool's own
        # thread joins them.
        self.pool.shutdown(wait=False, cancel_futures=True)


def start_filler(settings: CacheSettings, counts: Counts, barrier: BarrierLike, busy: Flag) -> None:
    """A fill process's start: in the background, with a cache of its own (the reload's, opened again), and
    ending with the process that started it."""
    background()
    apart()
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=end_with, args=(parent.sentinel,), name="ppc-fill-parent", daemon=True).start()
    _process.append(Filler(build_cache(settings), counts, barrier, Pacer(serving=busy)))


def end_with(parent: int) -> None:
    """Exit once the process that started this one is gone (`parent`: its sentinel). A pool's process waits for
    its next task on a pipe it holds both ends of, which a dead parent never closes: it would wait forever."""
    multiprocessing.connection.wait([parent])
    os._exit(1)


class BackgroundSpawnProcess(multiprocessing.context.SpawnProcess):
    """A spawned process that runs in the background from its first instruction (see in_background)."""

    def start(self) -> None:
        in_background(super().start)


class BackgroundSpawnContext(multiprocessing.context.SpawnContext):
    """multiprocessing's spawn start method, its processes started by in_background. Only the processes: a pool's
    own threads, which take the GIL of the process that starts them, keep that process's priority."""

    Process = BackgroundSpawnProcess


def in_background(start: Callable[[], object]) -> None:
    """Call `start` from a thread of its own at background priority, where the kernel keeps priority per thread
    (Linux): a process it starts inherits that priority from its first instruction, so its interpreter's start
    and imports (about half a second of CPU before start_filler runs) give way to requests too. Elsewhere a
    process's priority is shared by its threads: `start` runs here, and start_filler lowers the new process's."""
    if not sys.platform.startswith("linux"):
        start()
        return

    def run() -> None:
        background()
        start()

    # A thread of its own, which ends with the call: its priority never goes back up.
    with ThreadPoolExecutor(1, "ppc-fill-start") as starter:
        starter.submit(run).result()


def apart() -> None:
    """Leave the server's session for one of its own, whose scheduling group (Linux's autogroup) is at the lowest
    weight: a fill process in the server's group, even at SCHED_IDLE, slowed its requests by a third to a half
    under load (every gap between their wake-ups is filled); the same work in a group of its own did not. Its
    parent's end still ends it (end_with), and a signal to the server's process group no longer reaches it."""
    try:
        os.setsid()
    except (AttributeError, OSError):
        return  # not POSIX, or already a group's leader: it stays where it is
    with contextlib.suppress(OSError):
        Path("/proc/self/autogroup").write_text(f"{FILL_NICE}\n")  # Linux, where autogroups exist


def background() -> None:
    """Run only on CPU nothing else wants: niced, and where the kernel has it, SCHED_IDLE, which also gives way at
    once to a request thread that wakes up (a niced process keeps its time slice and delays it)."""
    os.nice(FILL_NICE)
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))


def fill_task(storage: Storage, batches: list[list[ToRead]], rows: int, seconds: float) -> FillReport:
    """Read, record and apply whole batches of files, in a fill process (its cache and counts from start_filler).

    What it read since the last tick stays with the process's applier, which applies it at the next tick, in this
    task or after it (tick_in_background), or at flush_task: a task's end moves no serial. Its report carries no
    counts: they went to the shared ones as each batch was done.
    """
    applier, pacer = _applier(rows, seconds), _process[0].pacer
    for batch in batches:
        started = time.monotonic()
        for (read, raw_metadata), todo in zip(read_and_record(storage, [batch], True), batch, strict=True):
            applier.take(todo, read, raw_metadata)
        applier.flush_if_due()
        _count(applier)
        pacer.rest_after(started)
    return _count(applier, hand_over=True)


def flush_task() -> FillReport:
    """Apply what this fill process still holds, then wait for the others' flush_task (the fill's last tasks), so
    that no process takes two of them."""
    report, applier = FillReport(), _process[0].applier
    if applier is not None:  # else this process ran no fill_task: it holds nothing
        applier.flush()
        applier.drain()
        report = _count(applier, hand_over=True)
    _process[0].barrier.wait(FLUSH_BARRIER_SECONDS)
    return report


def _applier(rows: int, seconds: float) -> FillApplier:
    """This fill process's applier, made by its first task."""
    process = _process[0]
    if process.applier is None:
        cache = process.cache
        # One thread applies each batch while this one reads on, when the cache answers over the network (it
        # waits there); an embedded one applies between the reads (measured: 5,000 files filled 10% sooner).
        # The thread lives as long as the process.
        pool = None if cache.writes_on_the_cpu else ThreadPoolExecutor(1, "ppc-fill-apply")
        process.applier = FillApplier(cache, rows, seconds, keep_applied=True, pool=pool)
        process.applier.tick_in_background()
    return process.applier


def _count(applier: FillApplier, *, hand_over: bool = False) -> FillReport:
    """Move the counts the applier has made so far into the shared ones. `hand_over`: also take its report for the
    reload (the applier starts a new one), under the same lock: a batch the apply or tick thread finishes
    meanwhile counts in the next report, never in one whose counts the reload's progress (read from the shared
    ones) would overwrite."""
    counts = _process[0].counts
    with applier.lock, counts.get_lock():
        report = applier.report
        if hand_over:
            applier.report = FillReport()
        counts[0] += report.filled
        counts[1] += report.hashed
        counts[2] += report.failed
        report.filled = report.hashed = report.failed = 0
    return report
