"""Users, groups and per-project grants through the JSON API: SQL backend (managed) and static backend (read-only)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import webtest

from pypicloud_lite.web import SQL_PASSWORD_FILE
from tests.support.apiutil import (
    ADMIN,
    BOB,
    CAROL,
    PASSWORD,
    assert_error,
    call,
    creds,
    running,
    simple_filenames,
    static_users,
    upload_wheel,
)
from tests.support.common import UPLOADER, services

pytestmark = pytest.mark.usefixtures("cheap_hashing")


def seed(testapp: webtest.TestApp) -> webtest.TestApp:
    """An admin and bob, created directly in the access database."""
    access = services(testapp.app).access
    access.create_user(ADMIN, PASSWORD, is_admin=True)
    access.create_user(BOB, PASSWORD)
    return testapp


@pytest.fixture
def app(sql_raw: dict[str, Any]) -> Iterator[webtest.TestApp]:
    with running(sql_raw) as testapp:
        yield seed(testapp)


# -- the first admin -----------------------------------------------------------------


def test_bootstrap_admin_password_is_written_once(
    sql_raw: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Not a terminal: the password goes to an owner-only file in the current folder, not to stderr.
    monkeypatch.chdir(tmp_path)
    raw = {**sql_raw, "auth.bootstrap_admin": "true"}
    with running(raw) as testapp:
        banner = capsys.readouterr().err
        secret = tmp_path / SQL_PASSWORD_FILE
        assert f"is in {secret}" in banner, banner
        password = secret.read_text(encoding="utf-8").strip()
        assert password not in banner
        resp = testapp.get("/api/users", headers=creds("admin", password))
        assert resp.json == {"users": [{"name": "admin", "admin": True, "groups": []}], "read_only": False}
        assert_error(testapp.get("/api/users", headers=creds("admin", "guess"), expect_errors=True), 401)
    # A second start finds the admin and announces nothing.
    secret.unlink()
    with running(raw) as testapp:
        assert "created the admin user" not in capsys.readouterr().err
        assert not secret.exists()
        assert testapp.get("/api/users", headers=creds("admin", password)).status_int == 200


# -- users ---------------------------------------------------------------------------


def test_create_user(app: webtest.TestApp, admin: dict[str, str]) -> None:
    resp = call(app, "POST", "/api/users", admin, json={"name": CAROL, "password": "carol's secret"})
    assert resp.status_int == 201
    assert resp.headers["Location"] == f"http://localhost/api/users/{CAROL}"
    assert resp.json == {"name": CAROL, "admin": False, "groups": []}
    assert app.get(resp.headers["Location"], headers=creds(CAROL, "carol's secret")).json["name"] == CAROL
    assert_error(call(app, "GET", "/api/users", creds(CAROL, "carol's secret")), 403)


def test_create_admin_user(app: webtest.TestApp, admin: dict[str, str]) -> None:
    resp = call(app, "POST", "/api/users", admin, json={"name": CAROL, "password": PASSWORD, "admin": True})
    assert resp.json["admin"] is True
    assert CAROL in [u["name"] for u in app.get("/api/users", headers=creds(CAROL)).json["users"]]


def test_duplicate_user(app: webtest.TestApp, admin: dict[str, str]) -> None:
    assert_error(call(app, "POST", "/api/users", admin, json={"name": BOB, "password": "other password"}), 409, BOB)
    # Bob's password is unchanged.
    assert app.get("/api/users/bob", headers=creds(BOB)).status_int == 200


@pytest.mark.parametrize(
    "body",
    [
        b'{"name": "bad name", "password": "x"}',
        b'{"name": "__token__", "password": "x"}',
        b'{"name": "", "password": "x"}',
        b'{"name": "-dash", "password": "x"}',
        b'{"name": "carol"}',
        b'{"password": "x"}',
        b'{"name": "carol", "password": ""}',
        b'{"name": "carol", "password": 5}',
        b'{"name": 5, "password": "x"}',
        b'{"name": "carol", "password": "x", "admin": "yes"}',
        b"not json",
        b'["carol", "x"]',
        b"",
    ],
)
def test_create_user_invalid(app: webtest.TestApp, admin: dict[str, str], body: bytes) -> None:
    assert_error(call(app, "POST", "/api/users", admin, body=body), 400)
    assert [u["name"] for u in app.get("/api/users", headers=admin).json["users"]] == [ADMIN, BOB]


def test_list_users(app: webtest.TestApp, admin: dict[str, str]) -> None:
    call(app, "PUT", "/api/groups/devs", admin, json={"members": [BOB]})
    assert app.get("/api/users", headers=admin).json == {
        "users": [
            {"name": ADMIN, "admin": True, "groups": []},
            {"name": BOB, "admin": False, "groups": ["devs"]},
        ],
        "read_only": False,
    }


@pytest.mark.parametrize(("method", "url"), [("GET", "/api/users"), ("POST", "/api/users")])
def test_users_need_an_admin(app: webtest.TestApp, bob: dict[str, str], method: str, url: str) -> None:
    body = {"name": CAROL, "password": PASSWORD} if method == "POST" else None
    assert_error(call(app, method, url, json=body), 401)
    assert_error(call(app, method, url, creds(ADMIN, "wrong"), json=body), 401)
    assert_error(call(app, method, url, bob, json=body), 403, "admin")
    assert services(app.app).access.get_user(CAROL) is None


def test_get_user(app: webtest.TestApp, admin: dict[str, str], bob: dict[str, str]) -> None:
    assert app.get("/api/users/bob", headers=bob).json == {"name": BOB, "admin": False, "groups": []}
    assert app.get("/api/users/bob", headers=admin).json == {"name": BOB, "admin": False, "groups": []}
    assert app.get("/api/users/admin", headers=admin).json["admin"] is True
    assert_error(call(app, "GET", "/api/users/admin", bob), 403)
    assert_error(call(app, "GET", "/api/users/ghost", bob), 403)
    assert_error(call(app, "GET", "/api/users/ghost", admin), 404, "ghost")
    assert_error(call(app, "GET", "/api/users/bob"), 401)
    assert_error(call(app, "GET", "/api/users/bob", creds(BOB, "wrong")), 401)


def test_change_own_password(app: webtest.TestApp, bob: dict[str, str]) -> None:
    # Logged in just now: the verified-credential cache must not keep the old password alive.
    assert app.get("/api/users/bob", headers=bob).status_int == 200
    resp = call(app, "PUT", "/api/users/bob", bob, json={"password": "brand new"})
    assert resp.status_int == 200
    assert resp.json == {"name": BOB, "admin": False, "groups": []}
    assert_error(call(app, "GET", "/api/users/bob", bob), 401)
    assert app.get("/api/users/bob", headers=creds(BOB, "brand new")).status_int == 200


def test_admin_resets_a_password(app: webtest.TestApp, admin: dict[str, str], bob: dict[str, str]) -> None:
    assert app.get("/api/users/bob", headers=bob).status_int == 200
    assert call(app, "PUT", "/api/users/bob", admin, json={"password": "reset password"}).status_int == 200
    assert_error(call(app, "GET", "/api/users/bob", bob), 401)
    assert app.get("/api/users/bob", headers=creds(BOB, "reset password")).status_int == 200


def test_user_cannot_change_others(app: webtest.TestApp, admin: dict[str, str], bob: dict[str, str]) -> None:
    assert_error(call(app, "PUT", "/api/users/admin", bob, json={"password": "mine now"}), 403)
    assert app.get("/api/users", headers=admin).status_int == 200
    assert_error(call(app, "PUT", "/api/users/bob", json={"password": "x"}), 401)


def test_user_cannot_make_itself_admin(app: webtest.TestApp, bob: dict[str, str]) -> None:
    assert_error(call(app, "PUT", "/api/users/bob", bob, json={"admin": True}), 403, "admin")
    assert app.get("/api/users/bob", headers=bob).json["admin"] is False


def test_admin_makes_and_unmakes_admins(app: webtest.TestApp, admin: dict[str, str], bob: dict[str, str]) -> None:
    assert call(app, "PUT", "/api/users/bob", admin, json={"admin": True}).json["admin"] is True
    assert app.get("/api/users", headers=bob).status_int == 200
    # Bob's password still works: only the flag changed.
    assert call(app, "PUT", "/api/users/bob", admin, json={"admin": False}).json["admin"] is False
    assert_error(call(app, "GET", "/api/users", bob), 403)


@pytest.mark.parametrize(
    "body",
    [b'{"password": 5}', b'{"admin": "yes"}', b'{"admin": "false"}', b"not json", b"[]"],
)
def test_update_user_invalid(app: webtest.TestApp, admin: dict[str, str], body: bytes) -> None:
    assert_error(call(app, "PUT", "/api/users/bob", admin, body=body), 400)
    assert app.get("/api/users/bob", headers=creds(BOB)).json["admin"] is False


def test_update_unknown_user(app: webtest.TestApp, admin: dict[str, str]) -> None:
    assert_error(call(app, "PUT", "/api/users/ghost", admin, json={"password": "ghost password"}), 404, "ghost")


def test_delete_user(app: webtest.TestApp, admin: dict[str, str], bob: dict[str, str]) -> None:
    call(app, "PUT", "/api/groups/devs", admin, json={"members": [BOB, ADMIN]})
    call(app, "PUT", "/api/projects/foo-bar/grants/user/bob", admin, json={"perms": "rw"})
    token = call(app, "POST", "/api/tokens", admin, json={"user": BOB}).json["token"]
    assert app.get("/api/users/bob", headers=bob).status_int == 200

    resp = call(app, "DELETE", "/api/users/bob", admin)
    assert resp.status_int == 200
    assert resp.json == {"deleted": True}
    assert_error(call(app, "GET", "/api/users/bob", bob), 401)
    assert_error(call(app, "GET", "/api/users/bob", creds("__token__", token)), 401)
    assert_error(call(app, "GET", "/api/users/bob", admin), 404)
    assert [u["name"] for u in app.get("/api/users", headers=admin).json["users"]] == [ADMIN]
    assert app.get("/api/groups", headers=admin).json == {"groups": [{"name": "devs", "members": [ADMIN]}]}
    assert app.get("/api/projects/foo-bar/grants", headers=admin).json == {"grants": []}
    assert app.get("/api/tokens", params={"all": "1"}, headers=admin).json == {"tokens": []}
    assert_error(call(app, "DELETE", "/api/users/bob", admin), 404)


def test_delete_user_rules(app: webtest.TestApp, admin: dict[str, str], bob: dict[str, str]) -> None:
    assert_error(call(app, "DELETE", "/api/users/admin", admin), 400, "themselves")
    assert_error(call(app, "DELETE", "/api/users/admin", bob), 403)
    assert_error(call(app, "DELETE", "/api/users/bob", bob), 403)
    assert_error(call(app, "DELETE", "/api/users/bob"), 401)
    assert_error(call(app, "DELETE", "/api/users/bob", creds(ADMIN, "wrong")), 401)
    assert [u["name"] for u in app.get("/api/users", headers=admin).json["users"]] == [ADMIN, BOB]


# -- groups --------------------------------------------------------------------------


def test_groups(app: webtest.TestApp, admin: dict[str, str], bob: dict[str, str]) -> None:
    assert app.get("/api/groups", headers=admin).json == {"groups": []}
    resp = call(app, "PUT", "/api/groups/devs", admin, json={"members": [BOB, ADMIN, BOB]})
    assert resp.status_int == 200
    assert resp.json == {"name": "devs", "members": [ADMIN, BOB]}
    call(app, "PUT", "/api/groups/ops", admin, json={"members": []})
    assert app.get("/api/groups", headers=admin).json == {
        "groups": [{"name": "devs", "members": [ADMIN, BOB]}, {"name": "ops", "members": []}]
    }
    assert app.get("/api/users/bob", headers=bob).json["groups"] == ["devs"]
    # PUT replaces the member list.
    assert call(app, "PUT", "/api/groups/devs", admin, json={"members": [ADMIN]}).json["members"] == [ADMIN]
    assert app.get("/api/users/bob", headers=bob).json["groups"] == []
    assert call(app, "DELETE", "/api/groups/devs", admin).json == {"deleted": True}
    assert app.get("/api/groups", headers=admin).json == {"groups": [{"name": "ops", "members": []}]}
    assert_error(call(app, "DELETE", "/api/groups/devs", admin), 404, "devs")


@pytest.mark.parametrize(
    ("name", "body", "message"),
    [
        ("devs", b'{"members": ["bob", "ghost"]}', "ghost"),
        ("devs", b'{"members": "bob"}', "members"),
        ("devs", b'{"members": [1]}', "members"),
        ("devs", b"not json", "JSON"),
        ("everyone", b'{"members": ["bob"]}', "built-in"),
        ("authenticated", b'{"members": []}', "built-in"),
        ("bad%20name", b'{"members": []}', "name"),
    ],
)
def test_group_invalid(app: webtest.TestApp, admin: dict[str, str], name: str, body: bytes, message: str) -> None:
    assert_error(call(app, "PUT", f"/api/groups/{name}", admin, body=body), 400, message)
    assert app.get("/api/groups", headers=admin).json == {"groups": []}


@pytest.mark.parametrize(
    ("method", "url"), [("GET", "/api/groups"), ("PUT", "/api/groups/devs"), ("DELETE", "/api/groups/devs")]
)
def test_groups_need_an_admin(
    app: webtest.TestApp, admin: dict[str, str], bob: dict[str, str], method: str, url: str
) -> None:
    call(app, "PUT", "/api/groups/devs", admin, json={"members": [ADMIN]})
    body = {"members": [BOB]} if method == "PUT" else None
    assert_error(call(app, method, url, json=body), 401)
    assert_error(call(app, method, url, creds(BOB, "wrong"), json=body), 401)
    assert_error(call(app, method, url, bob, json=body), 403)
    assert app.get("/api/groups", headers=admin).json == {"groups": [{"name": "devs", "members": [ADMIN]}]}


# -- grants --------------------------------------------------------------------------


def test_grants(app: webtest.TestApp, admin: dict[str, str]) -> None:
    assert app.get("/api/projects/foo-bar/grants", headers=admin).json == {"grants": []}
    resp = call(app, "PUT", "/api/projects/Foo.Bar/grants/user/bob", admin, json={"perms": "wR"})
    assert resp.status_int == 200
    assert resp.json == {"project": "foo-bar", "kind": "user", "name": BOB, "perms": "rw"}
    call(app, "PUT", "/api/groups/devs", admin, json={"members": [BOB]})
    call(app, "PUT", "/api/projects/foo-bar/grants/group/devs", admin, json={"perms": "drw"})
    call(app, "PUT", "/api/projects/other/grants/group/everyone", admin, json={"perms": "r"})
    assert app.get("/api/projects/FOO_BAR/grants", headers=admin).json == {
        "grants": [
            {"project": "foo-bar", "kind": "group", "name": "devs", "perms": "rwd"},
            {"project": "foo-bar", "kind": "user", "name": BOB, "perms": "rw"},
        ]
    }
    # PUT replaces the permissions.
    assert call(app, "PUT", "/api/projects/foo-bar/grants/user/bob", admin, json={"perms": "r"}).json["perms"] == "r"
    assert call(app, "DELETE", "/api/projects/foo-bar/grants/user/bob", admin).json == {"deleted": True}
    assert app.get("/api/projects/foo-bar/grants", headers=admin).json["grants"] == [
        {"project": "foo-bar", "kind": "group", "name": "devs", "perms": "rwd"}
    ]
    assert_error(call(app, "DELETE", "/api/projects/foo-bar/grants/user/bob", admin), 404)
    # Deleting a group takes its grants along.
    call(app, "DELETE", "/api/groups/devs", admin)
    assert app.get("/api/projects/foo-bar/grants", headers=admin).json == {"grants": []}
    assert len(app.get("/api/projects/other/grants", headers=admin).json["grants"]) == 1


@pytest.mark.parametrize(
    ("url", "body", "status"),
    [
        ("/api/projects/foo-bar/grants/user/bob", b'{"perms": "x"}', 400),
        ("/api/projects/foo-bar/grants/user/bob", b'{"perms": "rwx"}', 400),
        ("/api/projects/foo-bar/grants/user/bob", b'{"perms": ""}', 400),
        ("/api/projects/foo-bar/grants/user/bob", b'{"perms": 5}', 400),
        ("/api/projects/foo-bar/grants/user/bob", b'{"perms": ["r"]}', 400),
        ("/api/projects/foo-bar/grants/user/bob", b"{}", 400),
        ("/api/projects/foo-bar/grants/user/bob", b"not json", 400),
        ("/api/projects/foo-bar/grants/team/bob", b'{"perms": "r"}', 400),
        ("/api/projects/foo-bar/grants/user/ghost", b'{"perms": "r"}', 404),
        ("/api/projects/foo-bar/grants/group/ghosts", b'{"perms": "r"}', 404),
    ],
)
def test_grant_invalid(app: webtest.TestApp, admin: dict[str, str], url: str, body: bytes, status: int) -> None:
    assert_error(call(app, "PUT", url, admin, body=body), status)
    assert app.get("/api/projects/foo-bar/grants", headers=admin).json == {"grants": []}


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("GET", "/api/projects/foo-bar/grants"),
        ("PUT", "/api/projects/foo-bar/grants/user/bob"),
        ("DELETE", "/api/projects/foo-bar/grants/user/bob"),
    ],
)
def test_grants_need_an_admin(
    app: webtest.TestApp, admin: dict[str, str], bob: dict[str, str], method: str, url: str
) -> None:
    call(app, "PUT", "/api/projects/foo-bar/grants/user/bob", admin, json={"perms": "r"})
    body = {"perms": "rwd"} if method == "PUT" else None
    assert_error(call(app, method, url, json=body), 401)
    assert_error(call(app, method, url, creds(BOB, "wrong"), json=body), 401)
    assert_error(call(app, method, url, bob, json=body), 403)
    assert app.get("/api/projects/foo-bar/grants", headers=admin).json["grants"][0]["perms"] == "r"


def test_write_grant_lets_bob_upload(
    app: webtest.TestApp, admin: dict[str, str], bob: dict[str, str], dist_dir: Path
) -> None:
    upload_wheel(app, admin, dist_dir, "Foo.Bar", "1.0")
    upload_wheel(app, bob, dist_dir, "Foo.Bar", "2.0", status=403)
    call(app, "PUT", "/api/projects/foo-bar/grants/user/bob", admin, json={"perms": "w"})
    two = upload_wheel(app, bob, dist_dir, "Foo.Bar", "2.0")
    assert two.name in simple_filenames(app, "foo-bar")
    assert app.get("/api/projects/foo-bar").json["versions"][0]["files"][0]["uploader"] == BOB
    # A grant on one project is not a grant on others.
    upload_wheel(app, admin, dist_dir, "other", "1.0")
    upload_wheel(app, bob, dist_dir, "other", "2.0", status=403)
    upload_wheel(app, bob, dist_dir, "fresh", "1.0", status=403)
    # Taking the grant back takes effect at once.
    call(app, "DELETE", "/api/projects/foo-bar/grants/user/bob", admin)
    upload_wheel(app, bob, dist_dir, "Foo.Bar", "3.0", status=403)


def test_group_grant_lets_members_upload(
    app: webtest.TestApp, admin: dict[str, str], bob: dict[str, str], dist_dir: Path
) -> None:
    upload_wheel(app, admin, dist_dir, "Foo.Bar", "1.0")
    call(app, "PUT", "/api/groups/devs", admin, json={"members": [BOB]})
    call(app, "PUT", "/api/projects/foo-bar/grants/group/devs", admin, json={"perms": "rw"})
    upload_wheel(app, bob, dist_dir, "Foo.Bar", "2.0")
    call(app, "PUT", "/api/groups/devs", admin, json={"members": []})
    upload_wheel(app, bob, dist_dir, "Foo.Bar", "3.0", status=403)


def test_delete_grant_lets_bob_delete(
    app: webtest.TestApp, admin: dict[str, str], bob: dict[str, str], dist_dir: Path
) -> None:
    wheel = upload_wheel(app, admin, dist_dir, "Foo.Bar", "1.0").name
    url = f"/api/projects/foo-bar/files/{wheel}"
    assert_error(call(app, "DELETE", url, bob), 403)
    assert_error(call(app, "POST", "/api/projects/foo-bar/versions/1.0/yank", bob), 403)
    call(app, "PUT", "/api/projects/foo-bar/grants/user/bob", admin, json={"perms": "d"})
    assert call(app, "POST", "/api/projects/foo-bar/versions/1.0/yank", bob).status_int == 200
    assert call(app, "DELETE", url, bob).status_int == 200
    # Its last file gone, the project is unknown again.
    assert app.get("/simple/foo-bar/", expect_errors=True).status_int == 404


def test_read_grant_in_a_private_index(sql_raw: dict[str, Any], dist_dir: Path) -> None:
    with running({**sql_raw, "pypi.default_read": ""}) as app:
        seed(app)
        admin, bob = creds(ADMIN), creds(BOB)
        wheel = upload_wheel(app, admin, dist_dir, "Foo.Bar", "1.0").name
        for url in ("/simple/foo-bar/", f"/packages/foo-bar/{wheel}", "/pypi/foo-bar/json", "/api/projects/foo-bar"):
            assert_error(call(app, "GET", url, bob), 404)
        assert app.get("/api/projects", headers=bob).json["projects"] == []
        call(app, "PUT", "/api/projects/foo-bar/grants/user/bob", admin, json={"perms": "r"})
        for url in ("/simple/foo-bar/", f"/packages/foo-bar/{wheel}", "/pypi/foo-bar/json", "/api/projects/foo-bar"):
            assert call(app, "GET", url, bob).status_int == 200
        assert [p["name"] for p in app.get("/api/projects", headers=bob).json["projects"]] == ["foo-bar"]
        # Read is not write.
        upload_wheel(app, bob, dist_dir, "Foo.Bar", "2.0", status=403)
        # group.everyone opens a project to anonymous callers.
        assert_error(call(app, "GET", "/simple/foo-bar/"), 401)
        call(app, "PUT", "/api/projects/foo-bar/grants/group/everyone", admin, json={"perms": "r"})
        assert app.get("/simple/foo-bar/").status_int == 200


# -- the static backend: read-only at run time -----------------------------------------


@pytest.fixture
def static_app(raw_settings: dict[str, Any]) -> Iterator[webtest.TestApp]:
    raw = {
        **raw_settings,
        **static_users(BOB),
        "group.devs": f"{BOB} {UPLOADER}",
        "package.Foo.Bar.user.bob": "rw",
    }
    with running(raw) as testapp:
        yield testapp


@pytest.mark.parametrize(
    ("method", "url", "body"),
    [
        ("POST", "/api/users", {"name": CAROL, "password": PASSWORD}),
        ("PUT", "/api/users/bob", {"password": "new"}),
        ("PUT", "/api/users/bob", {"admin": True}),
        ("DELETE", "/api/users/bob", None),
        ("PUT", "/api/groups/devs", {"members": [BOB]}),
        ("PUT", "/api/groups/ops", {"members": []}),
        ("DELETE", "/api/groups/devs", None),
        ("PUT", "/api/projects/foo-bar/grants/user/bob", {"perms": "rwd"}),
        ("DELETE", "/api/projects/foo-bar/grants/user/bob", None),
        ("POST", "/api/tokens", {}),
    ],
)
def test_static_backend_refuses_changes(
    static_app: webtest.TestApp, auth: dict[str, str], method: str, url: str, body: dict[str, Any] | None
) -> None:
    before = [
        static_app.get(u, headers=auth).json for u in ("/api/users", "/api/groups", "/api/projects/foo-bar/grants")
    ]
    message = assert_error(call(static_app, method, url, auth, json=body), 409, "config file")
    assert "cannot be changed" in message
    after = [
        static_app.get(u, headers=auth).json for u in ("/api/users", "/api/groups", "/api/projects/foo-bar/grants")
    ]
    assert after == before


def test_static_backend_refuses_a_password_change_by_its_user(static_app: webtest.TestApp) -> None:
    assert_error(call(static_app, "PUT", "/api/users/bob", creds(BOB), json={"password": "new"}), 409, "config file")
    assert static_app.get("/api/users/bob", headers=creds(BOB)).status_int == 200


def test_static_backend_reads(static_app: webtest.TestApp, auth: dict[str, str]) -> None:
    assert static_app.get("/api/users", headers=auth).json == {
        "users": [
            {"name": BOB, "admin": False, "groups": ["devs"]},
            {"name": UPLOADER, "admin": True, "groups": ["devs"]},
        ],
        "read_only": True,
    }
    assert static_app.get("/api/groups", headers=auth).json == {
        "groups": [{"name": "devs", "members": [BOB, UPLOADER]}]
    }
    assert static_app.get("/api/projects/foo-bar/grants", headers=auth).json == {
        "grants": [{"project": "foo-bar", "kind": "user", "name": BOB, "perms": "rw"}]
    }
    assert static_app.get("/api/users/bob", headers=creds(BOB)).json == {
        "name": BOB,
        "admin": False,
        "groups": ["devs"],
    }
    assert static_app.get("/api/tokens", headers=auth).json == {"tokens": []}
    # There are no tokens to revoke.
    assert_error(call(static_app, "DELETE", "/api/tokens/0123456789abcdef", auth), 404)
