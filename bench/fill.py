"""Reload fill benchmark: filling in N files a reload listed without a hash, next to a bare script doing the same reads.

    .venv/bin/python -m bench.fill [--mode local|s3|dynamo|all ...] [--files 20000] [--workers 16] [--profile]

A reload lists new files at once and then "fills" them: hash, core metadata, PEP 658 sidecar, one
row update each. Each mode puts N tiny real distributions (bench/corpus.py) where a reload finds
them bare (no checksum, no sidecar), runs a reload, and times its fill phase (from `on_visible` to
the end) against a reference measured in the same run, on the same files:

* local: local storage + SQLite cache vs a bare loop that reads each file, hashes it (sha256) and
  reads its core metadata (`read_metadata_file`), the faster of one thread and `--workers` threads;
* s3: S3 storage on moto + SQLite cache vs a bare parallel GET of every object (`--workers` threads);
* dynamo: local storage + DynamoDB cache on moto vs the local bare loop plus one bare UpdateItem per
  file setting what the fill sets (`--workers` threads); with `--mode local dynamo` (or all), its ratio
  is judged against the SQL one.

It also counts the serial moves during the fill (one per batch) and checks every row afterwards.
Everything runs on 127.0.0.1 and stops by itself. See bench/README.md.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import io
import os
import pstats
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.corpus import Dist, build_corpus
from pypicloud_lite import reload as reload_module
from pypicloud_lite.cache import Cache, build_cache
from pypicloud_lite.config import load_settings
from pypicloud_lite.metadata import parse_core_metadata, read_metadata_file
from pypicloud_lite.models import Applied, PackageFile
from pypicloud_lite.naming import parse_filename
from pypicloud_lite.reload import ReloadProgress, begin_reload
from pypicloud_lite.storage.base import Storage
from pypicloud_lite.storage.local import LocalStorage

if TYPE_CHECKING:
    from pypicloud_lite.cache.dynamo import DynamoCache
    from tests.support.aws import Moto

# The S3 and DynamoDB modes import boto3, moto and their helpers when they run, not here: a fill's processes
# import this module again (multiprocessing's spawn runs the main module in each), and a server's main module
# (pserve) costs them about 0.2 s to import, against 0.8 s for this one with them.

GOAL_RATIO = 2.0
LOCAL_LABEL, DYNAMO_LABEL = "local + SQLite", "local + DynamoDB (moto)"
PROFILE_SORT = "tottime"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Fill:
    seconds: float  # from on_visible to the end of the reload
    progress: ReloadProgress
    serial_moves: int  # changes the cache's listeners heard during the fill
    problems: list[str]
    profile: str = ""
    created: int = 0  # objects the reload wrote under _ppc/ (first sightings, project states)


@contextmanager
def profiled_workers(profiles: list[cProfile.Profile]) -> Iterator[None]:
    """Profile the reading of each object in every pool thread too (cProfile only sees the thread that enables
    it); the fill then reads in the server's process, in threads, as a fill of few files does."""
    # The thread path calls the reload module's name for it.
    names = vars(reload_module)
    original, out_of_process = names["read_one"], reload_module.FILL_OUT_OF_PROCESS_MIN
    local = threading.local()
    lock = threading.Lock()

    def read_one(storage: Storage, read: Any) -> Any:
        profiler = getattr(local, "profiler", None)
        if profiler is None:
            profiler = local.profiler = cProfile.Profile()
            with lock:
                profiles.append(profiler)
        profiler.enable()
        try:
            return original(storage, read)
        finally:
            profiler.disable()

    names["read_one"], reload_module.FILL_OUT_OF_PROCESS_MIN = read_one, 1 << 62
    try:
        yield
    finally:
        names["read_one"], reload_module.FILL_OUT_OF_PROCESS_MIN = original, out_of_process


def run_fill(storage: Storage, cache: Cache, dists: list[Dist], workers: int, profile: bool) -> Fill:
    """One reload of storage into `cache`, its fill phase timed (and profiled, every thread, when asked)."""
    heard: list[Applied] = []
    cache.subscribe(heard.append)
    marks: dict[str, Any] = {}
    profiles: list[cProfile.Profile] = []
    main = cProfile.Profile()

    def on_visible(_progress: ReloadProgress) -> None:
        marks["visible"] = time.perf_counter()
        marks["heard"] = len(heard)
        if profile:
            main.enable()

    with profiled_workers(profiles) if profile else nullcontext():
        progress = begin_reload(storage, cache, workers).execute(on_visible=on_visible)
    seconds = time.perf_counter() - marks["visible"]
    report = ""
    if profile:
        main.disable()
        out = io.StringIO()
        stats = pstats.Stats(main, stream=out)
        for worker in profiles:
            stats.add(worker)
        stats.sort_stats(PROFILE_SORT).print_stats(30)
        report = f"(the main thread and {len(profiles)} pool threads, summed)\n" + out.getvalue()
    return Fill(seconds, progress, len(heard) - marks["heard"], check_rows(cache, dists), report)


