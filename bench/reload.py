"""Reload benchmark: how long a reload of an S3 bucket takes next to a bare LIST of that bucket.

    .venv/bin/python -m bench.reload [--objects 20000] [--workers 16]

Starts moto (in a child process: S3 is another machine, not threads sharing our GIL),
fills a bucket with N real tiny distributions (wheels and sdists of many projects x a
few versions; a fraction "uploaded through the server", i.e. with a SHA-256 checksum
and a .metadata sidecar, the rest bare as another tool or replication leaves them),
then measures in one run:

1. the bare LIST: the whole prefix through a plain boto3 paginator (the reference);
2. a reload into an empty SQLite cache: time until every file is visible (on_visible)
   and until every file is hashed (complete), S3 calls by operation, and where the
   visible phase spends its time;
3. a second reload with nothing changed.

Everything runs on 127.0.0.1 and stops by itself. See bench/README.md. The fill phase alone against
bare reads (local, S3, DynamoDB), the pages during a fill, and uploads: bench/fill.py,
bench/fill_pages.py, bench/upload.py.
"""

from __future__ import annotations

import argparse
import base64
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from bench.corpus import Dist, build_corpus
from pypicloud_lite.cache.sql import SQLCache
from pypicloud_lite.config import load_settings
from pypicloud_lite.reload import ReloadProgress, begin_reload
from pypicloud_lite.storage.s3 import S3Storage
from tests.support.aws import FAKE_CREDENTIALS, REGION, Moto, moto_server

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "packages/"
GOAL_RATIO = 2.0


def s3_client(moto: Moto, pool: int) -> Any:
    config = Config(
        max_pool_connections=pool,
        retries={"mode": "standard", "max_attempts": 3},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    return boto3.client("s3", endpoint_url=moto.endpoint_url, region_name=REGION, config=config)


def put_corpus(moto: Moto, bucket: str, dists: list[Dist], threads: int) -> None:
    """PUT straight into the bucket; via_server files as S3Storage.put_new + put_bytes write them.

    A bare file is what another tool or replication leaves: the object alone, no checksum, no sidecar.
    """
    client = s3_client(moto, threads)

    def put(d: Dist) -> None:
        key = PREFIX + d.key
        if d.via_server:
            checksum = base64.b64encode(bytes.fromhex(d.sha256)).decode()
            # As S3Storage.put_new writes it: the algorithm makes S3 (and moto) keep the checksum.
            client.put_object(
                Bucket=bucket,
                Key=key,
                Body=d.data,
                IfNoneMatch="*",
                ChecksumAlgorithm="SHA256",
                ChecksumSHA256=checksum,
            )
            client.put_object(Bucket=bucket, Key=key + ".metadata", Body=d.metadata, ChecksumAlgorithm="SHA256")
        else:
            client.put_object(Bucket=bucket, Key=key, Body=d.data)

    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="bench-put") as pool:
        for _ in pool.map(put, dists):
            pass


# -- measuring ------------------------------------------------------------------


class CallCounter:
    """S3 calls by operation, counted at boto3's before-call event (one per API call, retries not counted)."""

    def __init__(self, client: Any) -> None:
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        client.meta.events.register("before-call.s3.*", self._count)

    def _count(self, model: Any, **_: Any) -> None:
        with self._lock:
            self.counts[model.name] += 1

    def take(self) -> Counter[str]:
        with self._lock:
            taken, self.counts = self.counts, Counter()
        return taken


@dataclass
class Breakdown:
    """Where the visible phase spends its wall time, measured by wrapping the instances' methods."""

    seconds: dict[str, float] = field(default_factory=dict)
    calls: Counter[str] = field(default_factory=Counter)

    def _add(self, label: str, seconds: float, calls: int) -> None:
        self.seconds[label] = self.seconds.get(label, 0.0) + seconds
        self.calls[label] += calls

    def wrap(self, obj: Any, method: str, label: str) -> None:
        inner = getattr(obj, method)

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self._add(label, time.perf_counter() - started, 1)

        setattr(obj, method, timed)

    def wrap_iter(self, obj: Any, method: str, label: str) -> None:
        """A generator's time is spent in next(): count that, not the caller's loop body."""
        inner = getattr(obj, method)

        def timed(*args: Any, **kwargs: Any) -> Iterator[Any]:
            it = inner(*args, **kwargs)
            while True:
                started = time.perf_counter()
                try:
                    item = next(it)
                except StopIteration:
                    return
                finally:
                    self._add(label, time.perf_counter() - started, 0)
                yield item

        setattr(obj, method, timed)

    def copy(self) -> Breakdown:
        return Breakdown(dict(self.seconds), Counter(self.calls))


