"""Access rules of a private index: who gets 200, 401, 403 or 404 on every endpoint, from the ini's grants."""

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
    static_users,
    upload_wheel,
)
from tests.support.distbuilder import build_wheel
from tests.support.legacy import JSON_V1, upload_dist
from tests.support.webapp import Uploaded

# From least to most privileged; `wrong` is the reader with a wrong password.
CALLERS = ["anonymous", "wrong", "outsider", "reader", "writer", "deleter", "member", "admin"]
WHEEL = "foo_bar-1.0-py3-none-any.whl"


GRANTS = {
    **static_users("outsider", "reader", "writer", "deleter", "member", "creator", ADMIN),
    "auth.admins": f"uploader {ADMIN}",
    "pypi.default_read": "",
    "pypi.default_write": "",
    "package.foo-bar.user.reader": "r",
    "package.foo-bar.user.writer": "rw",
    "package.foo-bar.user.deleter": "rwd",
    "package.foo-bar.group.team": "r",
    "group.team": "member",
    "package.public.group.everyone": "r",
    "package.shared.group.authenticated": "r",
}


@pytest.fixture
def raw_settings(raw_settings: dict[str, Any]) -> dict[str, Any]:
    return {**raw_settings, **GRANTS}


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webtest.TestApp]:
    """One app for the tests that only read: logins verified once, projects uploaded once."""
    root = tmp_path_factory.mktemp("permissions")
    raw = {
        **base_settings(root),
        # Many deliberate wrong passwords below: the limiter has its own tests.
        "auth.max_failed_logins": "0",
        **GRANTS,
        "auth.admins": ADMIN,
    }
    with running(raw) as testapp:
        admin = creds(ADMIN)
        upload_dist(testapp, admin, build_wheel(root / "dist", "Foo.Bar", "1.0"), "Foo.Bar", "1.0")
        for name in ("aaa-hidden", "public", "shared", "zzz-hidden"):
            upload_wheel(testapp, admin, root / "dist", name, "1.0")
        yield testapp


def headers_of(caller: str, admin: dict[str, str] | None = None) -> dict[str, str]:
    if caller == "anonymous":
        return {}
    if caller == "wrong":
        return creds("reader", PASSWORD + "x")
    if caller == "admin":
        return admin if admin is not None else creds(ADMIN)
    return creds(caller)


def check(resp: webtest.TestResponse, status: int) -> None:
    if status >= 400:
        assert_error(resp, status)
    else:
        assert resp.status_int == status, (resp.status, resp.body[:300])


READ = {"anonymous": 401, "wrong": 401, "outsider": 404, "reader": 200, "writer": 200, "deleter": 200, "member": 200}
DELETE = {"anonymous": 401, "wrong": 401, "outsider": 404, "reader": 403, "writer": 403, "member": 403, "deleter": 200}


@pytest.mark.parametrize(
    "url",
    [
        "/api/projects/foo-bar",
        "/pypi/foo-bar/json",
        "/pypi/foo-bar/1.0/json",
        "/simple/foo-bar/",
        f"/packages/foo-bar/{WHEEL}",
        f"/packages/foo-bar/{WHEEL}.metadata",
    ],
)
def test_reading_a_project(shared: webtest.TestApp, url: str) -> None:
    for caller in CALLERS:
        status = READ.get(caller, 200)
        resp = shared.get(url, headers={"Accept": JSON_V1, **headers_of(caller)}, expect_errors=True)
        check(resp, status)