def check_rows(cache: Cache, dists: list[Dist]) -> list[str]:
    """What is wrong with the cache after the fill (empty: every file there, with its sha256 and metadata)."""
    files = {f.filename: f for f in cache.all_files()}
    expected = {d.key.split("/", 1)[1]: d.sha256 for d in dists}
    problems = []
    if set(files) != set(expected):
        problems.append(f"{len(files)} rows for {len(expected)} files")
    if wrong := sum(1 for name, sha in expected.items() if name in files and files[name].sha256 != sha):
        problems.append(f"{wrong} rows without the right sha256")
    if no_meta := sum(1 for f in files.values() if f.core_metadata is None):
        problems.append(f"{no_meta} rows without core metadata")
    return problems


def in_pool(workers: int, work: Callable[[Any], object], items: list[Any]) -> float:
    """Seconds to run `work` on every item: in this thread for one worker, else in a pool of `workers`."""
    started = time.perf_counter()
    if workers == 1:
        for item in items:
            work(item)
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for _ in pool.map(work, items):
                pass
    return time.perf_counter() - started


# -- local storage -------------------------------------------------------------------


def write_local(root: Path, dists: list[Dist]) -> None:
    for d in dists:
        path = root / d.key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(d.data)


def bare_local(root: Path, dists: list[Dist], workers: int, sidecars: bool = False) -> tuple[float, str]:
    """(seconds, how): the faster of one thread and `workers` threads reading, hashing, reading metadata.

    `sidecars`: also write each file's metadata beside it as a new file (temporary file, then rename), as the
    reload must for a file without one: on a disk where creating a file costs more than reading a small one,
    that write is most of the fill.
    """

    def one(d: Dist) -> None:
        path = root / d.key
        hashlib.sha256(path.read_bytes()).hexdigest()
        metadata = read_metadata_file(path, parse_filename(path.name))
        if sidecars:
            tmp = path.with_name(f".bench-{path.name}")
            tmp.write_bytes(metadata)
            os.replace(tmp, path.with_name(f"{path.name}.bench-metadata"))

    results = [(in_pool(count, one, dists), f"{count} thread{'s' if count > 1 else ''}") for count in {1, workers}]
    if sidecars:
        for d in dists:
            (root / f"{d.key}.bench-metadata").unlink()
    return min(results)


def local_settings(root: Path, cache: dict[str, str]) -> Any:
    return load_settings({"storage.backend": "local", "storage.dir": str(root), **cache}, environ={})


@contextmanager
def sql_cache(folder: Path) -> Iterator[Cache]:
    settings = local_settings(folder, {"cache.url": f"sqlite:///{folder}/cache.sqlite", "cache.migrate_on_start": "1"})
    cache = build_cache(settings.cache)
    try:
        yield cache
    finally:
        cache.close()


@dataclass
class Result:
    label: str
    fill: Fill
    reference: float
    reference_label: str
    # The bare loop that also writes the sidecars (local storage only).
    with_sidecars: float | None = None
    # Milliseconds to create one small file in the work folder, just before and just after the fill.
    creation_ms: tuple[float, float] | None = None


CREATION_PROBE_FILES = 200


