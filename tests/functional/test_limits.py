"""Clients without credentials cannot make the server buffer huge bodies, nor starve it with idle connections."""

from __future__ import annotations

import os
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pypicloud_lite.config import UploadSettings
from pypicloud_lite.config_values import parse_size
from pypicloud_lite.scripts.make_config import waitress_options
from tests.support.harness import Server, start_server

# The test servers' upload limit (server_settings), and the waitress options ppc-make-config writes for it.
MAX_SIZE = "1MB"
MAX_BODY = UploadSettings(parse_size(MAX_SIZE), None).max_body
SHIPPED = waitress_options(MAX_SIZE)
# A body far above the limit, but below waitress's default (1 GiB), which refuses 1 GiB itself.
HUGE = 1_000_000_000
# How long a refused or ordinary request may take to be answered before the test calls the server stuck.
ANSWER_TIMEOUT = 15.0
# Idle connections: three times waitress's default connection_limit, far below the shipped one.
FLOOD = 300


@pytest.fixture
def shipped_server(tmp_path: Path) -> Iterator[Server]:
    server = start_server(tmp_path / "server", waitress=SHIPPED)
    yield server
    server.stop()


def _port(server: Server) -> int:
    return int(server.url.rsplit(":", 1)[1])


def _connect(server: Server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", _port(server)), timeout=ANSWER_TIMEOUT)


def _read_answer(sock: socket.socket) -> bytes:
    """What the server sends until it closes the connection (requests say Connection: close), or ANSWER_TIMEOUT."""
    chunks = []
    deadline = time.monotonic() + ANSWER_TIMEOUT
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except (TimeoutError, ConnectionResetError):
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def _post(server: Server, headers: str, body: bytes) -> bytes:
    with _connect(server) as sock:
        head = f"POST /legacy/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{headers}\r\n"
        sock.sendall(head.encode() + body)
        return _read_answer(sock)


def _open_files(pid: int) -> list[int]:
    """The sizes of the regular files the server process holds open (waitress's body buffers are unlinked)."""
    sizes = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            info = os.stat(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if info.st_mode & 0o170000 == 0o100000:
            sizes.append(info.st_size)
    return sizes


def test_a_huge_anonymous_body_is_refused_before_it_is_buffered(shipped_server: Server) -> None:
    sent = 0
    answer = b""
    with _connect(shipped_server) as sock:
        sock.sendall(
            b"POST /legacy/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: multipart/form-data; boundary=xyz\r\n" + f"Content-Length: {HUGE}\r\n\r\n".encode()
        )
        block = b"x" * (1 << 16)
        # A few MB of the promised GB, stopping as soon as the server answers.
        while sent < 8 * MAX_BODY:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            try:
                sock.sendall(block)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(block)
            assert max(_open_files(shipped_server.process.pid), default=0) <= MAX_BODY
        answer = _read_answer(sock)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:500]
    assert max(_open_files(shipped_server.process.pid), default=0) <= MAX_BODY
    spool = shipped_server.folder / "spool"
    assert sum(f.stat().st_size for f in spool.rglob("*") if f.is_file()) <= MAX_BODY
    # The server is still there for everyone else.
    assert shipped_server.get("/simple/")[0] == 200


@pytest.fixture
def lenient_server(tmp_path: Path) -> Iterator[Server]:
    """waitress's default body limit (1 GiB), so that what reaches the app is the app's to refuse."""
    server = start_server(tmp_path / "server")
    yield server
    server.stop()


@pytest.mark.parametrize("authorization", ["", "Authorization: Basic " + "d3Jvbmc6d3Jvbmc=\r\n"])
def test_an_oversized_body_is_refused_before_authentication(lenient_server: Server, authorization: str) -> None:
    body = b"x" * (MAX_BODY + 1)
    headers = f"{authorization}Content-Type: multipart/form-data; boundary=xyz\r\nContent-Length: {len(body)}\r\n"
    answer = _post(lenient_server, headers, body)
    # 413, not the 401 an anonymous or wrong-password upload gets: nobody's password was looked at.
    assert answer.startswith(b"HTTP/1.1 413 File too large"), answer[:500]
    assert b"Limit for this index is 1000000 bytes" in answer


def test_a_chunked_body_over_the_limit_is_refused_while_it_arrives(shipped_server: Server) -> None:
    # waitress decodes chunked bodies itself (the app then sees a Content-Length), counting against its limit.
    chunk = b"x" * (1 << 16)
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(2 * MAX_BODY // len(chunk)))
    headers = "Content-Type: multipart/form-data; boundary=xyz\r\nTransfer-Encoding: chunked\r\n"
    try:
        answer = _post(shipped_server, headers, chunks + b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pytest.fail("the server closed the connection without answering")
    assert answer.startswith(b"HTTP/1.1 413"), answer[:500]


def test_a_body_within_the_limit_still_reaches_the_upload_view(shipped_server: Server) -> None:
    body = b"x" * MAX_BODY
    headers = f"Content-Type: multipart/form-data; boundary=xyz\r\nContent-Length: {len(body)}\r\n"
    # The largest body the limits let through: the upload view asks who is calling.
    assert _post(shipped_server, headers, body).startswith(b"HTTP/1.1 401")


def test_idle_connections_do_not_starve_other_clients(shipped_server: Server) -> None:
    flood: list[socket.socket] = []
    try:
        for n in range(FLOOD):
            sock = _connect(shipped_server)
            flood.append(sock)
            if n % 3 == 0:
                # Half a request line, never finished.
                sock.sendall(b"GET /simple/ HT")
        # Give the server time to accept them all before the real client comes.
        time.sleep(1)
        with _connect(shipped_server) as sock:
            sock.sendall(b"GET /simple/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            answer = _read_answer(sock)
        assert answer.startswith(b"HTTP/1.1 200"), answer[:500] or "no answer while idle connections were open"
    finally:
        for sock in flood:
            sock.close()
