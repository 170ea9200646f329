"""Cross-site request protection: browsers' cross-site POST/PUT/DELETE are refused, twine, curl and same-origin pass."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import webtest

from tests.support.apiutil import (
    ADMIN,
    PASSWORD,
    assert_error,
    base_settings,
    call,
    creds,
    running,
    simple_filenames,
    sql_settings,
    static_users,
    upload_wheel,
)
from tests.support.common import services
from tests.support.distbuilder import build_wheel
from tests.support.legacy import post_upload, upload_dist

WHEEL = "foo_bar-1.0-py3-none-any.whl"

CROSS_SITE = [
    {"Origin": "http://evil.example"},
    {"Origin": "null"},
    {"Sec-Fetch-Site": "cross-site"},
    # Same host, other scheme or port: another origin.
    {"Origin": "https://localhost"},
    {"Origin": "http://localhost:8080"},
    {"Origin": "http://localhost.evil.example"},
    # Sec-Fetch-Site is the browser's own word: it wins over an Origin that looks right.
    {"Sec-Fetch-Site": "cross-site", "Origin": "http://localhost"},
]
SAME_SITE = [
    {},  # twine, uv, curl: no Origin at all
    {"Origin": "http://localhost"},
    {"Origin": "HTTP://LOCALHOST"},
    {"Sec-Fetch-Site": "same-origin", "Origin": "http://localhost"},
    {"Sec-Fetch-Site": "none"},
]

# (method, url, JSON body) of every state-changing endpoint.
CHANGES: list[tuple[str, str, Any]] = [
    ("POST", "/api/projects/foo-bar/versions/1.0/yank", {"reason": "csrf"}),
    ("DELETE", "/api/projects/foo-bar/versions/1.0/yank", None),
    ("DELETE", f"/api/projects/foo-bar/files/{WHEEL}", None),
    ("DELETE", "/api/projects/foo-bar/versions/1.0", None),
    ("PUT", "/api/projects/foo-bar/status", {"status": "quarantined"}),
    ("POST", "/api/users", {"name": "eve", "password": "x", "admin": True}),
    ("PUT", "/api/users/admin", {"password": "pwned"}),
    ("DELETE", "/api/users/bob", None),
    ("PUT", "/api/groups/devs", {"members": ["bob"]}),
    ("DELETE", "/api/groups/devs", None),
    ("PUT", "/api/projects/foo-bar/grants/user/bob", {"perms": "rwd"}),
    ("DELETE", "/api/projects/foo-bar/grants/user/bob", None),
    ("POST", "/api/tokens", {}),
    ("POST", "/admin/reload", None),
]


pytestmark = pytest.mark.usefixtures("cheap_hashing")


def state(testapp: webtest.TestApp) -> list[Any]:
    admin = creds(ADMIN)
    urls = [
        "/api/projects/foo-bar",
        "/api/users",
        "/api/groups",
        "/api/projects/foo-bar/grants",
        "/api/tokens?all=1",
        "/admin/reload",
    ]
    return [testapp.get(url, headers=admin).json for url in urls] + [simple_filenames(testapp, "foo-bar")]


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webtest.TestApp]:
    """An SQL-access app that refused requests must leave exactly as it was."""
    root = tmp_path_factory.mktemp("csrf")
    raw = sql_settings(base_settings(root))
    with running(raw) as testapp:
        access = services(testapp.app).access
        access.create_user(ADMIN, PASSWORD, is_admin=True)
        access.create_user("bob", PASSWORD)
        access.set_group("devs", ["bob"])
        access.set_grant("foo-bar", "user", "bob", "r")
        access.create_token("bob")
        upload_dist(testapp, creds(ADMIN), build_wheel(root / "dist", "Foo.Bar", "1.0"), "Foo.Bar", "1.0")
        call(testapp, "POST", "/api/projects/foo-bar/versions/1.0/yank", creds(ADMIN), json={"reason": "kept"})
        yield testapp


@pytest.mark.parametrize("headers", CROSS_SITE, ids=lambda h: "+".join(f"{k}={v}" for k, v in h.items()))
@pytest.mark.parametrize(("method", "url", "body"), CHANGES, ids=[f"{m} {u}" for m, u, _ in CHANGES])
def test_cross_site_changes_are_refused(
    shared: webtest.TestApp, headers: dict[str, str], method: str, url: str, body: Any
) -> None:
    before = state(shared)
    resp = call(shared, method, url, {**creds(ADMIN), **headers}, json=body)
    assert_error(resp, 403, "cross-site")
    assert state(shared) == before


@pytest.mark.parametrize("headers", CROSS_SITE[:3])
@pytest.mark.parametrize("url", ["/legacy/", "/simple/", "/", "/legacy"])
def test_cross_site_upload_is_refused(
    shared: webtest.TestApp, tmp_path: Path, headers: dict[str, str], url: str
) -> None:
    before = state(shared)
    path = build_wheel(tmp_path, "Foo.Bar", "2.0")
    resp = upload_dist(shared, {**creds(ADMIN), **headers}, path, "Foo.Bar", "2.0", url=url)
    assert_error(resp, 403, "cross-site")
    assert state(shared) == before
    assert shared.get("/packages/foo-bar/foo_bar-2.0-py3-none-any.whl", expect_errors=True).status_int == 404


@pytest.mark.parametrize("headers", CROSS_SITE[:3])
def test_refused_before_credentials_are_looked_at(shared: webtest.TestApp, headers: dict[str, str]) -> None:
    # No 401 challenge for a forged request: a browser would pop up a login box for the attacker's page.
    resp = call(shared, "POST", "/api/projects/foo-bar/versions/1.0/yank", headers)
    assert_error(resp, 403)
    assert "WWW-Authenticate" not in resp.headers


@pytest.mark.parametrize("url", ["/simple/", "/simple/foo-bar/", "/api/projects", "/pypi/foo-bar/json", "/health"])
def test_cross_site_reads_are_allowed(shared: webtest.TestApp, url: str) -> None:
    # Reads change nothing; the browser's same-origin policy keeps the answer from the other site.
    resp = shared.get(url, headers={"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"})
    assert resp.status_int == 200


@pytest.mark.parametrize("headers", SAME_SITE, ids=lambda h: "+".join(f"{k}={v}" for k, v in h.items()) or "none")
def test_same_site_changes_are_allowed(
    testapp: webtest.TestApp, auth: dict[str, str], dist_dir: Path, headers: dict[str, str]
) -> None:
    upload_wheel(testapp, {**auth, **headers}, dist_dir, "Foo.Bar", "1.0")
    url = "/api/projects/foo-bar/versions/1.0/yank"
    assert call(testapp, "POST", url, {**auth, **headers}, json={"reason": "same site"}).status_int == 200
    assert call(testapp, "DELETE", url, {**auth, **headers}).status_int == 200
    resp = call(testapp, "PUT", "/api/projects/foo-bar/status", {**auth, **headers}, json={"status": "deprecated"})
    assert resp.status_int == 200
    assert call(testapp, "DELETE", f"/api/projects/foo-bar/files/{WHEEL}", {**auth, **headers}).status_int == 200
    assert simple_filenames(testapp, "foo-bar") == []


def test_origin_follows_the_host(raw_settings: dict[str, Any], auth: dict[str, str], dist_dir: Path) -> None:
    with running({**raw_settings, "web.allowed_hosts": "localhost pypi.example.com:8080"}) as testapp:
        upload_wheel(testapp, auth, dist_dir, "Foo.Bar", "1.0")
        url = "/api/projects/foo-bar/versions/1.0/yank"
        host = {"Host": "pypi.example.com:8080"}
        refused = call(testapp, "POST", url, {**auth, **host, "Origin": "http://localhost"})
        assert_error(refused, 403)
        allowed = call(testapp, "POST", url, {**auth, **host, "Origin": "http://pypi.example.com:8080"})
        assert allowed.status_int == 200


@pytest.fixture
def raw_settings(raw_settings: dict[str, Any]) -> dict[str, Any]:
    return {**raw_settings, **static_users("bob")}


def test_cross_site_upload_with_bad_form_is_still_refused(testapp: webtest.TestApp) -> None:
    # The guard runs first: even an upload the view would reject answers 403, and stores nothing.
    resp = post_upload(
        testapp,
        {**creds("bob"), "Origin": "http://evil.example"},
        filename="x.whl",
        data=b"junk",
        name="x",
        version="1",
    )
    assert_error(resp, 403)
