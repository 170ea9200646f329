"""Upload benchmark: `twine upload` of N small files to pypicloud_lite vs the same twine against a null sink.

    .venv/bin/python -m bench.upload [--files 100] [--rounds 3] [--auth password token] [--profile]

The null sink is a tiny HTTP server (http.server, a thread of this process) that reads each request's
body and answers 200: what twine costs by itself (its process start, reading and hashing the files,
building the multipart bodies, one connection). pypicloud_lite is started with pserve as bench.pages
starts it (local storage, SQLite cache, waitress with 8 threads, an argon2 user). One twine process
uploads all N files (uniform_corpus of bench/corpus.py) to each, measured in the same run; the
result is the ratio of the upload rates (goal: at least 0.5).

Each of `--rounds` rounds runs the sink (twice: the faster counts) and, for each `--auth` way, a new server
and one cold twine run to it; the ratio printed is the median of the rounds' ratios (a single run moves by a
fifth on this shared machine). `--auth password`: the user's password in the ini (the static backend, whose
first request pays argon2's check); `token`: an API token (user `__token__`) of a user of the SQL access
backend, the embedded default's, as CI jobs upload (PyPI takes no passwords for uploads).
`--warm`: also a second twine run of N other files against each server, warm (its first password check,
argon2, and first-request costs were the first run's): printed below the first, which the goal is judged on.
`--profile`: also upload N other files through the WSGI app in this
process (webtest, the same settings and form fields twine sends) under cProfile, and print where the time goes.
`--work DIR`:
put storage, spool and database under DIR instead of the system's temporary folder (where a file
system makes creating files slow, that is what the index pays per upload).
Everything runs on 127.0.0.1 and stops by itself. See bench/README.md.
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import io
import pstats
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from bench.corpus import uniform_corpus
from bench.fill import log
from bench.pages import FILES_PER_PROJECT, twine_upload
from bench.servers import Server, start_ppc
from pypicloud_lite.access.base import TOKEN_USERNAME

GOAL_RATIO = 0.5
PASSWORD_MODE, TOKEN = "password", "token"
MODES = (PASSWORD_MODE, TOKEN)
PROFILE_SORT = "tottime"
USER, PASSWORD = "bench", "bench-password"


class _Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as twine's session expects
    # The response in one segment, sent at once: two small writes meet the client's delayed ACK (40 ms each).
    wbufsize = 1 << 16
    disable_nagle_algorithm = True

    def do_POST(self) -> None:
        remaining = int(self.headers.get("Content-Length") or 0)
        while remaining > 0:
            remaining -= len(self.rfile.read(min(remaining, 1 << 16)) or b"x" * remaining)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"OK")

    def log_message(self, format: str, *args: object) -> None:
        pass


def write_files(folder: Path, count: int, prefix: str) -> list[Path]:
    folder.mkdir(parents=True)
    for dist in uniform_corpus(max(1, count // FILES_PER_PROJECT), FILES_PER_PROJECT, prefix=prefix)[:count]:
        (folder / dist.key.split("/", 1)[1]).write_bytes(dist.data)
    return sorted(folder.iterdir())


def sink_seconds(files: list[Path], folder: Path) -> float:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        sink = Server("null-sink", folder, port=httpd.server_address[1], upload_auth=(USER, PASSWORD))
        return twine_upload(sink, files)
    finally:
        httpd.shutdown()
        httpd.server_close()


def sql_user_token(work: Path, cache_url: str) -> str:
    """USER in the SQL access backend of this database (made at the schema's head), and an API token of theirs."""
    from pypicloud_lite.access.sql import SQLAccess
    from pypicloud_lite.config import load_settings

    settings = load_settings(
        {
            "storage.dir": str(work / "storage"),
            "cache.url": cache_url,
            "cache.migrate_on_start": "true",
            "auth.backend": "sql",
        },
        environ={},
    )
    access = SQLAccess.connect(settings.auth, settings.cache)
    try:
        access.create_user(USER, PASSWORD)
        return access.create_token(USER, "bench.upload").secret
    finally:
        access.close()


def profile_uploads(work: Path, count: int) -> str:
    """N uploads through the WSGI app in this process, as twine posts them, under cProfile (the top 30 by own time)."""
    import webtest

    from pypicloud_lite.access.passwords import hash_password
    from pypicloud_lite.config import load_settings
    from pypicloud_lite.web import make_app
    from tests.support.legacy import twine_fields

    settings = {
        "storage.backend": "local",
        "storage.dir": str(work / "profile-storage"),
        "cache.url": f"sqlite:///{work}/profile.sqlite",
        "cache.migrate_on_start": "true",
        "upload.spool_dir": str(work / "profile-spool"),
        f"user.{USER}": hash_password(PASSWORD),
        "pypi.default_read": "everyone",
        "pypi.default_write": "authenticated",
    }
    app = webtest.TestApp(make_app(load_settings(settings, environ={})))
    auth = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}
    uploads = []
    for path in write_files(work / "profile-files", count, "profiled"):
        name, version = path.name.split("-")[0], path.name.split("-")[1].removesuffix(".tar.gz")
        data = path.read_bytes()
        uploads.append((path.name, data, list(twine_fields(name, version, path.name, data).items())))
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    for filename, data, fields in uploads:
        app.post("/", params=fields, upload_files=[("content", filename, data)], headers=auth, status=200)
    profiler.disable()
    seconds = time.perf_counter() - started
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats(PROFILE_SORT).print_stats(120)
    return f"{count} uploads in this process: {seconds:.2f}s ({count / seconds:.1f}/s)\n{out.getvalue()}"


