"""A reload's fill: files listed without a hash are filled in batches, each under one serial, a second apart at most."""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import pytest
from sqlalchemy import create_engine

from pypicloud_lite import reload as reload_module
from pypicloud_lite import reload_fill
from pypicloud_lite.cache import build_cache, settings_elsewhere
from pypicloud_lite.cache.sql import SQLCache
from pypicloud_lite.config import load_settings
from pypicloud_lite.errors import ConfigError
from pypicloud_lite.indexing import describe_object, listed_file
from pypicloud_lite.models import Applied, FillMany, ReloadChanges
from pypicloud_lite.naming import parse_filename
from pypicloud_lite.reload import ReloadProgress
from pypicloud_lite.storage.base import StoredObject
from tests.support.distbuilder import build_wheel
from tests.support.legacy import wheel_metadata
from tests.support.reload import Env, counts, open_rebuilt, put_raw, sha256

FILES = 250


def _put_bulk(env: Env, count: int) -> dict[str, bytes]:
    """`count` small objects of one project, as another tool leaves them (no checksum, no sidecar)."""
    bodies = {f"bulk-1.{n}.tar.gz": b"bulk %d\n" % n for n in range(count)}
    for filename, body in bodies.items():
        put_raw(env.storage, f"bulk/{filename}", body)
    return bodies


def _assert_filled(env: Env, bodies: dict[str, bytes]) -> None:
    rows = env.rows()
    assert {name: row.sha256 for name, row in rows.items()} == {name: sha256(b) for name, b in bodies.items()}