def process_cpu(pid: int | None) -> float:
    """User+system CPU seconds of a process: ours (all threads) when pid is None, else from /proc."""
    if pid is None:
        return time.process_time()
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class ReloadResult:
    visible: float
    complete: float
    progress: ReloadProgress
    calls_visible: Counter[str]
    calls_fill: Counter[str]
    breakdown: Breakdown
    cpu_fill: float  # this process, during the fill phase
    moto_cpu_fill: float  # the moto process, during the fill phase (nan when in-process)


def run_reload(
    storage: S3Storage, cache: SQLCache, workers: int, counter: CallCounter, moto_pid: int | None
) -> ReloadResult:
    breakdown = Breakdown()
    # Instance attributes shadow the methods for this run only.
    breakdown.wrap(cache, "all_files", "snapshot (cache.all_files)")
    breakdown.wrap_iter(storage, "list", "S3 LIST (storage.list)")
    breakdown.wrap(storage, "stat", "HEAD of vanished rows (storage.stat)")
    breakdown.wrap(cache, "apply_reload", "apply (cache.apply_reload)")
    breakdown.wrap(cache, "update_lock", "progress (cache.update_lock)")
    counter.take()
    marks: dict[str, Any] = {}
    started = time.perf_counter()

    def on_visible(_progress: ReloadProgress) -> None:
        marks["visible"] = time.perf_counter() - started
        marks["calls"] = counter.take()
        # Later stat/update_lock calls belong to the fill phase.
        marks["breakdown"] = breakdown.copy()
        marks["cpu"] = process_cpu(None)
        marks["moto_cpu"] = process_cpu(moto_pid) if moto_pid else float("nan")

    try:
        progress = begin_reload(storage, cache, workers).execute(on_visible=on_visible)
        complete = time.perf_counter() - started
        cpu_fill = process_cpu(None) - marks["cpu"]
        moto_cpu_fill = process_cpu(moto_pid) - marks["moto_cpu"] if moto_pid else float("nan")
    finally:
        for name in ("all_files", "apply_reload", "update_lock"):
            cache.__dict__.pop(name, None)
        for name in ("list", "stat"):
            storage.__dict__.pop(name, None)
    return ReloadResult(
        marks["visible"],
        complete,
        progress,
        marks["calls"],
        counter.take(),
        marks["breakdown"],
        cpu_fill,
        moto_cpu_fill,
    )


def bare_list(moto: Moto, bucket: str, repeats: int) -> tuple[float, float, int, int]:
    """(median seconds, min seconds, objects, pages) of listing the prefix with a plain boto3 paginator."""
    client = boto3.client("s3", endpoint_url=moto.endpoint_url, region_name=REGION)
    times = []
    objects = pages = 0
    for _ in range(repeats):
        objects = pages = 0
        started = time.perf_counter()
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=PREFIX):
            pages += 1
            objects += len(page.get("Contents", []))
        times.append(time.perf_counter() - started)
    return statistics.median(times), min(times), objects, pages


def check_cache(cache: SQLCache, dists: list[Dist]) -> list[str]:
    """What is wrong with the cache after a complete reload (empty list: every file listed and hashed right)."""
    files = {f.filename: f for f in cache.all_files()}
    problems = []
    expected = {d.key.split("/", 1)[1]: d for d in dists}
    if len(files) != len(expected):
        problems.append(f"{len(files)} files in the cache, {len(expected)} in storage")
    wrong = sum(1 for name, d in expected.items() if name in files and files[name].sha256 != d.sha256)
    no_meta = sum(1 for f in files.values() if f.core_metadata is None)
    if wrong:
        problems.append(f"{wrong} files with a missing or wrong sha256")
    if no_meta:
        problems.append(f"{no_meta} files without core metadata")
    return problems


# -- moto -----------------------------------------------------------------------