@dataclass
class Round:
    """One round: the null sink's twine run, and per way of authenticating a cold (and a warm) run to a new server."""

    sink: float
    cold: dict[str, float] = field(default_factory=dict)
    warm: dict[str, float] = field(default_factory=dict)


def upload_round(work: Path, number: int, count: int, modes: list[str], warm: bool) -> Round:
    """The sink, then for each mode a new pserve on its own storage and database, then the sink again (the faster
    sink run counts: the first twine process of a round may start cold)."""
    folder = work / f"round-{number}"
    sink_files = write_files(folder / "sink-files", count, "sink")
    log(f"round {number}: twine upload of {count} files to a null sink")
    result = Round(sink_seconds(sink_files, folder))
    for mode in modes:
        place = folder / mode
        place.mkdir()
        cache_url = f"sqlite:///{place}/cache.sqlite"
        token = sql_user_token(place, cache_url) if mode == TOKEN else None
        server = start_ppc(
            place, place / "storage", cache_url, USER, PASSWORD, extra={"auth.backend": "sql"} if token else None
        )
        if token:
            server.upload_auth = (TOKEN_USERNAME, token)
        try:
            log(f"round {number}: twine upload of {count} files to pypicloud_lite ({mode})")
            result.cold[mode] = twine_upload(server, write_files(place / "index-files", count, mode))
            if warm:
                result.warm[mode] = twine_upload(server, write_files(place / "warm-files", count, f"warm{mode}"))
        finally:
            server.stop()
    result.sink = min(result.sink, sink_seconds(sink_files, folder))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.upload", description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=100, help="files twine uploads in one call (100)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each with its own sink run and servers (3)")
    parser.add_argument(
        "--auth",
        nargs="+",
        choices=MODES,
        default=list(MODES),
        help="how twine authenticates: a password of the ini's static users, an API token of the SQL access backend",
    )
    parser.add_argument("--profile", action="store_true", help="also profile the upload path in this process")
    parser.add_argument("--warm", action="store_true", help="also a second twine run against each server")
    parser.add_argument(
        "--work",
        type=Path,
        default=None,
        help="folder to work in: storage, spool and database go in a temporary folder there (default: the system's)",
    )
    args = parser.parse_args(argv)
    if args.files < 1 or args.rounds < 1:
        parser.error("--files and --rounds must be positive")
    modes = [mode for mode in MODES if mode in args.auth]
    with tempfile.TemporaryDirectory(prefix="ppc-bench-upload-", dir=args.work) as tmp:
        work = Path(tmp)
        rounds = [upload_round(work, number, args.files, modes, args.warm) for number in range(1, args.rounds + 1)]
        profile = profile_uploads(work, args.files) if args.profile else ""
    print()
    print(
        f"pypicloud_lite upload: one twine process, {args.files} small files (~1 KB) a run, {args.rounds} rounds, "
        f"in {work.parent}; {PASSWORD_MODE}: the ini's static users (argon2), {TOKEN}: an API token of the SQL "
        "access backend (the embedded default's)"
    )
    print()
    print(f"{'round':6} {'null sink s':>11}" + "".join(f" {mode + ' s':>11} {'ratio':>6}" for mode in modes))
    for number, result in enumerate(rounds, 1):
        cells = "".join(f" {result.cold[mode]:11.2f} {result.sink / result.cold[mode]:6.3f}" for mode in modes)
        print(f"{number:<6} {result.sink:11.2f}{cells}")
    if args.warm:
        for number, result in enumerate(rounds, 1):
            cells = "".join(f" {result.warm[mode]:11.2f} {result.sink / result.warm[mode]:6.3f}" for mode in modes)
            print(f"{'warm ' + str(number):6} {result.sink:11.2f}{cells}")
    print()
    for mode in modes:
        ratio = statistics.median(result.sink / result.cold[mode] for result in rounds)
        met = "met" if ratio >= GOAL_RATIO else "NOT met"
        print(
            f"rate vs the null sink, {mode}, median of {args.rounds} rounds: {ratio:.3f}x "
            f"(goal >= {GOAL_RATIO:g}x: {met})"
        )
    if profile:
        print(f"\n{profile}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
