"""The index while a reload fills in N files: req/s on /simple/ and on project pages, as a % of steady state.

    .venv/bin/python -m bench.fill_pages [--files 20000] [--duration 3] [--connections 4]

Puts N tiny real distributions (bench/corpus.py) bare into a local storage folder, lists them in a
fresh SQLite cache as a reload's first phase does (no hash yet), starts pypicloud_lite (pserve,
waitress, 8 threads, bench/servers.py), and drives `/simple/` and project pages (round-robin over a
sample) at once, each with its own load generator (bench/load.py: wrk, else a Python client):

1. steady state: for `--duration` seconds, after a warm-up of the same length (discarded);
2. during the fill: `POST /admin/reload` (the reload runs in the server's process, as an admin's
   reload does; `--reload-in cli`: `ppc-reload` on the same ini, at nice 10), and once its progress says
   `filling`, the same load for `--duration` seconds; the
   fill's progress is read before and after.

Each rate is printed as a % of its steady state (goal: at least 80%). Everything runs on 127.0.0.1
and stops by itself. See bench/README.md.
"""

from __future__ import annotations

import argparse
import base64
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
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
from pypicloud_lite.naming import DistFilename, explain_key
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


def measure(args: argparse.Namespace, work: Path) -> None:
    dists, projects_count = build_corpus(args.files, 0.0, args.seed)
    root, cache_url = work / "storage", f"sqlite:///{work}/cache.sqlite"
    write_local(root, dists)
    list_unfilled(root, cache_url)
    log(f"{len(dists):,} files of {projects_count:,} projects listed, none filled")
    for kind in ("simple", "project"):
        (work / kind).mkdir()
    projects = sorted({d.key.split("/", 1)[0] for d in dists})[:: max(1, projects_count // args.sample)]
    server = start_ppc(
        work,
        root,
        cache_url,
        "bench",
        "bench-password",
        extra={f"user.{ADMIN}": _hash(), "auth.admins": ADMIN, "pypi.reload_workers": str(args.workers)},
    )
    reload: subprocess.Popen[bytes] | None = None
    try:
        # A warm-up first (discarded): every sampled page rendered once, the server's threads and caches warm.
        log(f"warm-up, then steady state: {args.duration:g}s of load each on /simple/ and {len(projects)} projects")
        both(server, projects, work, args)
        steady = both(server, projects, work, args)
        reload = start_reload(server, work, args.reload_in)
        # The window starts with the fill: listing and diffing the folder come first.
        while (before := progress(server)).get("state") not in ("filling", "done", "failed"):
            time.sleep(0.05)
        log("during the fill")
        during = both(server, projects, work, args)
        after = progress(server)
        while progress(server).get("state") not in ("done", "failed"):
            time.sleep(0.5)
        final = progress(server)
    finally:
        if reload is not None and reload.poll() is None:
            reload.kill()
            reload.wait()
        server.stop()
    report(args, len(dists), steady=steady, during=during, before=before, after=after, final=final)


def _hash() -> str:
    from pypicloud_lite.access.passwords import hash_password

    return hash_password(PASSWORD)


def report(
    args: argparse.Namespace,
    files: int,
    *,
    steady: tuple[Load, Load],
    during: tuple[Load, Load],
    before: dict[str, Any],
    after: dict[str, Any],
    final: dict[str, Any],
) -> None:
    print()
    print(
        f"pypicloud_lite pages during a reload's fill: {files:,} bare files, {args.duration:g}s of load per phase, "
        f"{args.connections} connections per page kind ({steady[0].tool}); the reload "
        + ("in the server's process" if args.reload_in == "server" else "as ppc-reload at nice 10")
    )
    fill = (final.get("complete_seconds") or 0) - (final.get("visible_seconds") or 0)
    print(
        f"fill: {final.get('hashed', 0):,} hashed, {final.get('failed', 0)} failed, in {fill:.1f}s; "
        f"read and hashed when the load began {before.get('filled', 0):,} and {before.get('hashed', 0):,}, "
        f"when it ended {after.get('filled', 0):,} and {after.get('hashed', 0):,} (state {after.get('state')})"
    )
    print()
    print(f"{'':14} {'steady req/s':>12} {'fill req/s':>10} {'% steady':>8} {'p99 ms steady':>13} {'p99 ms fill':>11}")
    verdicts = []
    for label, calm, busy in (("/simple/", steady[0], during[0]), ("project page", steady[1], during[1])):
        percent = 100 * busy.requests_per_s / max(calm.requests_per_s, 1e-9)
        verdicts.append(percent >= GOAL_PERCENT)
        print(
            f"{label:14} {calm.requests_per_s:12,.1f} {busy.requests_per_s:10,.1f} {percent:7.0f}% "
            f"{calm.p99_ms:13.2f} {busy.p99_ms:11.2f}"
        )
    print()
    whole = after.get("state") == "filling"
    print(
        f"goal >= {GOAL_PERCENT:g}% of steady state: {'met' if all(verdicts) else 'NOT met'}"
        + ("" if whole else " (the fill ended before the load did: part of the window was steady)")
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
    parser.add_argument("--seed", type=int, default=1, help="corpus seed (1)")
    args = parser.parse_args(argv)
    if args.files < 1 or args.duration <= 0 or args.connections < 1 or args.sample < 1:
        parser.error("--files, --duration, --connections and --sample must be positive")
    with tempfile.TemporaryDirectory(prefix="ppc-bench-fill-pages-") as tmp:
        measure(args, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