def test_a_fill_moves_the_serial_once_per_batch(cache_env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    env = cache_env
    bodies = _put_bulk(env, FILES)
    monkeypatch.setattr(reload_module, "FILL_BATCH_ROWS", 100)
    monkeypatch.setattr(reload_module, "FILL_PROCESS_BATCH_ROWS", 100)
    monkeypatch.setattr(reload_module, "FILL_BATCH_SECONDS", 3600.0)  # only the row count flushes
    heard: list[Applied] = []
    env.cache.subscribe(heard.append)
    visible: list[int] = []

    def on_visible(_progress: ReloadProgress) -> None:
        visible.append(len(heard))

    result = env.index.begin_reload(8).execute(on_visible=on_visible)

    assert counts(result)["hashed"] == FILES
    fill = heard[visible[0] :]
    # 100 + 100 of the project's first batch of 200 files and its second batch of 50, each under one serial
    # (its batches may be read and applied in parallel, by processes of their own: in any order).
    assert sorted(a.count for a in fill) == [50, 100, 100]
    assert len({a.serial for a in fill}) == len(fill)
    assert env.cache.serial() == max(a.serial or 0 for a in fill)
    _assert_filled(env, bodies)


def test_filled_rows_wait_a_bounded_time_not_for_a_slow_file(cache_env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    env = cache_env
    bodies = _put_bulk(env, 20)
    monkeypatch.setattr(reload_module, "FILL_BATCH_SECONDS", 0.05)
    # The last one listed: however many threads read, every other file is read while it blocks.
    slow, release = [obj.key for obj in env.storage.list()][-1], threading.Event()
    real_open = env.storage.open

    def slow_open(key: str, *args: Any) -> BinaryIO:
        if key == slow:
            release.wait(60)
        return real_open(key, *args)

    monkeypatch.setattr(env.storage, "open", slow_open)
    outcome: list[ReloadProgress | BaseException] = []

    def run() -> None:
        try:
            outcome.append(env.reload(workers=4))
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        others = {name for name in bodies if f"bulk/{name}" != slow}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            rows = env.rows()
            if all(rows.get(name) is not None and rows[name].sha256 for name in others):
                break
            time.sleep(0.02)
        rows = env.rows()
        assert {name for name in others if rows[name].sha256} == others, "filled rows waited for the slow file"
        assert rows[slow.removeprefix("bulk/")].sha256 is None
    finally:
        release.set()
        thread.join(60)
    assert isinstance(outcome[0], ReloadProgress)
    assert counts(outcome[0])["hashed"] == 20
    _assert_filled(env, bodies)


def test_what_the_listing_made_is_kept_out_of_full_collections_while_the_fill_runs(
    local_env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full pass of the cyclic collector over the listing held the GIL for ~100 ms at 20,000 files."""
    env = local_env
    bodies = _put_bulk(env, 20)
    listed: list[object] = []
    frozen_while_filling: list[int] = []
    real_list, real_open = env.storage.list, env.storage.open

    def list_(*args: Any) -> Any:
        for obj in real_list(*args):
            listed.append(obj)
            yield obj

    def open_(key: str, *args: Any) -> BinaryIO:
        frozen_while_filling.append(gc.get_freeze_count())
        return real_open(key, *args)

    monkeypatch.setattr(env.storage, "list", list_)
    monkeypatch.setattr(env.storage, "open", open_)
    result = env.reload(workers=1)

    assert counts(result)["hashed"] == 20
    assert frozen_while_filling and min(frozen_while_filling) >= len(listed) >= 20
    assert gc.get_freeze_count() == 0  # collected as usual once the reload is done
    _assert_filled(env, bodies)


def test_a_fill_from_local_storage_reads_in_one_thread(local_env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    # Local reads are CPU under the GIL: more threads only take turns with the threads serving pages.
    env = local_env
    bodies = _put_bulk(env, 40)
    real_open, threads = env.storage.open, set()

    def open_(key: str, *args: Any) -> BinaryIO:
        threads.add(threading.get_ident())
        time.sleep(0.001)  # let a pool of several threads take turns, if it has them
        return real_open(key, *args)

    monkeypatch.setattr(env.storage, "open", open_)
    result = env.reload(workers=8)

    assert counts(result)["hashed"] == 40
    assert len(threads) == 1
    _assert_filled(env, bodies)


def test_a_large_local_fill_reads_in_a_process_of_its_own(local_env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading is CPU: past FILL_OUT_OF_PROCESS_MIN files it leaves the server's process (and its GIL)."""
    env = local_env
    wheels = [build_wheel(env.dists, "Bulk", f"1.{n}") for n in range(12)]
    for wheel in wheels:
        put_raw(env.storage, f"bulk/{wheel.name}", wheel.read_bytes())
    visible: list[int] = []
    # For each pool: whether the reload's listing was visible yet when it started.
    pools: list[bool] = []
    real_pool = reload_fill.ProcessPoolExecutor

    def spy(*args: Any, **kwargs: Any) -> Any:
        pools.append(bool(visible))
        return real_pool(*args, **kwargs)

    monkeypatch.setattr(reload_fill, "ProcessPoolExecutor", spy)
    monkeypatch.setattr(reload_module, "FILL_OUT_OF_PROCESS_MIN", 10)
    monkeypatch.setattr(reload_module, "FILL_CHUNK", 5)
    applied_here: list[object] = []
    real_apply = env.cache.apply
    monkeypatch.setattr(env.cache, "apply", lambda change: applied_here.append(change) or real_apply(change))
    heard: list[Applied] = []
    env.cache.subscribe(heard.append)

    result = env.index.begin_reload(4).execute(on_visible=lambda _progress: visible.append(len(heard)))

    # Started while the listing was applied, not once the fill began.
    assert pools == [False] and counts(result)["hashed"] == 12
    # The processes applied the rows through a cache of their own; this process's listeners heard of it.
    assert not [change for change in applied_here if isinstance(change, FillMany)]
    assert sum(a.count for a in heard[visible[0] :]) == 12
    assert env.cache.serial() == max(a.serial or 0 for a in heard)
    rows = env.rows()
    for wheel in wheels:
        assert rows[wheel.name].sha256 == sha256(wheel.read_bytes())
        assert rows[wheel.name].metadata_sha256 == sha256(wheel_metadata(wheel))
        # The process recorded each file, with the metadata its .metadata URL serves.
        assert env.index.read_metadata(rows[wheel.name]) == wheel_metadata(wheel)
    assert env.reload().hashed == 0, "a second reload finds every file recorded"


def test_fill_processes_apply_at_shared_ticks_and_not_at_each_tasks_end(
    local_env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A task's end moves no serial: what a process read since its last tick waits for the next one, or for the
    fill's last flush, one per process. Here no tick comes within the fill: four tasks, at most two moves."""
    env = local_env
    wheels = [build_wheel(env.dists, f"Proj{n}", "1.0") for n in range(20)]
    for wheel in wheels:
        put_raw(env.storage, f"{wheel.name.split('-')[0].lower()}/{wheel.name}", wheel.read_bytes())
    monkeypatch.setattr(reload_module, "FILL_OUT_OF_PROCESS_MIN", 10)
    monkeypatch.setattr(reload_module, "FILL_CHUNK", 5)
    monkeypatch.setattr(reload_module, "FILL_BATCH_SECONDS", 3600.0)
    tasks: list[int] = []
    real_tasks = reload_module.fill_tasks
    monkeypatch.setattr(reload_module, "fill_tasks", lambda *args: tasks.append(len(made := real_tasks(*args))) or made)
    heard: list[Applied] = []
    env.cache.subscribe(heard.append)
    visible: list[int] = []

    result = env.index.begin_reload(4).execute(on_visible=lambda _progress: visible.append(len(heard)))

    assert counts(result)["hashed"] == 20 and tasks == [4]
    moves = [applied for applied in heard[visible[0] :] if applied.changed]
    assert 1 <= len(moves) <= reload_module.FILL_PROCESSES
    assert sum(applied.count for applied in moves) == 20
    assert {row.sha256 for row in env.rows().values()} == {sha256(wheel.read_bytes()) for wheel in wheels}


def test_every_fill_process_applies_at_the_same_tick_of_the_wall_clock() -> None:
    for seconds in (1.0, 0.25):
        tick = reload_fill.next_tick(seconds)
        wall = time.time() + (tick - time.monotonic())
        assert 0 < tick - time.monotonic() <= seconds
        assert min(wall % seconds, seconds - wall % seconds) < 0.01


@pytest.mark.parametrize("requests", [True, False])
def test_the_reload_tells_its_fill_processes_whether_the_server_answers_requests(
    local_env: Env, monkeypatch: pytest.MonkeyPatch, requests: bool
) -> None:
    env = local_env
    wheels = [build_wheel(env.dists, "Bulk", f"1.{n}") for n in range(12)]
    for wheel in wheels:
        put_raw(env.storage, f"bulk/{wheel.name}", wheel.read_bytes())
    monkeypatch.setattr(reload_module, "FILL_OUT_OF_PROCESS_MIN", 10)
    monkeypatch.setattr(reload_module, "FILL_CHUNK", 5)
    monkeypatch.setattr(reload_module, "PROGRESS_SECONDS", 0.01)
    begun = iter(range(1_000_000))
    monkeypatch.setattr(reload_module, "requests_begun", lambda: next(begun) if requests else 7)
    told: list[bool] = []
    real = reload_fill.FillProcesses.serving
    monkeypatch.setattr(reload_fill.FillProcesses, "serving", lambda self, busy: told.append(busy) or real(self, busy))

    assert counts(env.reload())["hashed"] == 12
    assert told and set(told) == {requests}


class _Applying:
    """A cache that only counts the FillMany batches applied to it (or fails them)."""

    writes_on_the_cpu = True

    def __init__(self, error: Exception | None = None) -> None:
        self.batches: list[int] = []
        self.error = error

    def apply(self, change: Any) -> Applied:
        if self.error is not None:
            raise self.error
        self.batches.append(len(change.fills))
        return Applied(len(self.batches), len(change.fills))


def _take_one(applier: reload_fill.FillApplier, n: int) -> None:
    key = f"tick/tick-1.{n}.tar.gz"
    listed = listed_file(parse_filename(key.split("/")[1]), StoredObject(key, 10, datetime.now(UTC), etag="e"))
    filled = replace(listed, sha256="0" * 64)
    applier.take(reload_fill.ToRead(listed, False, False, True), reload_fill.Read(listed, filled, recorded=True), None)


def test_a_fill_process_between_tasks_applies_what_it_holds_at_the_next_tick() -> None:
    cache = _Applying()
    applier = reload_fill.FillApplier(cache, 1000, 0.2, keep_applied=True)  # type: ignore[arg-type]
    applier.tick_in_background()
    _take_one(applier, 1)
    _take_one(applier, 2)
    # Nobody calls flush_if_due (the process waits for its next task): the tick applies them.
    deadline = time.monotonic() + 5
    while not cache.batches and time.monotonic() < deadline:
        time.sleep(0.02)
    assert cache.batches == [2] and applier.batch == []
    assert applier.take_report().hashed == 2


def test_a_failure_to_apply_at_a_tick_ends_the_fill_in_its_reading_thread() -> None:
    cache = _Applying(error=RuntimeError("database gone"))
    applier = reload_fill.FillApplier(cache, 1000, 0.2)  # type: ignore[arg-type]
    applier.tick_in_background()
    _take_one(applier, 1)
    deadline = time.monotonic() + 5
    while applier.failure is None and time.monotonic() < deadline:
        time.sleep(0.02)
    with pytest.raises(RuntimeError, match="database gone"):
        applier.flush_if_due()
    with pytest.raises(RuntimeError, match="database gone"):
        applier.flush()


def _pools_as_listed(env: Env, monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], list[list[str]]]:
    """(the keys storage has listed so far, the keys listed when each fill pool started), with a large fill
    starting at the tenth file it will read."""
    listed: list[str] = []
    storage_class = type(env.storage)  # the class: the storage itself goes to the fill processes, pickled
    real_list = storage_class.list

    def list_(self: Any, prefix: str = "") -> Any:
        for obj in real_list(self, prefix):
            listed.append(obj.key)
            yield obj

    pools: list[list[str]] = []
    real_pool = reload_fill.ProcessPoolExecutor

    def spy(*args: Any, **kwargs: Any) -> Any:
        pools.append(list(listed))
        return real_pool(*args, **kwargs)

    monkeypatch.setattr(storage_class, "list", list_)
    monkeypatch.setattr(reload_fill, "ProcessPoolExecutor", spy)
    monkeypatch.setattr(reload_module, "FILL_OUT_OF_PROCESS_MIN", 10)
    monkeypatch.setattr(reload_module, "FILL_CHUNK", 5)
    return listed, pools


def test_rows_an_earlier_reload_left_unfilled_start_the_processes_while_storage_is_listed(
    local_env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An interrupted reload leaves rows without a hash, which the next one reads again: they count as files the
    fill will read, so its processes start in the listing as they do for files the cache has no row of."""
    env = local_env
    keys = [f"bulk/bulk-1.{n}.tar.gz" for n in range(12)]
    for n, key in enumerate(keys):
        put_raw(env.storage, key, b"bulk %d\n" % n)
    rows = []
    for key in keys:
        stored = env.storage.stat(key)
        assert stored is not None
        rows.append(listed_file(parse_filename(key.split("/")[1]), stored))
    env.cache.apply_reload(ReloadChanges(added=rows))
    listed, pools = _pools_as_listed(env, monkeypatch)

    assert counts(env.reload())["hashed"] == 12
    assert [len(keys) for keys in pools] == [10], "started at the tenth row left unfilled, in the listing"
    assert len(listed) == 12


def test_a_large_fill_starts_its_processes_while_storage_is_listed(
    local_env: Env, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Their start (half a second of CPU each) overlaps the rest of the listing and its apply: they are started
    once the listing has shown enough files the fill will read, not once it has ended. Files that storage
    records (their records are listed before them) start none: a rebuild from storage reads nothing."""
    env = local_env
    for n in range(12):
        put_raw(env.storage, f"bulk/bulk-1.{n}.tar.gz", b"bulk %d\n" % n)
    listed, pools = _pools_as_listed(env, monkeypatch)

    assert counts(env.reload())["hashed"] == 12
    assert len(pools) == 1 and len(pools[0]) == 10, "started at the tenth file the fill reads, in the listing"
    assert len(listed) == 12, "and the listing went on after that"

    with open_rebuilt(env, request, tmp_path) as rebuilt:
        pools.clear()
        result = rebuilt.reload()
    assert (counts(result)["added"], counts(result)["hashed"], pools) == (12, 0, [])

    # A project whose folder comes before `_ppc/` in the listing: its files look unread until their sightings are
    # listed. The processes started on that guess are closed once the listing shows there is nothing to read.
    for n in range(12):
        put_raw(env.storage, f"0bulk/0bulk-1.{n}.tar.gz", b"0bulk %d\n" % n)
    assert counts(env.reload())["hashed"] == 12
    closed: list[object] = []
    real_close = reload_fill.FillProcesses.close
    monkeypatch.setattr(reload_fill.FillProcesses, "close", lambda self: closed.append(self) or real_close(self))
    (tmp_path / "again").mkdir()
    with open_rebuilt(env, request, tmp_path / "again") as rebuilt:
        pools.clear()
        result = rebuilt.reload()
    assert (counts(result)["added"], counts(result)["hashed"], len(pools), len(closed)) == (24, 0, 1, 1)
    assert pools[0][-1].startswith("0bulk/")


@pytest.mark.parametrize("listed_size", [0, 10, None])
def test_a_file_is_read_whole_whatever_size_the_listing_said(local_env: Env, listed_size: int | None) -> None:
    """The read asks for the listed size and one byte more: bytes that grew or shrank since are read whole."""
    env = local_env
    wheel = build_wheel(env.dists, "Grown", "1.0")
    key = env.put(wheel)
    obj = env.storage.stat(key)
    assert obj is not None
    listed = listed_file(parse_filename(wheel.name), obj)
    size = obj.size * 2 if listed_size is None else listed_size
    found = describe_object(env.storage, listed, replace(obj, size=size), sidecar_exists=False)
    assert found.sha256 == sha256(wheel.read_bytes())
    assert found.metadata_sha256 == sha256(wheel_metadata(wheel))


def test_a_fill_process_opens_the_same_cache_without_setting_it_up() -> None:
    settings = load_settings(
        {"storage.dir": "/var/lib/ppc/packages", "cache.url": "sqlite:////var/lib/ppc/cache.sqlite"}, environ={}
    )
    cache = SQLCache(create_engine("sqlite://"))
    assert settings_elsewhere(cache) is None, "built by hand: nothing says how to open it again"
    cache.built_from, cache.cdn_outbox = settings.cache, True
    elsewhere = settings_elsewhere(cache)
    assert elsewhere is not None
    assert (elsewhere.url, elsewhere.migrate_on_start, elsewhere.check_schema, elsewhere.cdn_outbox) == (
        settings.cache.url,
        False,
        False,
        True,
    )
    for memory in ("sqlite://", "sqlite:///:memory:", "sqlite:///file::memory:?cache=shared&uri=true"):
        cache.built_from = replace(settings.cache, url=memory)
        assert settings_elsewhere(cache) is None, memory


def test_a_fill_process_leaves_the_schema_check_to_the_server(tmp_path: Path) -> None:
    """The server checked the schema's revision at its start; a fill process opening the same database does not
    load the schema's history again (half a second of CPU in a new process). Shown on a database not at head:
    the server's settings refuse it, the settings elsewhere open it."""
    url = f"sqlite:///{tmp_path}/behind.sqlite"
    create_engine(url).connect().close()  # an empty database: no schema revision at all
    settings = load_settings({"storage.dir": str(tmp_path / "packages"), "cache.url": url}, environ={})
    with pytest.raises(ConfigError, match="schema is at revision none"):
        SQLCache.from_settings(settings.cache)
    cache = SQLCache.from_settings(replace(settings.cache, check_schema=False))
    cache.close()


def _priority(answers: Any) -> None:
    """A spawned process's target: its niceness and scheduling policy, as it found them (nothing set them)."""
    answers.put((os.getpriority(os.PRIO_PROCESS, 0), os.sched_getscheduler(0)))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="priority is kept per thread on Linux only")
def test_a_fill_process_runs_in_the_background_from_its_start() -> None:
    """Its interpreter's start and imports come before any code of ours runs in it: it is started at background
    priority, by a thread of its own, while the thread that asked keeps its priority."""
    context = reload_fill.BackgroundSpawnContext()
    answers = context.SimpleQueue()
    before = (os.getpriority(os.PRIO_PROCESS, 0), os.sched_getscheduler(0))
    process = context.Process(target=_priority, args=(answers,))
    process.start()
    try:
        assert answers.get() == (reload_fill.FILL_NICE, os.SCHED_IDLE)
    finally:
        process.join(30)
    assert process.exitcode == 0
    assert (os.getpriority(os.PRIO_PROCESS, 0), os.sched_getscheduler(0)) == before


def _session() -> tuple[int, str | None]:
    """In a fill process: its session, and its scheduling group as Linux shows it (None where there are none)."""
    group = Path("/proc/self/autogroup")
    return os.getsid(0), group.read_text().strip() if group.exists() else None


def _two_fill_processes(tmp_path: Path) -> reload_fill.FillProcesses:
    """A large fill's two processes, on a SQLite cache under `tmp_path` set up as the server would."""
    raw = {
        "storage.dir": str(tmp_path),
        "cache.url": f"sqlite:///{tmp_path}/cache.sqlite",
        "cache.migrate_on_start": "1",
    }
    settings = load_settings(raw, environ={})
    build_cache(settings.cache).close()
    return reload_fill.FillProcesses(settings.cache, 2)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sessions and autogroups as Linux has them")
def test_a_fill_process_runs_in_a_session_and_a_scheduling_group_of_its_own(tmp_path: Path) -> None:
    """In the server's scheduling group even SCHED_IDLE work slowed its requests (bench/README.md, tenth pass)."""
    processes = _two_fill_processes(tmp_path)
    try:
        seen = {processes.pool.submit(_session).result() for _ in range(4)}
    finally:
        processes.close()
    assert os.getsid(0) not in {session for session, _group in seen}
    groups = {group for _session, group in seen}
    if None not in groups:
        assert all(group.endswith(f"nice {reload_fill.FILL_NICE}") for group in groups if group), groups


def test_a_fill_that_ends_early_releases_the_processes_waiting_at_its_last_flush(tmp_path: Path) -> None:
    """One process at the last flush waits for the others; a reload that failed meanwhile never sends them theirs."""
    processes = _two_fill_processes(tmp_path)
    waiting = processes.pool.submit(reload_fill.flush_task)
    time.sleep(0.5)
    started = time.monotonic()
    processes.close()
    with pytest.raises(threading.BrokenBarrierError):
        waiting.result(timeout=30)
    assert time.monotonic() - started < 30


_STARTS_A_FILL = """
import multiprocessing, sys, time
from pypicloud_lite.cache import build_cache
from pypicloud_lite.config import load_settings
from pypicloud_lite.reload_fill import FillProcesses

if __name__ == "__main__":
    folder = sys.argv[1]
    raw = {"storage.dir": folder, "cache.url": f"sqlite:///{folder}/cache.sqlite", "cache.migrate_on_start": "1"}
    settings = load_settings(raw, {})
    build_cache(settings.cache).close()
    processes = FillProcesses(settings.cache, 2)
    for started in [processes.pool.submit(time.sleep, 0.5) for _ in range(4)]:
        started.result()
    print(*[child.pid for child in multiprocessing.active_children()], flush=True)
    time.sleep(120)
"""


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_fill_processes_end_with_the_process_that_started_them(tmp_path: Path) -> None:
    """A server killed during a fill leaves no fill process behind (each waits on a pipe it holds both ends of)."""
    script = tmp_path / "starts_a_fill.py"
    script.write_text(_STARTS_A_FILL)
    starter = subprocess.Popen([sys.executable, str(script), str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert starter.stdout is not None
        children = [int(pid) for pid in starter.stdout.readline().split()]
        assert len(children) == 2 and all(_running(pid) for pid in children)
    finally:
        starter.kill()
        starter.wait()
    deadline = time.monotonic() + 30
    while any(_running(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [pid for pid in children if _running(pid)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, "fill processes outlived the process that started them"