def _quiet_moto() -> None:
    # werkzeug logs every request at INFO; 20,000 lines would drown the table.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)


def serve_moto() -> None:
    """Child process: run moto until the parent closes our stdin (or dies)."""
    _quiet_moto()
    with moto_server() as moto:
        print(moto.endpoint_url, flush=True)
        sys.stdin.read()


@contextmanager
def moto_endpoint(in_process: bool) -> Iterator[tuple[Moto, int | None]]:
    """Moto and the id of its process (None: this one)."""
    if in_process:
        _quiet_moto()
        with moto_server() as moto:
            yield moto, None
        return
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.reload", "--serve-moto"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    saved = {k: os.environ.get(k) for k in FAKE_CREDENTIALS}
    try:
        url = proc.stdout.readline().strip()
        if not url.startswith("http://127.0.0.1:"):
            raise SystemExit(f"moto did not start (got {url!r})")
        os.environ.update(FAKE_CREDENTIALS)
        yield Moto(url), proc.pid
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# -- report ---------------------------------------------------------------------


@dataclass
class Run:
    args: argparse.Namespace
    dists: list[Dist]
    projects: int
    lists: tuple[float, float, int, int]  # median, min, objects, pages of the bare LIST
    lists_after: tuple[float, float, int, int]  # the same after reload 1 (which wrote sidecars)
    first: ReloadResult
    second: ReloadResult
    problems: list[str]


def _calls(counts: Counter[str]) -> str:
    return ", ".join(f"{n:,} {op}" for op, n in sorted(counts.items(), key=lambda kv: -kv[1])) or "none"


def _step(label: str) -> Callable[..., None]:
    started = time.perf_counter()
    print(f"... {label}", file=sys.stderr, flush=True)

    def done(extra: str = "") -> None:
        print(f"    done in {time.perf_counter() - started:.1f}s {extra}", file=sys.stderr, flush=True)

    return done


def report(run: Run) -> None:
    import moto

    n, first, second = len(run.dists), run.first, run.second
    wheels = sum(d.wheel for d in run.dists)
    via_server = sum(d.via_server for d in run.dists)
    list_median, list_min, listed, pages = run.lists
    list2_median, list2_min, listed2, pages2 = run.lists_after
    where = "in-process" if run.args.moto_in_process else "child process"
    print()
    print(
        f"pypicloud_lite reload benchmark: {n:,} files ({run.projects:,} projects; {wheels:,} wheels, "
        f"{n - wheels:,} sdists; {via_server:,} with checksum+sidecar, {n - via_server:,} bare), "
        f"{listed:,} objects in the bucket"
    )
    print(
        f"workers={run.args.workers}, moto {moto.__version__} ({where}), SQLite file cache, "
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs"
    )
    print()
    rows = [
        ("bare LIST (boto3 paginator)", list_median, list_median, f"{pages} ListObjectsV2"),
        ("reload 1 (empty cache): visible", first.visible, list_median, _calls(first.calls_visible)),
        ("reload 1: complete (all hashed)", first.complete, list_median, _calls(first.calls_fill)),
        (f"bare LIST after reload 1 ({listed2:,} obj)", list2_median, list2_median, f"{pages2} ListObjectsV2"),
        ("reload 2 (nothing changed): visible", second.visible, list2_median, _calls(second.calls_visible)),
        ("reload 2: complete", second.complete, list2_median, _calls(second.calls_fill)),
    ]
    print(f"{'':40} {'seconds':>8} {'x LIST':>7}  S3 calls")
    for label, seconds, reference, calls in rows:
        print(f"{label:40} {seconds:8.2f} {seconds / reference:7.2f}  {calls}")
    print()
    fill = first.complete - first.visible
    hashed = first.progress.hashed
    print(f"bare LIST: median of {run.args.list_repeats}, min {list_min:.2f}s (after reload 1: min {list2_min:.2f}s)")
    print(f"listing: {listed / list_median:,.0f} objects/s")
    print(
        f"hashing: {hashed:,} files in {fill:.2f}s after visible = {hashed / max(fill, 1e-9):,.0f} files/s "
        f"({first.progress.failed} failed); CPU in that time: reload process {first.cpu_fill:.1f}s "
        f"({first.cpu_fill / max(hashed, 1) * 1e3:.1f} ms/file), moto {first.moto_cpu_fill:.1f}s"
    )
    for title, result in (("reload 1", first), ("reload 2", second)):
        print(f"{title} visible phase ({result.visible:.2f}s):")
        for label, seconds in sorted(result.breakdown.seconds.items(), key=lambda kv: -kv[1]):
            count = result.breakdown.calls[label]
            print(f"  {label:40} {seconds:7.2f}s" + (f"  {count:>6,} calls" if count else ""))
        rest = result.visible - sum(result.breakdown.seconds.values())
        print(f"  {'rest (lease, key parsing, diff)':40} {rest:7.2f}s")
    ratio = first.visible / list_median
    print()
    print(f"goal visible <= {GOAL_RATIO:g}x bare LIST: {'met' if ratio <= GOAL_RATIO else 'NOT met'} ({ratio:.2f}x)")
    print(f"cache check after reload 1: {'; '.join(run.problems) or 'all files listed, hashed, with metadata'}")