@pytest.mark.parametrize(
    "url",
    [
        "/api/projects/nothing",
        "/pypi/nothing/json",
        "/simple/nothing/",
        f"/packages/nothing/{WHEEL}",
    ],
)
def test_unreadable_and_unknown_look_the_same(shared: webtest.TestApp, url: str) -> None:
    # Never 403 for a project the caller may not read: uv only falls through to its next index on 404.
    for caller in CALLERS:
        status = {"anonymous": 401, "wrong": 401}.get(caller, 404)
        check(shared.get(url, headers={"Accept": JSON_V1, **headers_of(caller)}, expect_errors=True), status)


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("DELETE", f"/api/projects/foo-bar/files/{WHEEL}"),
        ("DELETE", "/api/projects/foo-bar/versions/1.0"),
        ("POST", "/api/projects/foo-bar/versions/1.0/yank"),
    ],
)
def test_changing_a_release(
    testapp: webtest.TestApp, auth: dict[str, str], uploaded: Uploaded, method: str, url: str
) -> None:
    """Each caller in turn: the refused ones change nothing, the first allowed one succeeds."""
    files = {
        f["filename"]: f for f in testapp.get("/simple/foo-bar/", headers={"Accept": JSON_V1, **auth}).json["files"]
    }
    for caller, status in DELETE.items():
        check(call(testapp, method, url, headers_of(caller, auth)), status)
        page = testapp.get("/simple/foo-bar/", headers={"Accept": JSON_V1, **auth}, expect_errors=True)
        # Deleting the only release leaves the project unknown (404).
        after = page.json["files"] if page.status_int == 200 else []
        if status != 200:
            assert {f["filename"]: f for f in after} == files, caller
    assert {f["filename"]: f for f in after} != files


def test_unyank(testapp: webtest.TestApp, auth: dict[str, str], uploaded: Uploaded) -> None:
    url = "/api/projects/foo-bar/versions/1.0/yank"
    call(testapp, "POST", url, auth, json={"reason": "r"})
    for caller, status in DELETE.items():
        check(call(testapp, "DELETE", url, headers_of(caller, auth)), status)
        yanked = {
            f["yanked"] for f in testapp.get("/simple/foo-bar/", headers={"Accept": JSON_V1, **auth}).json["files"]
        }
        assert yanked == ({False} if status == 200 else {"r"}), caller


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("DELETE", f"/api/projects/nothing/files/{WHEEL}"),
        ("DELETE", "/api/projects/nothing/versions/1.0"),
        ("POST", "/api/projects/nothing/versions/1.0/yank"),
        ("DELETE", "/api/projects/nothing/versions/1.0/yank"),
    ],
)
def test_changing_an_unknown_project(shared: webtest.TestApp, method: str, url: str) -> None:
    for caller in CALLERS:
        status = {"anonymous": 401, "wrong": 401}.get(caller, 404)
        check(call(shared, method, url, headers_of(caller)), status)


def test_status_is_for_admins_only(testapp: webtest.TestApp, auth: dict[str, str], uploaded: Uploaded) -> None:
    for project in ("foo-bar", "nothing"):
        for caller in CALLERS[:-1]:
            status = {"anonymous": 401, "wrong": 401}.get(caller, 403)
            resp = call(
                testapp, "PUT", f"/api/projects/{project}/status", headers_of(caller, auth), json={"status": "archived"}
            )
            # The same answer whether the project exists or not: nothing to learn from it.
            check(resp, status)
    assert testapp.get("/api/projects/foo-bar", headers=auth).json["status"] == "active"
    check(call(testapp, "PUT", "/api/projects/foo-bar/status", auth, json={"status": "archived"}), 200)


def test_uploading_to_an_existing_project(
    testapp: webtest.TestApp, auth: dict[str, str], uploaded: Uploaded, dist_dir: Path
) -> None:
    path = build_wheel(dist_dir, "Foo.Bar", "2.0")
    table = {"anonymous": 401, "wrong": 401, "outsider": 403, "reader": 403, "member": 403, "writer": 200}
    for caller, status in table.items():
        check(upload_dist(testapp, headers_of(caller, auth), path, "Foo.Bar", "2.0"), status)
        listed = path.name in simple_filenames(testapp, "foo-bar", auth)
        assert listed is (status == 200), caller


def test_creating_a_project(testapp: webtest.TestApp, auth: dict[str, str], dist_dir: Path) -> None:
    path = build_wheel(dist_dir, "brand-new", "1.0")
    for caller in ("outsider", "reader", "writer", "deleter"):
        check(upload_dist(testapp, creds(caller), path, "brand-new", "1.0"), 403)
    check(upload_dist(testapp, auth, path, "brand-new", "1.0"), 200)


def test_group_grants(shared: webtest.TestApp) -> None:
    # group.everyone: even anonymous callers; group.authenticated: any valid login.
    for caller in CALLERS:
        public = shared.get("/simple/public/", headers=headers_of(caller), expect_errors=True)
        check(public, 401 if caller == "wrong" else 200)
        pypi = shared.get("/pypi/public/json", headers=headers_of(caller), expect_errors=True)
        check(pypi, 401 if caller == "wrong" else 200)
        other = shared.get("/simple/shared/", headers=headers_of(caller), expect_errors=True)
        check(other, {"anonymous": 401, "wrong": 401}.get(caller, 200))


