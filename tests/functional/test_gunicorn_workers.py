"""One server per core: gunicorn with the repository's config file and the paste ini, two worker processes.

A sync worker serves one connection at a time, so a half-sent request holds the worker that accepted it and the
next connection goes to the other: the test knows two processes answered (the access log names each one's pid),
and that a page one worker had rendered lists what the other worker took in.
"""

from __future__ import annotations

import http.client
import re
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.common import require_or_skip
from tests.support.data import REPO_ROOT
from tests.support.distbuilder import build_wheel
from tests.support.harness import BIN, Clients, Server, clean_env, free_port, launch, pserve_settings
from tests.support.settings import HERE, write_ini

GUNICORN = BIN / "gunicorn"
CONF = REPO_ROOT / "deploy" / "gunicorn" / "gunicorn.conf.py"
PAGE = "/simple/spread/"
_ENTRY = re.compile(r"^<(\d+)> (\S+) (\S+) (\d+)$")


@dataclass(frozen=True)
class Entry:
    pid: int
    method: str
    path: str
    status: int


def access_log(server: Server, before: int = 0, count: int = 0) -> list[Entry]:
    """The access log's entries after the first `before`, once there are `count` of them (gunicorn writes a line
    just after its response is sent).
    """
    path = server.folder / "access.log"
    deadline = time.monotonic() + 10
    while True:
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        if len(lines) >= before + count or time.monotonic() > deadline:
            matches = [_ENTRY.match(line) for line in lines[before:]]
            return [Entry(int(m[1]), m[2], m[3], int(m[4])) for m in matches if m]
        time.sleep(0.05)


@contextmanager
def gunicorn(folder: Path, workers: int) -> Iterator[Server]:
    if not GUNICORN.exists():
        require_or_skip(f"{GUNICORN} not found: install the gunicorn extra (make does)")
    folder.mkdir(parents=True)
    port = free_port()
    ini = write_ini(folder / "server.ini", pserve_settings(HERE), port)  # its [server:main] is waitress's, unread
    argv = [str(GUNICORN), "-c", str(CONF), "--paste", str(ini), "-w", str(workers), "-b", f"127.0.0.1:{port}"]
    argv += ["--access-logfile", str(folder / "access.log"), "--access-logformat", "%(p)s %(m)s %(U)s %(s)s"]
    # HOME: where gunicorn puts its control socket.
    server = launch(folder, ini, port, command=argv, env=clean_env(HOME=str(folder)))
    try:
        yield server
    finally:
        server.stop()


class HalfSent:
    """A GET whose header block is not finished: the sync worker that accepted it waits on it, serving nobody."""

    def __init__(self, server: Server, path: str) -> None:
        host = server.host
        self.sock = socket.create_connection(("127.0.0.1", int(host.rsplit(":", 1)[1])), timeout=30)
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n".encode())

    def finish(self) -> bytes:
        """The response, once the request is complete."""
        self.sock.sendall(b"Connection: close\r\n\r\n")
        chunks = []
        while chunk := self.sock.recv(65536):
            chunks.append(chunk)
        self.sock.close()
        return b"".join(chunks)


def test_two_workers_serve_and_see_each_others_uploads(tmp_path: Path) -> None:
    v1, v2 = (build_wheel(tmp_path / "dist", "spread", version) for version in ("1.0", "2.0"))
    with gunicorn(tmp_path / "server", workers=2) as server:
        clients = Clients(server, tmp_path / "home")
        clients.twine(v1).check()
        seen = len(access_log(server))
        if not any(entry.method == "POST" for entry in access_log(server)):  # its line may trail the response
            seen += len(access_log(server, seen, 1))

        # Each worker renders the page once (and keeps it): one is held by a half-sent request meanwhile.
        held = HalfSent(server, PAGE)
        status, _headers, body = server.get(PAGE)
        assert status == 200 and v1.name.encode() in body
        assert v1.name.encode() in held.finish()
        other, first = access_log(server, seen, 2)
        assert (other.path, first.path) == (PAGE, PAGE) and other.pid != first.pid

        # An upload while one worker is held lands on the other; the held worker's page then lists it.
        held = HalfSent(server, PAGE)
        clients.twine(v2).check()
        answer = held.finish()
        assert answer.startswith(b"HTTP/1.1 200") and v2.name.encode() in answer
        upload, page = access_log(server, seen + 2, 2)
        assert (upload.method, upload.path, page.path) == ("POST", "/legacy/", PAGE)
        assert upload.pid != page.pid and {upload.pid, page.pid} == {other.pid, first.pid}
        assert server.listed_files("spread").keys() == {v1.name, v2.name}

        # The shipped config believes no X-Forwarded-Proto (web.public_url or forwarded_allow_ips decide).
        connection = http.client.HTTPConnection("127.0.0.1", int(server.host.rsplit(":", 1)[1]), timeout=10)
        connection.request("GET", "/simple", headers={"X-Forwarded-Proto": "https"})
        response = connection.getresponse()
        assert (response.status, response.getheader("Location")) == (301, f"{server.url}/simple/")
        connection.close()