def measure(args: argparse.Namespace) -> Run:
    done = _step(f"building {args.objects:,} distributions")
    dists, projects = build_corpus(args.objects, args.server_fraction, args.seed)
    done(f"({projects:,} projects, {sum(len(d.data) for d in dists) / 1e6:.1f} MB)")

    with moto_endpoint(args.moto_in_process) as (moto, moto_pid), tempfile.TemporaryDirectory() as tmp:
        bucket = moto.new_bucket()
        done = _step(f"PUT {len(dists) + sum(d.via_server for d in dists):,} objects, {args.put_threads} threads")
        put_corpus(moto, bucket, dists, args.put_threads)
        done()

        done = _step("bare LIST")
        lists = bare_list(moto, bucket, args.list_repeats)
        done(f"({lists[2]:,} objects, {lists[3]} pages, median {lists[0]:.3f}s)")

        # The server's own settings path: S3 storage on moto, an empty SQLite cache in a temporary folder.
        raw = {
            **moto.s3_settings(bucket, PREFIX),
            "cache.url": f"sqlite:///{tmp}/cache.sqlite",
            "cache.migrate_on_start": "true",
        }
        settings = load_settings(raw, environ={})
        assert settings.storage.s3 is not None
        storage = S3Storage.from_settings(settings.storage.s3)
        counter = CallCounter(storage.client)
        cache = SQLCache.from_settings(settings.cache)
        try:
            done = _step(f"reload 1 into an empty SQLite cache, {args.workers} workers")
            first = run_reload(storage, cache, args.workers, counter, moto_pid)
            done(f"(visible after {first.visible:.2f}s)")
            problems = check_cache(cache, dists)

            done = _step("bare LIST after reload 1 (it wrote the sidecars of the bare files)")
            lists_after = bare_list(moto, bucket, args.list_repeats)
            done(f"({lists_after[2]:,} objects, median {lists_after[0]:.3f}s)")

            done = _step("reload 2, nothing changed")
            second = run_reload(storage, cache, args.workers, counter, moto_pid)
            done()
        finally:
            cache.close()
    return Run(args, dists, projects, lists, lists_after, first, second, problems)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reload", description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=20_000, help="distribution files in the bucket (20000)")
    parser.add_argument("--workers", type=int, default=16, help="reload fill pool size, pypi.reload_workers (16)")
    parser.add_argument("--server-fraction", type=float, default=0.3, help="share uploaded with checksum+sidecar")
    parser.add_argument("--put-threads", type=int, default=16, help="threads PUTting the corpus (16)")
    parser.add_argument("--list-repeats", type=int, default=3, help="bare LISTs to take the median of (3)")
    parser.add_argument("--seed", type=int, default=1, help="corpus seed (1)")
    parser.add_argument("--moto-in-process", action="store_true", help="run moto in this process (shares the GIL)")
    parser.add_argument("--serve-moto", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_moto:
        serve_moto()
        return 0
    if args.objects < 1 or args.workers < 1 or not 0 <= args.server_fraction <= 1:
        parser.error("--objects and --workers must be positive, --server-fraction within 0..1")
    run = measure(args)
    report(run)
    return 1 if run.problems else 0


if __name__ == "__main__":
    sys.exit(main())
