"""Upload benchmark: `twine upload` of N small files to pypicloud_lite vs the same twine against a null sink.

    .venv/bin/python -m bench.upload [--files 100] [--profile]

The null sink is a tiny HTTP server (http.server, a thread of this process) that reads each request's
body and answers 200: what twine costs by itself (its process start, reading and hashing the files,
building the multipart bodies, one connection). pypicloud_lite is started with pserve as bench.pages
starts it (local storage, SQLite cache, waitress with 8 threads, an argon2 user). One twine process
uploads all N files (uniform_corpus of bench/corpus.py) to each, measured in the same run; the
result is the ratio of the upload rates (goal: at least 0.5).

`--warm`: also a second twine run of N other files against the same server, warm (its first password check,
argon2, and first-request costs were the first run's): printed beside the first, which the goal is judged on.
`--token`: twine authenticates with an API token (user `__token__`) of a user of the SQL access backend, as CI
jobs do (PyPI takes no passwords for uploads), instead of that user's password in the ini (the static backend,
whose first request pays argon2's check). `--profile`: also upload N other files through the WSGI app in this
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
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from bench.corpus import uniform_corpus
from bench.fill import log
from bench.pages import FILES_PER_PROJECT, twine_upload
from bench.servers import Server, start_ppc
from pypicloud_lite.access.base import TOKEN_USERNAME

GOAL_RATIO = 0.5
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.upload", description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=100, help="files twine uploads in one call (100)")
    parser.add_argument("--profile", action="store_true", help="also profile the upload path in this process")
    parser.add_argument("--warm", action="store_true", help="also a second twine run against the same server")
    parser.add_argument("--token", action="store_true", help="upload with an API token instead of a password")
    parser.add_argument(
        "--work",
        type=Path,
        default=None,
        help="folder to work in: storage, spool and database go in a temporary folder there (default: the system's)",
    )
    args = parser.parse_args(argv)
    if args.files < 1:
        parser.error("--files must be positive")
    with tempfile.TemporaryDirectory(prefix="ppc-bench-upload-", dir=args.work) as tmp:
        work = Path(tmp)
        sink_files = write_files(work / "sink-files", args.files, "sink")
        index_files = write_files(work / "index-files", args.files, "index")
        warm_files = write_files(work / "warm-files", args.files, "warm") if args.warm else []
        cache_url = f"sqlite:///{work}/cache.sqlite"
        token = sql_user_token(work, cache_url) if args.token else None
        extra = {"auth.backend": "sql"} if token else None
        server = start_ppc(work, work / "storage", cache_url, USER, PASSWORD, extra=extra)
        if token:
            server.upload_auth = (TOKEN_USERNAME, token)
        try:
            # The sink before and after (the faster kept): the first twine process starts cold.
            log(f"twine upload of {len(sink_files)} files to a null sink")
            sink = sink_seconds(sink_files, work)
            log(f"twine upload of {len(index_files)} files to pypicloud_lite")
            index = twine_upload(server, index_files)
            warm = twine_upload(server, warm_files) if warm_files else None
            sink = min(sink, sink_seconds(sink_files, work))
        finally:
            server.stop()
        profile = profile_uploads(work, args.files) if args.profile else ""
    ratio = sink / index
    print()
    print(
        f"pypicloud_lite upload: one twine process, {len(index_files)} small files (~1 KB) each run, in {work.parent}; "
        + ("an API token (SQL access backend)" if args.token else "a password (static access backend, argon2)")
    )
    print()
    print(f"{'':16} {'seconds':>8} {'files/s':>8}")
    print(f"{'null sink':16} {sink:8.2f} {len(sink_files) / sink:8.1f}")
    print(f"{'pypicloud_lite':16} {index:8.2f} {len(index_files) / index:8.1f}")
    if warm is not None:
        print(f"{'same, warm':16} {warm:8.2f} {len(warm_files) / warm:8.1f}   ({sink / warm:.3f}x the null sink)")
    print()
    print(
        f"rate vs the null sink: {ratio:.3f}x (goal >= {GOAL_RATIO:g}x: {'met' if ratio >= GOAL_RATIO else 'NOT met'})"
    )
    if profile:
        print(f"\n{profile}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
