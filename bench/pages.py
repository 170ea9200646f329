"""Index page benchmark: pypicloud_lite against pypiserver, devpi, pypicloud, a bare waitress app and nginx.

    .venv/bin/python -m bench.pages                         # 1,000 / 20,000 / 100,000 files (make bench)
    .venv/bin/python -m bench.pages --files 20000 --servers pypicloud_lite bare nginx

For each size: a corpus of N files (N/4 projects x 4 files: 2 versions x wheel + sdist,
tiny real distributions), given to every server as its own storage expects it; each
server runs alone on the machine while the same bounded loopback load (wrk, one thread,
8 connections) drives `/simple/` and then project pages round-robin over a sample of
projects. Printed per server: req/s, p50, p99, peak RSS; then the ratios of
pypicloud_lite to each. At one size (--clients-at) also: `pip install` and
`uv pip install` of 20 packages into a fresh venv, and twine upload throughput; and
once, the server's peak RSS across a 500 MB upload. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bench.corpus import Dist, uniform_corpus
from bench.load import Load, drive
from bench.servers import (
    RenderedPage,
    Server,
    devpi_export,
    start_bare,
    start_devpi,
    start_nginx,
    start_ppc,
    start_pypicloud,
    start_pypiserver,
)
from pypicloud_lite.cache.sql import SQLCache
from pypicloud_lite.config import load_settings
from pypicloud_lite.metadata import parse_core_metadata
from pypicloud_lite.models import PackageFile, ReloadChanges, utcnow
from pypicloud_lite.naming import parse_filename, sidecar_key

ALL_SERVERS = ("pypicloud_lite", "bare", "nginx", "pypiserver", "devpi", "pypicloud")
FILES_PER_PROJECT = 4
CLIENT_PACKAGES = 20
# The goals of issue 7: pypicloud_lite / reference, at least.
GOALS = {"devpi": 5.0, "pypicloud": 10.0, "pypiserver": 20.0, "bare waitress": 0.8}
UPLOAD_USER, UPLOAD_PASSWORD = "bench", "bench-password"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- corpus into each server's layout ----------------------------------------------


def seed_ppc(dists: list[Dist], storage: Path, cache_url: str) -> None:
    """Files and sidecars in the storage folder; rows in the cache as an upload would have written them."""
    records = []
    now = utcnow()
    for dist in dists:
        target = storage / dist.key
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(dist.data)
        (storage / sidecar_key(dist.key)).write_bytes(dist.metadata)
        parsed = parse_filename(dist.key.split("/", 1)[1])
        core = parse_core_metadata(dist.metadata, parsed)
        record = PackageFile.of(parsed, size=len(dist.data), sha256=dist.sha256, upload_time=now)
        records.append(record.described(dist.metadata, core))
    settings = load_settings(
        {
            "storage.backend": "local",
            "storage.dir": str(storage),
            "cache.url": cache_url,
            "cache.migrate_on_start": "1",
        },
        environ={},
    )
    cache = SQLCache.from_settings(settings.cache)
    try:
        cache.apply_reload(ReloadChanges(added=records))
    finally:
        cache.close()


def link_flat(dists: list[Dist], storage: Path, folder: Path) -> None:
    """pypiserver's folder: every file, hard-linked (no sidecars)."""
    folder.mkdir(parents=True)
    for dist in dists:
        os.link(storage / dist.key, folder / dist.key.split("/", 1)[1])


def link_pypicloud(dists: list[Dist], storage: Path, folder: Path) -> None:
    """pypicloud's file storage: <name>/<version>/<filename>."""
    for dist in dists:
        parsed = parse_filename(dist.key.split("/", 1)[1])
        target = folder / parsed.project / str(parsed.version) / parsed.filename
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(storage / dist.key, target)


