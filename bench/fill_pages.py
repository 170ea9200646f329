"""The index while a reload fills in N files: req/s on /simple/ and on project pages, as a % of steady state.

    .venv/bin/python -m bench.fill_pages [--files 20000] [--duration 3] [--connections 4] [--serial-max-age 0]

Puts N tiny real distributions (bench/corpus.py) bare into a local storage folder, lists them in a
fresh SQLite cache as a reload's first phase does (no hash yet), starts pypicloud_lite (pserve,
waitress, 8 threads, bench/servers.py), and drives `/simple/` and project pages (round-robin over a
sample) at once, each with its own load generator (bench/load.py: wrk, else a Python client):

1. steady state: for `--duration` seconds, after a warm-up of the same length (discarded);
2. during the fill: `POST /admin/reload` (the reload runs in the server's process, as an admin's
   reload does; `--reload-in cli`: `ppc-reload` on the same ini, at nice 10), and once its progress says
   `filling`, the same load for `--duration` seconds; the
   fill's progress is read before and after;
3. steady state again once the fill is done, after another warm-up (the fill changed every page).

`--serial-max-age` sets the server's `cache.serial_max_age` (0, the default: the serial is read on every
request). `--rounds` times (3), each on a fresh server, cache and storage records. Each rate during the
fill is printed as a % of its steady state (the mean of before and after); the median of the rounds is
judged (goal: at least 80%). One 5-second window of a fill's duration moves by 20 to 30% from run to run here.
Everything runs on 127.0.0.1 and stops by itself. See bench/README.md.
"""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.corpus import build_corpus
from bench.fill import log, write_local
from bench.load import Load, drive
from bench.servers import Server, start_ppc
from pypicloud_lite.cache import build_cache
from pypicloud_lite.config import load_settings
from pypicloud_lite.indexing import listed_file
from pypicloud_lite.models import ReloadChanges
from pypicloud_lite.naming import INTERNAL_PREFIX, DistFilename, explain_key
from pypicloud_lite.storage.local import LocalStorage

GOAL_PERCENT = 80.0
ADMIN, PASSWORD = "bench-admin", "bench-admin-password"


def list_unfilled(root: Path, cache_url: str) -> None:
    """Rows for every object as a reload's listing writes them: name, size, time, ETag; no hash, no metadata."""
    storage = LocalStorage(root)
    added = []
    for obj in storage.list():
        dist = explain_key(obj.key)
        if isinstance(dist, DistFilename):
            added.append(listed_file(dist, obj))
    settings = load_settings({"storage.dir": str(root), "cache.url": cache_url, "cache.migrate_on_start": "1"}, {})
    cache = build_cache(settings.cache)
    try:
        cache.apply_reload(ReloadChanges(added=added))
    finally:
        cache.close()


