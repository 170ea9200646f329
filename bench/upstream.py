"""Upstream proxy benchmark: pypicloud_lite in `cache` mode against devpi's `root/pypi` mirror, one local upstream.

    .venv/bin/python -m bench.upstream [--projects 20] [--files-per-project 8] [--rounds 3]

The upstream is a static PEP 503 tree (`simple/<name>/index.html` with sha256 fragments,
`data-requires-python` and `data-dist-info-metadata`, the files and their `.metadata` beside them)
served by `python -m http.server` on 127.0.0.1: `--projects` projects of `--files-per-project` files
each (tiny real distributions of bench/corpus.py, a wheel and an sdist per version, so 8 files are
4 versions of history). pypicloud_lite (pserve, waitress with 8 threads, local storage, SQLite cache)
has it as its one upstream in `cache` mode; devpi-server 6's `root/pypi` has it as its `mirror_url`.

Measured and printed:

* pages: a warm proxied project page (fetched once, then served from the proxy's held listing)
  against a local project page of the same number of files on the same server, HTML and JSON, wrk
  round-robin over all the projects, in turns (`--rounds`, the median kept); goal: the proxied page
  within 1.5x the time of a local one. The upstream's requests during the load are counted (0 when warm);
* clients: `pip install --no-deps` and `uv pip install --no-deps` of the newest version of every
  upstream project into a fresh venv, with the client's cache disabled, through each server: cold (a
  fresh server that has fetched nothing) and warm (the same again, `--warm-runs` times, the server holding
  pages and files), printed as seconds and as ratios devpi / pypicloud_lite. The corpus's packages have no
  dependencies, so `--no-deps` changes nothing but pip's and uv's bookkeeping. See bench/README.md.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from html import escape
from pathlib import Path

from bench.corpus import Dist, uniform_corpus
from bench.fill import log
from bench.load import Load, drive
from bench.pages import UPLOAD_PASSWORD, UPLOAD_USER, _client_env, seed_ppc, timed
from bench.servers import DevpiServer, Server, _devpi, cpu_seconds, start_ppc, venv

GOAL = 1.5
JSON_ACCEPT = {"Accept": "application/vnd.pypi.simple.v1+json"}
KINDS = {"HTML": {}, "JSON": JSON_ACCEPT}


# -- the upstream ------------------------------------------------------------------------------


def write_tree(dists: list[Dist], root: Path) -> list[str]:
    """A static PEP 503 tree of the files; returns the project names."""
    files = root / "files"
    files.mkdir(parents=True)
    projects: dict[str, list[Dist]] = {}
    for dist in dists:
        projects.setdefault(dist.key.split("/", 1)[0], []).append(dist)
    for project, held in projects.items():
        anchors = []
        for dist in held:
            filename = dist.key.split("/", 1)[1]
            (files / filename).write_bytes(dist.data)
            attrs = [f'href="../../files/{escape(filename)}#sha256={dist.sha256}"', 'data-requires-python="&gt;=3.9"']
            if dist.wheel:
                (files / f"{filename}.metadata").write_bytes(dist.metadata)
                digest = hashlib.sha256(dist.metadata).hexdigest()
                attrs.append(f'data-dist-info-metadata="sha256={digest}"')
            anchors.append(f"    <a {' '.join(attrs)}>{escape(filename)}</a><br />")
        page = root / "simple" / project
        page.mkdir(parents=True)
        (page / "index.html").write_text(
            f"<!DOCTYPE html>\n<html><body>\n<h1>Links for {project}</h1>\n" + "\n".join(anchors) + "\n</body></html>\n"
        )
    links = "".join(f'<a href="{p}/">{p}</a>\n' for p in sorted(projects))
    (root / "simple" / "index.html").write_text(f"<!DOCTYPE html>\n<html><body>\n{links}</body></html>\n")
    return sorted(projects)


class TreeServer(Server):
    """`python -m http.server` on the tree; it logs one line per request, which `requests()` counts."""

    def requests(self) -> int:
        log = self.folder / f"{self.name}.log"
        return sum(1 for line in log.read_text(errors="replace").splitlines() if '"GET ' in line)


def start_tree(folder: Path, root: Path) -> TreeServer:
    server = TreeServer("upstream", folder)
    server.spawn(
        [sys.executable, "-u", "-m", "http.server", "--bind", "127.0.0.1", "--directory", str(root), str(server.port)]
    )
    server.ready(server.simple, 60)
    return server


# -- the two proxies ------------------------------------------------------------------------------


def start_proxy(folder: Path, upstream: str, local: list[Dist]) -> Server:
    """pypicloud_lite with the tree as its one upstream in cache mode; `local` seeded as its own projects."""
    folder.mkdir(parents=True)
    storage, cache_url = folder / "storage", f"sqlite:///{folder / 'cache.sqlite'}"
    storage.mkdir()
    if local:
        seed_ppc(local, storage, cache_url)
    extra = {"upstream.indexes": "tree", "upstream.tree.url": upstream, "upstream.tree.mode": "cache"}
    return start_ppc(folder, storage, cache_url, UPLOAD_USER, UPLOAD_PASSWORD, extra=extra)


class DevpiMirror(DevpiServer):
    @property
    def simple(self) -> str:
        return f"{self.base}/root/pypi/+simple/"


def start_devpi_mirror(folder: Path, upstream: str) -> Server:
    """devpi-server 6 with its default `root/pypi` mirror, its `mirror_url` set to the tree (as root, by PATCH)."""
    folder.mkdir(parents=True)
    server = DevpiMirror("devpi", folder)
    bin_ = venv("devpi")
    serverdir = folder / "devpi"
    subprocess.run([str(bin_ / "devpi-init"), "--serverdir", str(serverdir)], check=True, capture_output=True)
    server.spawn(
        [str(bin_ / "devpi-server"), "--serverdir", str(serverdir), "--host", "127.0.0.1", "--port", str(server.port)]
    )
    server.ready(f"{server.base}/+api", 600)
    token = _devpi(server, "POST", "/+login", {"user": "root", "password": ""})["result"]["password"]
    auth = {"X-Devpi-Auth": base64.b64encode(f"root:{token}".encode()).decode()}
    config = {"type": "mirror", "volatile": False, "title": "local upstream", "mirror_url": upstream}
    _devpi(server, "PATCH", "/root/pypi", config, auth)
    return server


# -- pages ----------------------------------------------------------------------------------------


@dataclass
class PageResult:
    kind: str
    local: Load
    proxied: Load
    local_bytes: int
    proxied_bytes: int
    upstream_requests: int

    @property
    def time_ratio(self) -> float:
        """The proxied page's time per request over the local page's (req/s inverted)."""
        return self.local.requests_per_s / max(self.proxied.requests_per_s, 1e-9)


def _get(url: str, headers: dict[str, str]) -> bytes:
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=60) as resp:
        body: bytes = resp.read()
        return body


def _median(loads: list[Load]) -> Load:
    return sorted(loads, key=lambda load: load.requests_per_s)[len(loads) // 2]


def measure_pages(work: Path, tree: TreeServer, upstream: list[str], args: argparse.Namespace) -> list[PageResult]:
    local = uniform_corpus(len(upstream), args.files_per_project, prefix="local-")
    local_names = sorted({d.key.split("/", 1)[0] for d in local})
    server = start_proxy(work / "pages", tree.simple, local)
    try:
        prefix = server.simple.removeprefix(server.base)
        results = []
        for kind, headers in KINDS.items():
            # Warm: every proxied page fetched once (and its listing held), every local page rendered once.
            proxied_bytes = [len(_get(f"{server.simple}{p}/", headers)) for p in upstream]
            local_bytes = [len(_get(f"{server.simple}{p}/", headers)) for p in local_names]
            before = tree.requests()
            runs: dict[str, list[Load]] = {"local": [], "proxied": []}
            for _ in range(args.rounds):
                for which, names in (("local", local_names), ("proxied", upstream)):
                    paths = [f"{prefix}{p}/" for p in names]
                    load = drive(
                        server.base, paths, work, duration=args.duration, connections=args.connections, headers=headers
                    )
                    runs[which].append(load)
            results.append(
                PageResult(
                    kind,
                    _median(runs["local"]),
                    _median(runs["proxied"]),
                    int(statistics.mean(local_bytes)),
                    int(statistics.mean(proxied_bytes)),
                    tree.requests() - before,
                )
            )
            done = results[-1]
            log(f"  {kind}: local {done.local.requests_per_s:,.0f} req/s, proxied {done.proxied.requests_per_s:,.0f}")
        return results
    finally:
        server.stop()


# -- clients --------------------------------------------------------------------------------------


def pip_install(index: str, packages: list[str], folder: Path) -> float:
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    pip = str(folder / "bin" / "pip")
    return timed([pip, "install", "--no-cache-dir", "--no-deps", "--index-url", index, *packages])


def uv_install(index: str, packages: list[str], folder: Path) -> float:
    uv = str(Path(sys.executable).parent / "uv")
    subprocess.run([uv, "venv", "-q", str(folder)], check=True, env=_client_env())
    python = str(folder / "bin" / "python")
    return timed([uv, "pip", "install", "--no-cache", "--no-deps", "--index-url", index, "--python", python, *packages])


CLIENTS: dict[str, Callable[[str, list[str], Path], float]] = {"pip": pip_install, "uv": uv_install}
STARTERS: dict[str, Callable[[Path, str], Server]] = {
    "pypicloud_lite": lambda folder, upstream: start_proxy(folder, upstream, []),
    "devpi": start_devpi_mirror,
}


@dataclass
class ClientResult:
    client: str
    server: str
    cold_s: float
    warm_s: float
    # The server process's CPU seconds (user + system) for the same runs: steadier than wall time on a shared machine.
    cold_cpu_s: float
    warm_cpu_s: float


def _run(
    server: Server, install: Callable[[str, list[str], Path], float], names: list[str], venv_dir: Path
) -> tuple[float, float]:
    """(wall seconds, the server's CPU seconds) of one client run."""
    before = cpu_seconds(server.pids[0])
    wall = install(server.simple, names, venv_dir)
    return wall, cpu_seconds(server.pids[0]) - before


def measure_clients(work: Path, tree: TreeServer, upstream: list[str], args: argparse.Namespace) -> list[ClientResult]:
    """Per client and server: a fresh server, the client once cold, then `--warm-runs` times warm, each into a fresh
    venv; medians over the rounds."""
    times: dict[tuple[str, str], list[tuple[float, float, float, float]]] = {}
    run = 0
    for round_ in range(args.rounds):
        for client, install in CLIENTS.items():
            for name, start in STARTERS.items():
                run += 1
                folder = work / f"run{run}"
                server = start(folder, tree.simple)
                try:
                    cold = _run(server, install, upstream, folder / "cold")
                    # Warm runs cost little and vary more (on a shared machine): the median of a few.
                    warm = [_run(server, install, upstream, folder / f"warm{n}") for n in range(args.warm_runs)]
                finally:
                    server.stop()
                row = (*cold, statistics.median(w for w, _ in warm), statistics.median(c for _, c in warm))
                times.setdefault((client, name), []).append(row)
                log(
                    f"  round {round_ + 1}: {client} via {name}: cold {row[0]:.2f} s (server CPU {row[1]:.2f} s), "
                    f"warm {row[2]:.2f} s (server CPU {row[3]:.2f} s)"
                )
                shutil.rmtree(folder, ignore_errors=True)
    results = []
    for (client, name), rows in times.items():
        cold_s, cold_cpu, warm_s, warm_cpu = (statistics.median(r[i] for r in rows) for i in range(4))
        results.append(ClientResult(client, name, cold_s, warm_s, cold_cpu, warm_cpu))
    return results


# -- report ---------------------------------------------------------------------------------------


def report(pages: list[PageResult], clients: list[ClientResult], args: argparse.Namespace) -> None:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    tool = pages[0].local.tool if pages else "-"
    print(
        f"\nMachine: {os.cpu_count()} cores ({cpu}), Python {platform.python_version()}; "
        f"upstream: static PEP 503 tree, {args.projects} projects x {args.files_per_project} files; "
        f"load: {tool} -t1 -c{args.connections}, "
        f"{args.duration:.0f} s per page kind, {args.rounds} rounds in turns (median kept).\n"
    )
    if pages:
        print("Warm proxied project page vs a local one of the same size, same pypicloud_lite:\n")
        print("| page | bytes | req/s | p50 ms | p99 ms | upstream requests during the load |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        for page in pages:
            for which, load, size in (
                ("local", page.local, page.local_bytes),
                ("proxied", page.proxied, page.proxied_bytes),
            ):
                upstream = str(page.upstream_requests) if which == "proxied" else ""
                errors = f" ({load.errors} errors)" if load.errors else ""
                print(
                    f"| {page.kind} {which} | {size:,} | {load.requests_per_s:,.1f}{errors} | {load.p50_ms:.2f} "
                    f"| {load.p99_ms:.2f} | {upstream} |"
                )
        print()
        for page in pages:
            p50 = page.proxied.p50_ms / max(page.local.p50_ms, 1e-9)
            verdict = "met" if page.time_ratio <= GOAL else "NOT met"
            print(
                f"- {page.kind}: proxied / local time per request {page.time_ratio:.2f}x (p50 {p50:.2f}x) "
                f"(goal {GOAL:g}x: {verdict})"
            )
    if clients:
        print(
            f"\n`--no-deps` install of {args.projects} packages into a fresh venv, client cache disabled "
            "(cold: the server has fetched nothing; warm: it holds every page and file):\n"
        )
        print("| client | server | cold s | warm s | server CPU s, cold | server CPU s, warm |")
        print("| --- | --- | ---: | ---: | ---: | ---: |")
        for row in clients:
            print(
                f"| {row.client} | {row.server} | {row.cold_s:.2f} | {row.warm_s:.2f} "
                f"| {row.cold_cpu_s:.2f} | {row.warm_cpu_s:.2f} |"
            )
        print("\ndevpi / pypicloud_lite, wall time and server CPU (above 1: pypicloud_lite faster or cheaper):\n")
        for client in CLIENTS:
            ours = next(r for r in clients if r.client == client and r.server == "pypicloud_lite")
            theirs = next(r for r in clients if r.client == client and r.server == "devpi")
            wall = f"cold {theirs.cold_s / ours.cold_s:.2f}x, warm {theirs.warm_s / ours.warm_s:.2f}x"
            cpu = f"cold {theirs.cold_cpu_s / ours.cold_cpu_s:.2f}x, warm {theirs.warm_cpu_s / ours.warm_cpu_s:.2f}x"
            print(f"- {client}: {wall}; server CPU: {cpu}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--projects", type=int, default=20, help="upstream projects (and packages installed)")
    parser.add_argument("--files-per-project", type=int, default=8, help="files per project (2 per version)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of load per page kind and turn")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="turns of the page load, and of the client runs")
    parser.add_argument("--warm-runs", type=int, default=3, help="warm client runs per fresh server (median kept)")
    parser.add_argument("--skip", choices=("pages", "clients"), action="append", default=[])
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it (servers' logs, the tree)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ppc-bench-upstream-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        dists = uniform_corpus(args.projects, args.files_per_project, prefix="up-")
        upstream = write_tree(dists, work / "tree")
        tree = start_tree(work, work / "tree")
        try:
            pages: list[PageResult] = []
            clients: list[ClientResult] = []
            if "pages" not in args.skip:
                log("pages: local vs warm proxied")
                pages = measure_pages(work, tree, upstream, args)
            if "clients" not in args.skip:
                log("clients: pip and uv through pypicloud_lite and devpi, cold and warm")
                clients = measure_clients(work, tree, upstream, args)
        finally:
            tree.stop()
    report(pages, clients, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
