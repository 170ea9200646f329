"""Index pages with one and with two server processes on the same machine: gunicorn workers against waitress.

    .venv/bin/python -m bench.workers [--files 1000] [--duration 5] [--connections 8] [--rounds 2]

One corpus (tiny real distributions, 4 files per project) is seeded into a local folder and an SQLite cache;
then waitress (one process, 8 threads, `make run`'s server), gunicorn with 1 worker and gunicorn with 2 workers
(deploy/gunicorn/gunicorn.conf.py) serve it in turn on 127.0.0.1, each driven by wrk (or the Python client)
for `--duration` seconds on `/simple/` and on project pages. Each server gets a warm-up first; the best of
`--rounds` is kept. Progress goes to stderr, the table to stdout, with the machine's load average: other work
on the machine takes the second core the second worker needs, and the ratio shows it.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.corpus import uniform_corpus
from bench.load import Load, drive
from bench.pages import log, sample_projects, seed_ppc
from bench.servers import Server, start_ppc, start_ppc_gunicorn

FILES_PER_PROJECT = 4


@dataclass
class Row:
    server: str
    index: Load
    project: Load


def measure(server: Server, projects: list[str], folder: Path, args: argparse.Namespace) -> tuple[Load, Load]:
    pages = [f"/simple/{p}/" for p in projects]
    options = {"duration": args.duration, "connections": args.connections, "headers": {}}
    drive(server.base, ["/simple/", *pages], folder, **{**options, "duration": 1.0})  # every worker warm
    return drive(server.base, ["/simple/"], folder, **options), drive(server.base, pages, folder, **options)


def best(loads: list[Load]) -> Load:
    return max(loads, key=lambda load: load.requests_per_s)


def run(args: argparse.Namespace, work: Path) -> list[Row]:
    dists = uniform_corpus(args.files // FILES_PER_PROJECT, FILES_PER_PROJECT)
    storage, cache_url = work / "packages", f"sqlite:///{work / 'cache.sqlite'}"
    seed_ppc(dists, storage, cache_url)
    projects = sample_projects(dists, args.sample)
    starters: dict[str, Callable[[Path], Server]] = {
        "waitress, 1 process (8 threads)": lambda f: start_ppc(f, storage, cache_url, "bench", "bench"),
        "gunicorn, 1 worker": lambda f: start_ppc_gunicorn(f, storage, cache_url, 1),
        "gunicorn, 2 workers": lambda f: start_ppc_gunicorn(f, storage, cache_url, 2),
    }
    results: dict[str, list[tuple[Load, Load]]] = {name: [] for name in starters}
    for turn in range(args.rounds):
        for number, (name, start) in enumerate(starters.items()):
            folder = work / f"r{turn}-s{number}"
            folder.mkdir()
            log(f"round {turn + 1}: {name}")
            server = start(folder)
            try:
                results[name].append(measure(server, projects, folder, args))
            finally:
                server.stop()
    return [Row(name, best([i for i, _p in loads]), best([p for _i, p in loads])) for name, loads in results.items()]


def report(rows: list[Row], args: argparse.Namespace) -> None:
    one = next(row for row in rows if row.server == "gunicorn, 1 worker")
    print(
        f"\n{args.files:,} files, {os.cpu_count()} cores ({platform.processor() or platform.machine()}), "
        f"Python {platform.python_version()}, {rows[0].index.tool}, {args.connections} connections, "
        f"{args.duration:g} s per page kind, best of {args.rounds}, load average {os.getloadavg()[0]:.1f} at the end\n"
    )
    print("| server | `/simple/` req/s | p99 ms | project page req/s | p99 ms | vs 1 gunicorn worker |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    for row in rows:
        ratio = f"{row.index.requests_per_s / one.index.requests_per_s:.2f}x / "
        ratio += f"{row.project.requests_per_s / one.project.requests_per_s:.2f}x"
        print(
            f"| {row.server} | {row.index.requests_per_s:,.0f} | {row.index.p99_ms:.1f} | "
            f"{row.project.requests_per_s:,.0f} | {row.project.p99_ms:.1f} | {ratio} |"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of load per page kind and server")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--sample", type=int, default=100, help="project pages driven round-robin")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ppc-bench-workers-") as tmp:
        rows = run(args, Path(tmp))
    report(rows, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
