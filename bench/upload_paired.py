"""Paired uploads: the null sink and pypicloud_lite from two source trees, up at once, one file to each per round.

    .venv/bin/python -m bench.upload_paired --before /tmp/before [--after .] [--rounds 200]

What `bench.upload` cannot tell on a shared machine: whether a change to the upload path made it faster
by a fraction of a millisecond (whole twine runs move by more than that between two runs of the same code).
Here the null sink of bench/upload.py and two pserve processes (bench.servers' settings, each with one
source tree first on its PYTHONPATH: an export of another commit, and this checkout) take one upload each
per round, in rotating order, from one keep-alive `requests` session each sending what twine sends (the
same form fields, `MultipartEncoder`); the first upload to each (its password check) is not counted. `--token`:
both use the SQL access backend and upload with an API token, as bench.upload --token. It
prints the median and mean time per upload of each and the difference of the medians. See bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path

import requests
from requests_toolbelt import MultipartEncoder

from bench.servers import PPC_BIN, Server, write_ppc_ini
from bench.upload import PASSWORD, USER, _Sink, sql_user_token, write_files
from pypicloud_lite.access.base import TOKEN_USERNAME
from tests.support.legacy import twine_fields

ROOT = Path(__file__).resolve().parent.parent


def start_tree(label: str, folder: Path, tree: Path, token: bool = False) -> Server:
    """pserve on bench.servers' settings, with `tree` (a source tree holding pypicloud_lite) first on its path.

    `token`: the SQL access backend (the embedded default's) and an API token of USER's, as bench.upload --token.
    """
    folder.mkdir()
    cache_url = f"sqlite:///{folder}/cache.sqlite"
    server = Server(
        label, folder, upload_auth=(TOKEN_USERNAME, sql_user_token(folder, cache_url)) if token else (USER, PASSWORD)
    )
    extra = {"auth.backend": "sql"} if token else None
    ini = write_ppc_ini(server, folder / "storage", cache_url, USER, PASSWORD, extra=extra)
    server.spawn([str(PPC_BIN / "pserve"), str(ini)], env={**os.environ, "PYTHONPATH": str(tree)})
    return server.ready(server.simple, 120)


def post(session: requests.Session, url: str, path: Path) -> float:
    """Seconds for one upload of `path`, as twine sends it."""
    data = path.read_bytes()
    name, version = path.name.split("-")[0], path.name.split("-")[1].removesuffix(".tar.gz")
    fields: list[tuple[str, object]] = [*twine_fields(name, version, path.name, data).items()]
    body = MultipartEncoder([*fields, ("content", (path.name, data, "application/octet-stream"))])
    started = time.perf_counter()
    response = session.post(url, data=body, headers={"Content-Type": body.content_type})
    seconds = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"{url} answered {response.status_code}: {response.text[:200]}")
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.upload_paired", description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, required=True, help="source tree of the code before (an export)")
    parser.add_argument("--after", type=Path, default=ROOT, help="source tree of the code after (this checkout)")
    parser.add_argument("--rounds", type=int, default=200, help="uploads to each, after the first (200)")
    parser.add_argument("--token", action="store_true", help="upload with an API token (SQL access backend)")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be positive")
    with tempfile.TemporaryDirectory(prefix="ppc-bench-paired-") as tmp:
        work = Path(tmp)
        servers = [start_tree("before", work / "before", args.before.resolve(), args.token)]
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        try:
            servers.append(start_tree("after", work / "after", args.after.resolve(), args.token))
            urls = {"null sink": f"http://127.0.0.1:{httpd.server_address[1]}/"}
            urls.update({server.name: server.upload_url for server in servers})
            sessions = {label: requests.Session() for label in urls}
            for session in sessions.values():
                session.auth = (USER, PASSWORD)
            for server in servers:
                sessions[server.name].auth = server.upload_auth
            # A few more than needed: the corpus comes in whole projects.
            files = {label: write_files(work / f"files-{n}", args.rounds + 8, f"p{n}x") for n, label in enumerate(urls)}
            for label, url in urls.items():
                post(sessions[label], url, files[label][0])
            times: dict[str, list[float]] = {label: [] for label in urls}
            order = list(urls)
            for round_ in range(1, args.rounds + 1):
                order = order[1:] + order[:1]
                for label in order:
                    times[label].append(post(sessions[label], urls[label], files[label][round_]))
        finally:
            httpd.shutdown()
            httpd.server_close()
            for server in servers:
                server.stop()
    load = os.getloadavg()[0]
    print(f"\npaired uploads: {args.rounds} rounds, load average {load:.2f} at the end\n")
    print(f"{'':12} {'median ms':>10} {'mean ms':>8}")
    for label, seconds in times.items():
        print(f"{label:12} {statistics.median(seconds) * 1000:10.2f} {statistics.mean(seconds) * 1000:8.2f}")
    saved = (statistics.median(times["before"]) - statistics.median(times["after"])) * 1000
    print(f"\nafter - before (medians): {-saved:+.2f} ms per upload")
    return 0


if __name__ == "__main__":
    sys.exit(main())