def devpi_files(dists: list[Dist]) -> list[tuple[str, str, str, bytes, str, str]]:
    rows = []
    for dist in dists:
        parsed = parse_filename(dist.key.split("/", 1)[1])
        core = parse_core_metadata(dist.metadata, parsed)
        rows.append(
            (
                parsed.project,
                str(parsed.version),
                parsed.filename,
                dist.data,
                core.summary or "",
                core.requires_python or "",
            )
        )
    return rows


# -- measurement ----------------------------------------------------------------


@dataclass
class Row:
    server: str
    index: Load | None = None
    project: Load | None = None
    rss_mb: float = 0.0
    pip_s: float | None = None
    uv_s: float | None = None
    twine_files_per_s: float | None = None
    note: str = ""


@dataclass
class SizeResult:
    files: int
    projects: int
    rows: list[Row] = field(default_factory=list)


def sample_projects(dists: list[Dist], count: int) -> list[str]:
    projects = sorted({d.key.split("/", 1)[0] for d in dists})
    step = max(1, len(projects) // count)
    return projects[::step][:count]


def measure_pages(server: Server, projects: list[str], folder: Path, args: argparse.Namespace) -> Row:
    prefix = server.simple.removeprefix(server.base)
    index = drive(server.base, [prefix], folder, duration=args.duration, connections=args.connections, headers={})
    project = drive(
        server.base,
        [f"{prefix}{p}/" for p in projects],
        folder,
        duration=args.duration,
        connections=args.connections,
        headers={},
    )
    return Row(server.name, index, project, server.peak_rss_mb())


def timed(command: list[str]) -> float:
    started = time.monotonic()
    done = subprocess.run(command, check=False, capture_output=True, env=_client_env())
    if done.returncode:
        tail = "\n".join((done.stdout + done.stderr).decode(errors="replace").splitlines()[-15:])
        raise RuntimeError(f"{command[0]} {command[1]} failed ({done.returncode}):\n{tail}")
    return time.monotonic() - started


def _client_env() -> dict[str, str]:
    # No user or site configuration of pip/uv may point them elsewhere.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_", "TWINE_"))}
    return {**env, "PIP_CONFIG_FILE": os.devnull, "UV_NO_CONFIG": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


def client_times(server: Server, packages: list[str], folder: Path) -> tuple[float, float]:
    """Seconds for `pip install` and `uv pip install` of the packages into fresh venvs (venv creation not counted)."""
    bin_ = Path(sys.executable).parent
    pip_venv, uv_venv = folder / f"pip-{server.port}", folder / f"uv-{server.port}"
    subprocess.run([sys.executable, "-m", "venv", str(pip_venv)], check=True)
    pip = timed(
        [
            str(pip_venv / "bin" / "pip"),
            "install",
            "--no-cache-dir",
            "--no-deps",
            "--index-url",
            server.simple,
            *packages,
        ]
    )
    subprocess.run([str(bin_ / "uv"), "venv", "-q", str(uv_venv)], check=True, env=_client_env())
    uv = timed(
        [
            str(bin_ / "uv"),
            "pip",
            "install",
            "--no-cache",
            "--no-deps",
            "--index-url",
            server.simple,
            "--python",
            str(uv_venv / "bin" / "python"),
            *packages,
        ]
    )
    return pip, uv


def twine_upload(server: Server, files: list[Path]) -> float:
    """Seconds for one `twine upload` of these files."""
    user, password = server.upload_auth or (UPLOAD_USER, UPLOAD_PASSWORD)
    twine = str(Path(sys.executable).parent / "twine")
    return timed(
        [
            twine,
            "upload",
            "--non-interactive",
            "--disable-progress-bar",
            "--repository-url",
            server.upload_url,
            "-u",
            user,
            f"--password={password}",
            *map(str, files),
        ]
    )


def twine_rate(server: Server, folder: Path, count: int) -> float:
    """Files per second that twine uploads (one twine process, its files in one call)."""
    dist_dir = folder / f"twine-{server.port}"
    dist_dir.mkdir()
    for dist in uniform_corpus(count // FILES_PER_PROJECT, FILES_PER_PROJECT, prefix=f"upload{server.port}"):
        (dist_dir / dist.key.split("/", 1)[1]).write_bytes(dist.data)
    files = sorted(dist_dir.iterdir())
    return len(files) / twine_upload(server, files)


def big_upload_rss(server: Server, folder: Path, megabytes: int) -> str:
    """The server's peak RSS before and after one upload of a `megabytes` MB wheel (random, stored)."""
    meta = b"Metadata-Version: 2.1\nName: big-wheel\nVersion: 1.0\n"
    path = folder / "big_wheel-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        with zf.open("big_wheel/blob.bin", "w", force_zip64=True) as blob:
            chunk = os.urandom(1 << 20)
            for _ in range(megabytes):
                blob.write(chunk)
        zf.writestr("big_wheel-1.0.dist-info/METADATA", meta)
        zf.writestr("big_wheel-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr("big_wheel-1.0.dist-info/RECORD", "")
    # One small upload first: the password check (argon2 takes 64 MiB while it runs) is then behind us.
    warm = uniform_corpus(1, 1, prefix="warmup")[0]
    small = folder / warm.key.split("/", 1)[1]
    small.write_bytes(warm.data)
    twine_upload(server, [small])
    before = server.peak_rss_mb()
    seconds = twine_upload(server, [path])
    path.unlink()
    return f"{megabytes} MB upload: peak RSS {before:.0f} -> {server.peak_rss_mb():.0f} MB, {seconds:.1f} s"


# -- one size -------------------------------------------------------------------


@contextlib.contextmanager
def running(start: Callable[[], Server | None]) -> Iterator[Server | None]:
    server = start()
    try:
        yield server
    finally:
        if server is not None:
            server.stop()


# Headers the serving server adds itself, whatever the app returns.
_SERVER_HEADERS = frozenset({"date", "server", "connection", "transfer-encoding", "content-length"})


def fetch(url: str) -> RenderedPage:
    """A page's body and the headers the app set (what a bare app would have to send too)."""
    with urllib.request.urlopen(url, timeout=120) as resp:
        headers = [(k, v) for k, v in resp.getheaders() if k.lower() not in _SERVER_HEADERS]
        return RenderedPage(headers, resp.read())


def rendered_pages(server: Server, projects: list[str]) -> dict[str, RenderedPage]:
    """The responses pypicloud_lite serves, for the bare app and nginx to serve as they are."""
    pages = {"/simple/": fetch(server.simple)}
    for p in projects:
        pages[f"/simple/{p}/"] = fetch(f"{server.simple}{p}/")
    return pages


class SizeRun:
    """One corpus size: every selected server, one after another, on the same files."""

    def __init__(self, files: int, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.result = SizeResult(files, files // FILES_PER_PROJECT)
        self.folder = work / f"n{files}"
        self.folder.mkdir()
        log(f"{files} files: building {self.result.projects} projects")
        self.dists = uniform_corpus(self.result.projects, FILES_PER_PROJECT)
        self.storage, self.cache_url = self.folder / "storage", f"sqlite:///{self.folder / 'cache.sqlite'}"
        seed_ppc(self.dists, self.storage, self.cache_url)
        self.sample = sample_projects(self.dists, args.sample)
        self.clients_here = files == args.clients_at
        self.packages = self.sample[:: max(1, len(self.sample) // CLIENT_PACKAGES)][:CLIENT_PACKAGES]
        self.pages: dict[str, RenderedPage] = {}

    def measure(self, server: Server | None) -> Row | None:
        """A server run alone (the references with a cold start of their own)."""
        if server is None:
            return None
        log(f"  {server.name}: measuring")
        row = measure_pages(server, self.sample, self.folder, self.args)
        self.clients(server, row)
        self.result.rows.append(row)
        return row

    def clients(self, server: Server, row: Row) -> None:
        if self.clients_here:
            log(f"  {server.name}: pip, uv and twine")
            row.pip_s, row.uv_s = client_times(server, self.packages, self.folder)
            row.twine_files_per_s = twine_rate(server, self.folder, self.args.upload_files)

    def run(self) -> SizeResult:
        args, folder, files = self.args, self.folder, self.result.files
        if "pypicloud_lite" in args.servers:
            self.run_in_memory_servers()
        if "pypiserver" in args.servers and files <= args.max_pypiserver:
            link_flat(self.dists, self.storage, folder / "pypiserver")
            with running(lambda: start_pypiserver(folder, folder / "pypiserver")) as server:
                self.measure(server)
        if "pypicloud" in args.servers and files <= args.max_pypicloud:
            link_pypicloud(self.dists, self.storage, folder / "pypicloud")
            log("  pypicloud: starting (it rebuilds its cache from storage)")
            with running(lambda: start_pypicloud(folder, folder / "pypicloud", UPLOAD_USER, UPLOAD_PASSWORD)) as server:
                self.measure(server)
        if "devpi" in args.servers and files <= args.max_devpi:
            log("  devpi: importing the corpus (devpi-import of a generated export)")
            export = devpi_export(devpi_files(self.dists), folder / "devpi-export", "bench")
            with running(lambda: start_devpi(folder, export)) as server:
                self.measure(server)
        return self.result

    def run_in_memory_servers(self) -> None:
        """pypicloud_lite, the bare app and nginx, up together and measured in turns (`--rounds`), the
        median round kept: the closest ratios, on a machine whose speed drifts, come from interleaving."""
        args, folder = self.args, self.folder
        with contextlib.ExitStack() as stack:
            ppc = stack.enter_context(
                running(lambda: start_ppc(folder, self.storage, self.cache_url, UPLOAD_USER, UPLOAD_PASSWORD))
            )
            assert ppc is not None
            self.pages.update(rendered_pages(ppc, self.sample))
            servers = [ppc]
            if "bare" in args.servers:
                servers.append(stack.enter_context(running(lambda: start_bare(folder, self.pages))))
            if "nginx" in args.servers:
                nginx = stack.enter_context(running(lambda: start_nginx(folder, self.pages)))
                servers += [nginx] if nginx is not None else []
            rounds: dict[str, list[Row]] = {s.name: [] for s in servers}
            for n in range(args.rounds):
                for server in servers:
                    log(f"  {server.name}: measuring, round {n + 1} of {args.rounds}")
                    rounds[server.name].append(measure_pages(server, self.sample, folder, args))
            rows = {s.name: median_row(rounds[s.name]) for s in servers}
            self.result.rows += rows.values()
            self.clients(ppc, rows[ppc.name])
            if args.big_upload_mb and self.result.files == min(args.files):
                rows[ppc.name].note = big_upload_rss(ppc, folder, args.big_upload_mb)


def median_row(rows: list[Row]) -> Row:
    """Each page kind's median round (by req/s), with its own latencies; the peak RSS of all rounds."""

    def median(loads: list[Load]) -> Load:
        return sorted(loads, key=lambda load: load.requests_per_s)[len(loads) // 2]

    return Row(
        rows[0].server,
        median([r.index for r in rows if r.index]),
        median([r.project for r in rows if r.project]),
        max(r.rss_mb for r in rows),
    )


# -- report ---------------------------------------------------------------------


def _load(load: Load | None) -> str:
    if load is None:
        return "| | |"
    errors = f" ({load.errors} errors)" if load.errors else ""
    return f"{load.requests_per_s:,.1f}{errors} | {load.p50_ms:.2f} | {load.p99_ms:.2f}"


def report(results: list[SizeResult], args: argparse.Namespace) -> None:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    print(
        f"\nMachine: {os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, {platform.system()} "
        f"{platform.release()}; load: {results[0].rows[0].index.tool if results and results[0].rows else '-'} "  # type: ignore[union-attr]
        f"-t1 -c{args.connections}, {args.duration:.0f} s per page kind; pypicloud_lite, the bare app and nginx "
        f"measured in turns ({args.rounds} rounds, median kept), the references alone after them.\n"
    )
    for size in results:
        print(f"### {size.files:,} files ({size.projects:,} projects)\n")
        print("| server | `/simple/` req/s | p50 ms | p99 ms | project page req/s | p50 ms | p99 ms | peak RSS MB |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for row in size.rows:
            print(f"| {row.server} | {_load(row.index)} | {_load(row.project)} | {row.rss_mb:.0f} |")
        ppc = next((r for r in size.rows if r.server == "pypicloud_lite"), None)
        if ppc and ppc.index and ppc.project:
            print("\npypicloud_lite / reference" + (" (goal):\n" if size.files == args.goals_at else ":\n"))
            for row in size.rows:
                if row is ppc or row.index is None or row.project is None:
                    continue
                goal = GOALS.get(row.server)
                ratios = [
                    ppc.index.requests_per_s / max(row.index.requests_per_s, 1e-9),
                    ppc.project.requests_per_s / max(row.project.requests_per_s, 1e-9),
                ]
                verdict = ""
                if goal is not None and size.files == args.goals_at:
                    verdict = " (goal {:g}x: {})".format(goal, "met" if min(ratios) >= goal else "NOT met")
                print(f"- {row.server}: `/simple/` {ratios[0]:,.2f}x, project page {ratios[1]:,.2f}x{verdict}")
        clients = [r for r in size.rows if r.pip_s is not None]
        if clients:
            print(
                f"\nClients at {size.files:,} files ({CLIENT_PACKAGES} packages into a fresh venv; "
                f"twine: {args.upload_files} files in one call):\n"
            )
            print("| server | pip install s | uv pip install s | twine upload files/s |")
            print("| --- | ---: | ---: | ---: |")
            for row in clients:
                print(f"| {row.server} | {row.pip_s:.2f} | {row.uv_s:.2f} | {row.twine_files_per_s:.1f} |")
        notes = [r for r in size.rows if r.note]
        if notes:
            print()
            for row in notes:
                print(f"- {row.server}: {row.note}")
        print()
    ppc_rows = [(s.files, r) for s in results for r in s.rows if r.server == "pypicloud_lite" and r.project]
    if len(ppc_rows) > 1:
        (small_n, small), (large_n, large) = ppc_rows[0], ppc_rows[-1]
        change = large.project.requests_per_s / small.project.requests_per_s - 1  # type: ignore[union-attr]
        print(
            f"pypicloud_lite project page req/s at {large_n:,} files vs {small_n:,}: {change:+.0%} "
            f"(goal: within 20%); peak RSS at {large_n:,} files: {large.rss_mb:.0f} MB (goal: under 200 MB)"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, nargs="+", default=[1000, 20000, 100000])
    parser.add_argument("--servers", nargs="+", choices=ALL_SERVERS, default=list(ALL_SERVERS))
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of load per page kind and server")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="turns of pypicloud_lite, bare app and nginx")
    parser.add_argument("--sample", type=int, default=500, help="project pages driven round-robin")
    parser.add_argument("--clients-at", type=int, default=20000, help="size at which pip/uv/twine are timed")
    parser.add_argument("--goals-at", type=int, default=20000, help="size at which issue 7's goals apply")
    parser.add_argument("--upload-files", type=int, default=100)
    parser.add_argument("--big-upload-mb", type=int, default=500, help="0 to skip")
    parser.add_argument("--max-devpi", type=int, default=20000, help="largest size devpi is filled for (by upload)")
    parser.add_argument("--max-pypicloud", type=int, default=20000)
    parser.add_argument("--max-pypiserver", type=int, default=100000)
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it (servers' logs, corpus)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ppc-bench-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        results = []
        for files in args.files:
            results.append(SizeRun(files, args, work).run())
            if not args.keep:
                shutil.rmtree(work / f"n{files}", ignore_errors=True)
    report(results, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