def creation_ms(work: Path) -> float:
    """Milliseconds to create one small file (open O_CREAT|O_EXCL, write, close) in a new folder under `work`.

    A fill creates a file per project for its first sightings and another for each new project's state. On this
    project's machine that costs 0.02 ms in some minutes and folders and 0.2 to 0.9 ms in others (after many
    files were deleted nearby, bench/README.md), which moves a local fill by seconds: printed beside it.
    """
    folder = Path(tempfile.mkdtemp(prefix="creation-", dir=work))
    started = time.perf_counter()
    for n in range(CREATION_PROBE_FILES):
        fd = os.open(folder / f"probe-{n}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(fd, b"{}")
        os.close(fd)
    elapsed = time.perf_counter() - started
    for n in range(CREATION_PROBE_FILES):
        (folder / f"probe-{n}").unlink()
    folder.rmdir()
    return elapsed * 1000 / CREATION_PROBE_FILES


def measure_local(dists: list[Dist], args: argparse.Namespace, work: Path) -> Result:
    root = work / "local"
    write_local(root, dists)
    log(f"bare read+hash+metadata of {len(dists):,} files")
    bare, how = bare_local(root, dists, args.workers)
    log(f"reload fill into SQLite, {args.workers} workers")
    before = creation_ms(work)
    with sql_cache(work) as cache:
        fill = run_fill(LocalStorage(root), cache, dists, args.workers, args.profile)
    after = creation_ms(work)
    fill.created = sum(1 for _ in LocalStorage(root).list("_ppc/"))
    # After the fill: this loop deletes its 20,000 files at its end, and on this machine's file system a
    # folder where many files were just deleted makes new files 10 to 50 times slower to create for minutes
    # (bench/README.md), which the fill's own records would pay.
    with_sidecars, _ = bare_local(root, dists, args.workers, sidecars=True)
    return Result(LOCAL_LABEL, fill, bare, f"bare read+sha256+metadata ({how})", with_sidecars, (before, after))


# -- S3 (moto) -------------------------------------------------------------------------


def bare_get(moto: Moto, bucket: str, dists: list[Dist], workers: int) -> float:
    from bench.reload import PREFIX, s3_client

    client = s3_client(moto, workers)

    def get(d: Dist) -> None:
        client.get_object(Bucket=bucket, Key=PREFIX + d.key)["Body"].read()

    return in_pool(max(workers, 2), get, dists)


def measure_s3(dists: list[Dist], args: argparse.Namespace, work: Path) -> Result:
    from bench.reload import PREFIX, moto_endpoint, put_corpus
    from pypicloud_lite.storage.s3 import S3Storage

    with moto_endpoint(in_process=False) as (moto, _pid):
        bucket = moto.new_bucket()
        log(f"PUT {len(dists):,} bare objects")
        put_corpus(moto, bucket, dists, 16)
        log(f"bare parallel GET, {args.workers} threads")
        bare = bare_get(moto, bucket, dists, args.workers)
        settings = load_settings({**moto.s3_settings(bucket, PREFIX), "cache.url": "sqlite://"}, environ={})
        assert settings.storage.s3 is not None
        storage = S3Storage.from_settings(settings.storage.s3)
        log(f"reload fill into SQLite, {args.workers} workers")
        with sql_cache(work) as cache:
            fill = run_fill(storage, cache, dists, args.workers, args.profile)
    return Result("S3 (moto) + SQLite", fill, bare, f"bare parallel GET ({args.workers} threads)")


# -- DynamoDB (moto) -------------------------------------------------------------------


# What the listing wrote to a row already: of the details (cache/dynamo's DETAIL_FIELDS), the fill sets the others.
LISTED_DETAILS = frozenset({"size", "storage_etag"})


def filled_values(cache: DynamoCache, d: Dist) -> dict[str, Any]:
    """The attribute values the fill stores for this file, serialized as the cache serializes them."""
    from pypicloud_lite.cache.dynamo.items import DETAIL_FIELDS, file_item

    dist = parse_filename(d.key.split("/", 1)[1])
    file = PackageFile.of(dist, size=len(d.data), sha256=d.sha256, upload_time=datetime.now(UTC))
    serialized = file_item(cache.t, file.described(d.metadata, parse_core_metadata(d.metadata, dist))).serialize()
    return {name: serialized[name] for name in DETAIL_FIELDS if name in serialized and name not in LISTED_DETAILS}


def bare_updates(moto: Moto, cache: DynamoCache, dists: list[Dist], workers: int) -> float:
    """One UpdateItem per file on the files table, as boto3 makes it, setting what the fill sets (the same values,
    under names of their own): the least a row's details cost to write. Moto parses each SET clause in Python
    (about 0.6 ms each): a one-attribute reference would charge the fill for moto's parser, not for its work."""
    client = moto.client("dynamodb")
    table = cache.t.file.Meta.table_name
    values = {d.key: filled_values(cache, d) for d in dists}

    def update(d: Dist) -> None:
        project, filename = d.key.split("/", 1)
        names = sorted(values[d.key])
        client.update_item(
            TableName=table,
            Key={"project": {"S": project}, "filename": {"S": filename}},
            UpdateExpression="SET " + ", ".join(f"bench_{name} = :{name}" for name in names),
            ExpressionAttributeValues={f":{name}": values[d.key][name] for name in names},
        )

    return in_pool(workers, update, dists)


def measure_dynamo(dists: list[Dist], args: argparse.Namespace, work: Path) -> Result:
    from bench.reload import moto_endpoint
    from pypicloud_lite.cache.dynamo import DynamoCache

    root = work / "dynamo-local"
    write_local(root, dists)
    log(f"bare read+hash+metadata of {len(dists):,} files")
    bare, how = bare_local(root, dists, args.workers)
    with moto_endpoint(in_process=False) as (moto, _pid):
        cache = build_cache(local_settings(root, moto.dynamo_settings()).cache)
        assert isinstance(cache, DynamoCache)
        log(f"reload fill into DynamoDB, {args.workers} workers")
        fill = run_fill(LocalStorage(root), cache, dists, args.workers, args.profile)
        log(f"bare UpdateItem of {len(dists):,} rows, {args.workers} threads")
        updates = bare_updates(moto, cache, dists, args.workers)
    label = f"bare read+sha256+metadata ({how}) + bare UpdateItem of the fill's attributes per row ({updates:.2f}s)"
    return Result(DYNAMO_LABEL, fill, bare + updates, label)


# -- report ----------------------------------------------------------------------------

MODES: dict[str, Callable[[list[Dist], argparse.Namespace, Path], Result]] = {
    "local": measure_local,
    "s3": measure_s3,
    "dynamo": measure_dynamo,
}


def report(results: list[Result], args: argparse.Namespace, files: int) -> None:
    print()
    print(f"pypicloud_lite reload fill: {files:,} bare files, {args.workers} workers")
    print()
    print(f"{'':26} {'fill s':>7} {'files/s':>8} {'serials':>7} {'ref s':>7} {'x ref':>6}  reference")
    for r in results:
        ratio = r.fill.seconds / r.reference
        rate = r.fill.progress.hashed / max(r.fill.seconds, 1e-9)
        print(
            f"{r.label:26} {r.fill.seconds:7.2f} {rate:8,.0f} {r.fill.serial_moves:7,} "
            f"{r.reference:7.2f} {ratio:6.2f}  {r.reference_label}"
        )
    print()
    sql = next((x for x in results if x.label == LOCAL_LABEL), None)
    for r in results:
        ratio = r.fill.seconds / r.reference
        checked = "; ".join(r.fill.problems) or "every row filled right"
        if r.label != DYNAMO_LABEL:
            verdict = f"goal <= {GOAL_RATIO:g}x: {'met' if ratio <= GOAL_RATIO else 'NOT met'}"
        elif sql is not None:
            # DynamoDB's goal is the SQL fill's ratio in the same run, not a number of its own.
            sql_ratio = sql.fill.seconds / sql.reference
            verdict = f"goal <= the SQL fill's {sql_ratio:.2f}x: {'met' if ratio <= sql_ratio else 'NOT met'}"
        else:
            verdict = "goal: the SQL fill's ratio, not judged (run --mode local dynamo)"
        print(f"{r.label}: {verdict} ({ratio:.2f}x); {r.fill.progress.failed} failed; {checked}")
        if r.with_sidecars:
            print(
                f"  the same bare loop writing each sidecar too: {r.with_sidecars:.2f}s; "
                f"the fill is {r.fill.seconds / r.with_sidecars:.2f}x that"
            )
        if r.creation_ms:
            print(
                f"  creating a file in {args.work or tempfile.gettempdir()}: {r.creation_ms[0]:.3f} ms before the "
                f"fill, {r.creation_ms[1]:.3f} ms after (the fill creates {r.fill.created:,})"
            )
        if r.fill.profile:
            print(f"\nprofile of the fill ({r.label}), this process, by own time:\n{r.fill.profile}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fill", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--mode", nargs="+", choices=[*MODES, "all"], default=["all"], help="which fills to measure (all)"
    )
    parser.add_argument("--files", type=int, default=2000, help="distribution files (2000; the README uses 20000)")
    parser.add_argument("--workers", type=int, default=16, help="reload fill pool size, pypi.reload_workers (16)")
    parser.add_argument("--seed", type=int, default=1, help="corpus seed (1)")
    parser.add_argument("--profile", action="store_true", help="cProfile the fill phase and print the top 25")
    parser.add_argument(
        "--work", type=Path, help="folder for the storage and the database (the system's temporary folder)"
    )
    args = parser.parse_args(argv)
    if args.files < 1 or args.workers < 1:
        parser.error("--files and --workers must be positive")
    dists, projects = build_corpus(args.files, 0.0, args.seed)
    log(f"{len(dists):,} distributions of {projects:,} projects")
    results = []
    for mode in MODES if "all" in args.mode else dict.fromkeys(args.mode):
        with tempfile.TemporaryDirectory(prefix="ppc-bench-fill-", dir=args.work) as tmp:
            results.append(MODES[mode](dists, args, Path(tmp)))
    report(results, args, len(dists))
    return 1 if any(r.fill.problems for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