@pytest.mark.parametrize(
    ("caller", "visible"),
    [
        ("outsider", ["public", "shared"]),
        ("reader", ["foo-bar", "public", "shared"]),
        ("member", ["foo-bar", "public", "shared"]),
        ("admin", ["aaa-hidden", "foo-bar", "public", "shared", "zzz-hidden"]),
    ],
)
def test_listing_shows_only_readable_projects(shared: webtest.TestApp, caller: str, visible: list[str]) -> None:
    doc = shared.get("/api/projects", headers=headers_of(caller)).json
    assert [p["name"] for p in doc["projects"]] == visible
    # The total must not count projects the caller may not see: it would reveal that they exist.
    assert doc["total"] == len(visible)


def test_listing_search_reveals_nothing(shared: webtest.TestApp) -> None:
    doc = shared.get("/api/projects", params={"q": "hidden"}, headers=creds("outsider")).json
    assert doc == {"projects": [], "page": 1, "per_page": 50, "total": 0}


def test_listing_pages_over_readable_projects(shared: webtest.TestApp) -> None:
    pages = [
        shared.get("/api/projects", params={"page": str(n), "per_page": "1"}, headers=creds("reader")).json
        for n in (1, 2, 3)
    ]
    # Page 1 must hold the first project the reader may see, not an empty page where a hidden one was.
    assert [[p["name"] for p in doc["projects"]] for doc in pages] == [["foo-bar"], ["public"], ["shared"]]


def test_anonymous_listing(shared: webtest.TestApp) -> None:
    resp = shared.get("/api/projects", expect_errors=True)
    if resp.status_int == 401:
        assert_error(resp, 401)
    else:
        assert [p["name"] for p in resp.json["projects"]] == ["public"]
        assert resp.json["total"] == 1


def test_listing_wrong_password(shared: webtest.TestApp) -> None:
    assert_error(shared.get("/api/projects", headers=creds("reader", "nope"), expect_errors=True), 401)


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("GET", "/api/users"),
        ("POST", "/api/users"),
        ("GET", "/api/groups"),
        ("PUT", "/api/groups/devs"),
        ("GET", "/api/projects/foo-bar/grants"),
        ("PUT", "/api/projects/foo-bar/grants/user/reader"),
        ("DELETE", "/api/projects/foo-bar/grants/user/reader"),
        ("GET", "/api/users/writer"),
        ("POST", "/admin/reload"),
        ("GET", "/admin/reload"),
    ],
)
def test_user_administration_is_for_admins(shared: webtest.TestApp, method: str, url: str) -> None:
    body = {"name": "x", "password": "y", "members": [], "perms": "r"} if method in ("POST", "PUT") else None
    for caller in ("anonymous", "wrong", "outsider", "deleter"):
        status = {"anonymous": 401, "wrong": 401}.get(caller, 403)
        check(call(shared, method, url, headers_of(caller), json=body), status)


@pytest.fixture
def creators(raw_settings: dict[str, Any]) -> dict[str, Any]:
    return {
        **raw_settings,
        "pypi.default_read": "everyone",
        "pypi.default_write": "authenticated",
        "pypi.create_projects": "user:creator",
    }


def test_create_projects_setting(creators: dict[str, Any], tmp_path: Path, auth: dict[str, str]) -> None:
    dist_dir = tmp_path / "dists"
    with running(creators) as testapp:
        upload_wheel(testapp, auth, dist_dir, "Loose", "1.0")
        # Anyone authenticated may add to an existing project nobody keeps (no grants in the ini)...
        upload_wheel(testapp, creds("outsider"), dist_dir, "Loose", "2.0")
        # ...but only pypi.create_projects (and admins) may start one.
        path = build_wheel(dist_dir, "fresh", "1.0")
        assert_error(upload_dist(testapp, creds("outsider"), path, "fresh", "1.0"), 403, "upload")
        assert testapp.get("/simple/fresh/", expect_errors=True).status_int == 404
        check(upload_dist(testapp, creds("creator"), path, "fresh", "1.0"), 200)
