"""Behind a proxy, the real server: waitress's trusted_proxy settings or web.public_url make the links, no one else."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from tests.support.harness import Server, start_server

# waitress trusts the proxy on the loopback address for the scheme, host and port it forwards.
TRUSTING = """\
threads = 4
trusted_proxy = 127.0.0.1
trusted_proxy_headers = x-forwarded-proto x-forwarded-host x-forwarded-port
"""
EVIL = "evil.example"


def ask(server: Server, path: str, headers: Mapping[str, str] | None = None) -> tuple[int, str, bytes]:
    """One GET, its redirect not followed: status, Location (or '') and body."""
    host, port = server.host.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("GET", path, headers=dict(headers or {}))
        response = connection.getresponse()
        return response.status, response.getheader("Location") or "", response.read()
    finally:
        connection.close()


@pytest.fixture
def trusting(tmp_path: Path) -> Iterator[Server]:
    server = start_server(tmp_path / "trusting", waitress=TRUSTING, extra={"web.allowed_hosts": "127.0.0.1 pypi.lan"})
    yield server
    server.stop()


def test_a_trusted_proxy_forwarding_https_gets_https_links(trusting: Server) -> None:
    status, location, _body = ask(trusting, "/simple", {"X-Forwarded-Proto": "https"})
    assert (status, location) == (301, f"https://{trusting.host}/simple/")
    status, location, _body = ask(trusting, "/ui/tokens", {"X-Forwarded-Proto": "https"})
    assert (status, location) == (303, f"https://{trusting.host}/ui/login?next=%2Fui%2Ftokens")
    status, _location, body = ask(trusting, "/", {"X-Forwarded-Proto": "https"})
    assert status == 200 and f"https://{trusting.host}/simple/".encode() in body
    # Without the header, the scheme the connection came with.
    assert ask(trusting, "/simple")[1] == f"{trusting.url}/simple/"


def test_a_forwarded_host_must_be_allowed(trusting: Server) -> None:
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "pypi.lan", "X-Forwarded-Port": "443"}
    assert ask(trusting, "/simple", forwarded)[:2] == (301, "https://pypi.lan/simple/")
    status, location, body = ask(trusting, "/simple", {**forwarded, "X-Forwarded-Host": EVIL})
    assert (status, location) == (400, "")
    assert "web.allowed_hosts" in json.loads(body)["message"]


def test_proxy_headers_are_ignored_unless_trusted(tmp_path: Path) -> None:
    server = start_server(tmp_path / "plain")
    try:
        forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": EVIL, "Forwarded": f"host={EVIL};proto=https"}
        assert ask(server, "/simple", forwarded)[:2] == (301, f"{server.url}/simple/")
        assert ask(server, "/simple", {"Host": EVIL})[0] == 400
    finally:
        server.stop()


def test_a_public_url_wins_over_host_and_proxy_headers(tmp_path: Path) -> None:
    public = "https://pypi.example.com/team/pypi"
    server = start_server(tmp_path / "public", waitress=TRUSTING, extra={"web.public_url": public})
    try:
        forwarded = {"Host": EVIL, "X-Forwarded-Proto": "http", "X-Forwarded-Host": EVIL}
        for path in ("/simple", "/team/pypi/simple"):  # a proxy that strips the prefix, and one that keeps it
            assert ask(server, path, forwarded)[:2] == (301, f"{public}/simple/")
        status, _location, body = ask(server, "/team/pypi/simple/", forwarded)
        assert status == 200 and EVIL.encode() not in body
    finally:
        server.stop()
