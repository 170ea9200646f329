"""Malformed requests get a 4xx with the reason in the status line and the body, never a 500."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import webtest

from tests.support.apiutil import ADMIN, PASSWORD, running
from tests.support.common import UPLOADER, UPLOADER_PASSWORD, basic_auth, services
from tests.support.harness import Server, start_server

DEEP = b"[" * 100_000 + b"]" * 100_000
UPLOAD_PATHS = ("/", "/simple/", "/legacy/")


def assert_400(resp: webtest.TestResponse, contains: str) -> None:
    assert resp.status_int == 400, resp.status
    assert contains in resp.status
    assert contains in resp.json["message"]


@pytest.mark.parametrize("path", UPLOAD_PATHS)
def test_multipart_without_boundary(testapp: webtest.TestApp, auth: dict[str, str], path: str) -> None:
    headers = {**auth, "Content-Type": "multipart/form-data"}
    resp = testapp.post(path, b"--x\r\n\r\n", headers=headers, expect_errors=True)
    assert_400(resp, "form body cannot be read")


def test_multipart_with_a_broken_boundary(testapp: webtest.TestApp, auth: dict[str, str]) -> None:
    for boundary in ('"x', "a b c" * 30, "\x01"):
        headers = {**auth, "Content-Type": f"multipart/form-data; boundary={boundary}"}
        resp = testapp.post("/", b"--x\r\n\r\n", headers=headers, expect_errors=True)
        assert resp.status_int == 400, (boundary, resp.status)


def test_form_field_not_utf8(testapp: webtest.TestApp, auth: dict[str, str]) -> None:
    body = b'--b\r\nContent-Disposition: form-data; name=":action"\r\n\r\n\xff\xfe\r\n--b--\r\n'
    headers = {**auth, "Content-Type": "multipart/form-data; boundary=b"}
    resp = testapp.post("/", body, headers=headers, expect_errors=True)
    assert resp.status_int == 400, resp.status


@pytest.mark.parametrize(
    "body", [DEEP, b'{"description": "\xff"}', b"{", b'{"a": NaN', b'{"description": "\\ud800"}', b'{"\\udfff": 1}']
)
def test_json_that_cannot_be_read(testapp: webtest.TestApp, auth: dict[str, str], body: bytes) -> None:
    headers = {**auth, "Content-Type": "application/json"}
    resp = testapp.post("/api/tokens", body, headers=headers, expect_errors=True)
    assert resp.status_int == 400, resp.status
    assert resp.json["message"].startswith("The request body")


def test_deep_json_says_why(testapp: webtest.TestApp, auth: dict[str, str]) -> None:
    headers = {**auth, "Content-Type": "application/json"}
    assert_400(testapp.post("/api/tokens", DEEP, headers=headers, expect_errors=True), "nested too deeply")


@pytest.mark.parametrize("url", ["/api/projects?q=%ff", "/ui/?q=%ff", "/simple/?format=%ff", "/pypi/x/json?%ff=1"])
def test_query_not_utf8(testapp: webtest.TestApp, url: str) -> None:
    resp = testapp.get(url, expect_errors=True)
    assert 400 <= resp.status_int < 500, resp.status


@pytest.mark.parametrize(
    "url", ["/simple/%ff/", "/ui/projects/%ff", "/packages/%ff/%fe", "/pypi/%ff/json", "/api/projects/%ff"]
)
def test_path_not_utf8(testapp: webtest.TestApp, url: str) -> None:
    assert_400(testapp.get(url, expect_errors=True), "not valid UTF-8")


@pytest.mark.parametrize("page", ["abc", "1e9999", "9" * 5000, "-1", ""])
def test_page_that_is_not_a_number(testapp: webtest.TestApp, page: str) -> None:
    assert testapp.get(f"/ui/?page={page}").status_int == 200
    assert testapp.get(f"/api/projects?page={page}", expect_errors=True).status_int == 400


@pytest.mark.parametrize("url", ["/simple/", "/simple/foo/", "/ui/", "/api/projects", "/pypi/foo/json"])
def test_a_huge_accept_header(testapp: webtest.TestApp, url: str) -> None:
    resp = testapp.get(url, headers={"Accept": "text/html;q=0.5, " * 5000}, expect_errors=True)
    assert resp.status_int < 500, resp.status


# -- the login's `next` ------------------------------------------------------------------------


@pytest.fixture
def ui_app(sql_raw: dict[str, Any], cheap_hashing: None) -> Iterator[webtest.TestApp]:
    with running(sql_raw) as testapp:
        services(testapp.app).access.create_user("bob", PASSWORD)
        services(testapp.app).access.create_user(ADMIN, PASSWORD, is_admin=True)
        yield testapp


def test_a_huge_form_value_in_a_ui_error(ui_app: webtest.TestApp) -> None:
    # The reason quotes the value and goes to the session cookie as a flash message: it must still fit.
    form = ui_app.get("/ui/login").forms["login-form"]
    form["username"], form["password"] = ADMIN, PASSWORD
    form.submit()
    token = re.search(r'name="csrf_token" value="([^"]+)"', ui_app.get("/ui/admin/access").text)
    assert token
    for _ in range(10):  # posted by a script: no result page shows (and clears) the messages
        params = {"csrf_token": token.group(1), "name": "x" * 100_000, "password": "p", "action": "create"}
        resp = ui_app.post("/ui/admin/access/users", params, expect_errors=True)
        assert resp.status_int == 303, resp.status
    page = ui_app.get("/ui/admin/access")
    assert 1 <= page.text.count("Error: ") <= 3


@pytest.mark.parametrize(
    "target", ["/\r\nSet-Cookie: x=1", "/ui/\r\nSet-Cookie: x=1", "/\t/evil.example", "/\n/evil.example", "/ui/\u20ac"]
)
def test_login_next_only_a_plain_local_path(ui_app: webtest.TestApp, target: str) -> None:
    page = ui_app.get("/ui/login", params={"next": target})
    form = page.forms["login-form"]
    assert form["next"].value == ""
    form["username"], form["password"] = "bob", PASSWORD
    form["next"].force_value(target)
    resp = form.submit()
    assert resp.status_int == 303
    assert resp.location == "http://localhost/ui/"
    assert [name for name, _ in resp.headerlist].count("Set-Cookie") == 1


# -- on the wire, against pserve ----------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    started = start_server(Path(tmp_path_factory.mktemp("bad-input")))
    yield started
    started.stop()


def raw_request(server: Server, head: bytes, body: bytes = b"", *, half_close: bool = False) -> bytes:
    host, port = server.host.split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head + b"\r\n" + body)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def _auth_line() -> bytes:
    return f"Authorization: {basic_auth(UPLOADER, UPLOADER_PASSWORD)['Authorization']}\r\n".encode()


@pytest.mark.parametrize("path", UPLOAD_PATHS)
def test_wire_multipart_without_boundary(server: Server, path: str) -> None:
    body = b"--x\r\n\r\n"
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {server.host}\r\nConnection: close\r\n"
        f"Content-Type: multipart/form-data\r\nContent-Length: {len(body)}\r\n"
    ).encode() + _auth_line()
    answer = raw_request(server, head, body)
    assert answer.startswith(b"HTTP/1.1 400 The form body cannot be read"), answer[:200]


def test_wire_content_length_that_lies(server: Server) -> None:
    # Longer than the body: the client gives up first; the server must not answer 5xx or hang.
    body = b'--b\r\nContent-Disposition: form-data; name="x"\r\n\r\n1\r\n--b--\r\n'
    head = (
        f"POST /legacy/ HTTP/1.1\r\nHost: {server.host}\r\nConnection: close\r\n"
        f"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: {len(body) + 1000}\r\n"
    ).encode() + _auth_line()
    answer = raw_request(server, head, body, half_close=True)
    assert not answer.startswith(b"HTTP/1.1 5"), answer[:200]
    # Not a number, or negative: the server refuses the request itself.
    for length in (b"abc", b"-5", b"1, 2"):
        head = f"POST /legacy/ HTTP/1.1\r\nHost: {server.host}\r\nConnection: close\r\n".encode()
        answer = raw_request(server, head + b"Content-Length: " + length + b"\r\n", b"x")
        assert answer.startswith(b"HTTP/1.1 4"), (length, answer[:200])
    assert "Traceback" not in server.stderr()