def admin(server: Server, method: str) -> dict[str, Any]:
    token = base64.b64encode(f"{ADMIN}:{PASSWORD}".encode()).decode()
    request = urllib.request.Request(
        f"{server.base}/admin/reload", method=method, headers={"Authorization": f"Basic {token}"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return dict(json.loads(response.read()))


def both(server: Server, projects: list[str], folder: Path, args: argparse.Namespace) -> tuple[Load, Load]:
    """/simple/ and project pages driven at the same time, `--connections` each."""
    kinds = {"simple": ["/simple/"], "project": [f"/simple/{p}/" for p in projects]}
    with ThreadPoolExecutor(max_workers=2) as pool:
        loads = {
            kind: pool.submit(
                drive,
                server.base,
                paths,
                folder / kind,
                duration=args.duration,
                connections=args.connections,
                headers={},
            )
            for kind, paths in kinds.items()
        }
        return loads["simple"].result(), loads["project"].result()


def start_reload(server: Server, work: Path, where: str) -> subprocess.Popen[bytes] | None:
    """The reload in the server's process (POST /admin/reload), or as `ppc-reload` on the same ini at nice 10."""
    if where == "server":
        admin(server, "POST")
        return None
    command = ["nice", "-n", "10", str(Path(sys.executable).parent / "ppc-reload"), str(work / "ppc.ini")]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def progress(server: Server) -> dict[str, Any]:
    return dict(admin(server, "GET").get("progress") or {})


def renders(server: Server) -> int:
    """Pages the server has rendered so far (its page cache's misses, from /metrics)."""
    with urllib.request.urlopen(f"{server.base}/metrics", timeout=30) as response:
        for line in response.read().decode().splitlines():
            if line.startswith('ppc_page_cache_requests_total{result="miss"}'):
                return int(float(line.split()[-1]))
    return 0


def phase(server: Server, projects: list[str], folder: Path, args: argparse.Namespace) -> tuple[Load, Load, int]:
    """Both loads, and the pages the server rendered meanwhile."""
    before = renders(server)
    simple, project = both(server, projects, folder, args)
    return simple, project, renders(server) - before


@dataclass
class Round:
    """One fresh server and one fill: the load before it (steady), during it, and once it is done (steady again)."""

    steady: tuple[Load, Load, int]  # /simple/, project pages, pages rendered
    during: tuple[Load, Load, int]
    after: tuple[Load, Load, int]
    began: dict[str, Any]  # the fill's progress when the load during it began, and when that load ended
    ended: dict[str, Any]
    final: dict[str, Any]

    def percent(self, kind: int) -> float:
        """req/s during the fill as a % of the steady state (the mean of before and after it)."""
        calm = (self.steady[kind].requests_per_s + self.after[kind].requests_per_s) / 2
        return 100 * self.during[kind].requests_per_s / max(calm, 1e-9)


def measure(args: argparse.Namespace, work: Path) -> None:
    dists, projects_count = build_corpus(args.files, 0.0, args.seed)
    root = work / "storage"
    write_local(root, dists)
    for kind in ("simple", "project"):
        (work / kind).mkdir()
    projects = sorted({d.key.split("/", 1)[0] for d in dists})[:: max(1, projects_count // args.sample)]
    rounds = []
    for number in range(1, args.rounds + 1):
        # Each round from scratch: what a fill records in storage removed, a new cache with every file unfilled.
        shutil.rmtree(root / INTERNAL_PREFIX, ignore_errors=True)
        cache_url = f"sqlite:///{work}/cache-{number}.sqlite"
        list_unfilled(root, cache_url)
        log(f"round {number}: {len(dists):,} files of {projects_count:,} projects listed, none filled")
        rounds.append(one_round(args, work, root, cache_url, projects))
    report(args, len(dists), rounds)


def one_round(args: argparse.Namespace, work: Path, root: Path, cache_url: str, projects: list[str]) -> Round:
    server = start_ppc(
        work,
        root,
        cache_url,
        "bench",
        "bench-password",
        extra={
            f"user.{ADMIN}": _hash(),
            "auth.admins": ADMIN,
            "pypi.reload_workers": str(args.workers),
            "metrics.enabled": "true",
            "cache.serial_max_age": str(args.serial_max_age),
        },
    )
    reload: subprocess.Popen[bytes] | None = None
    try:
        # A warm-up first (discarded): every sampled page rendered once, the server's threads and caches warm.
        log(f"warm-up, then steady state: {args.duration:g}s of load each on /simple/ and {len(projects)} projects")
        both(server, projects, work, args)
        steady = phase(server, projects, work, args)
        reload = start_reload(server, work, args.reload_in)
        # The window starts with the fill: listing and diffing the folder come first.
        while (began := progress(server)).get("state") not in ("filling", "done", "failed"):
            time.sleep(0.05)
        log("during the fill")
        during = phase(server, projects, work, args)
        ended = progress(server)
        while progress(server).get("state") not in ("done", "failed"):
            time.sleep(0.5)
        final = progress(server)
        # Warm again: the fill changed every project, so each sampled page is rendered anew once (discarded).
        log("warm-up, then steady state again, the fill done")
        both(server, projects, work, args)
        after = phase(server, projects, work, args)
    except BaseException:
        if server.process is not None and server.process.poll() is not None:
            log(f"the server exited ({server.process.returncode}); its last lines:\n{server.log_tail(40)}")
        raise
    finally:
        if reload is not None and reload.poll() is None:
            reload.kill()
            reload.wait()
        server.stop()
    return Round(steady, during, after, began, ended, final)


def _hash() -> str:
    from pypicloud_lite.access.passwords import hash_password

    return hash_password(PASSWORD)


def report(args: argparse.Namespace, files: int, rounds: list[Round]) -> None:
    print()
    print(
        f"pypicloud_lite pages during a reload's fill: {files:,} bare files, {args.duration:g}s of load per phase, "
        f"{args.connections} connections per page kind ({rounds[0].steady[0].tool}); the reload "
        + ("in the server's process" if args.reload_in == "server" else "as ppc-reload at nice 10")
        + f"; cache.serial_max_age = {args.serial_max_age:g}; {len(rounds)} rounds, each on a fresh server"
    )
    print()
    print(
        f"{'round':>5} {'page':14} {'before req/s':>12} {'fill req/s':>10} {'after req/s':>11} {'% steady':>8} "
        f"{'p99 ms before':>13} {'p99 ms fill':>11}  fill"
    )
    for number, one in enumerate(rounds, 1):
        fill = (one.final.get("complete_seconds") or 0) - (one.final.get("visible_seconds") or 0)
        what = (
            f"{one.final.get('hashed', 0):,} hashed in {fill:.1f}s; read/hashed in the window: "
            f"{one.began.get('filled', 0):,}/{one.began.get('hashed', 0):,} to "
            f"{one.ended.get('filled', 0):,}/{one.ended.get('hashed', 0):,} ({one.ended.get('state')}); "
            f"pages rendered before/in/after: {one.steady[2]}/{one.during[2]}/{one.after[2]}"
        )
        for kind, label in enumerate(("/simple/", "project page")):
            before, busy, after = one.steady[kind], one.during[kind], one.after[kind]
            print(
                f"{number:5} {label:14} {before.requests_per_s:12,.1f} {busy.requests_per_s:10,.1f} "
                f"{after.requests_per_s:11,.1f} {one.percent(kind):7.0f}% {before.p99_ms:13.2f} {busy.p99_ms:11.2f}"
                + (f"  {what}" if kind == 0 else "")
            )
    print()
    verdicts = []
    for kind, label in enumerate(("/simple/", "project pages")):
        median = statistics.median(one.percent(kind) for one in rounds)
        verdicts.append(median >= GOAL_PERCENT)
        print(f"{label}: median {median:.0f}% of steady state")
    partial = [n for n, one in enumerate(rounds, 1) if one.ended.get("state") != "filling"]
    print(
        f"goal >= {GOAL_PERCENT:g}% of steady state (the median of the rounds; steady = the mean of before and after): "
        + ("met" if all(verdicts) else "NOT met")
        + (f" (in round(s) {partial} the fill ended before the load did)" if partial else "")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fill_pages", description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=2000, help="distribution files (2000; the README uses 20000)")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds of load per phase (3)")
    parser.add_argument("--connections", type=int, default=4, help="keep-alive connections per page kind (4)")
    parser.add_argument("--sample", type=int, default=500, help="project pages driven round-robin (500)")
    parser.add_argument("--workers", type=int, default=16, help="the server's pypi.reload_workers (16)")
    parser.add_argument(
        "--reload-in",
        choices=["server", "cli"],
        default="server",
        help="the reload in the server's process (POST /admin/reload) or as ppc-reload at nice 10 (server)",
    )
    parser.add_argument(
        "--serial-max-age",
        type=float,
        default=0.0,
        help="the server's cache.serial_max_age: 0 (the default) reads the serial on every request (0)",
    )
    parser.add_argument("--seed", type=int, default=1, help="corpus seed (1)")
    parser.add_argument("--rounds", type=int, default=3, help="fresh servers, one fill each; the median is judged (3)")
    args = parser.parse_args(argv)
    if min(args.files, args.connections, args.sample, args.rounds) < 1 or args.duration <= 0:
        parser.error("--files, --duration, --connections, --sample and --rounds must be positive")
    if args.serial_max_age < 0:
        parser.error("--serial-max-age must not be negative")
    with tempfile.TemporaryDirectory(prefix="ppc-bench-fill-pages-") as tmp:
        measure(args, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
