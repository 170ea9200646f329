"""API tokens (SQL backend): shown once, scoped, expiring, revocable; and the failed-login limiter."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import webtest

from pypicloud_lite.access.base import MAINTAINER_PERMS
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
    sql_settings,
    static_users,
    token_auth,
    upload_wheel,
)
from tests.support.common import services
from tests.support.distbuilder import build_wheel
from tests.support.legacy import JSON_V1, upload_dist

TOKEN = re.compile(r"^ppc_([0-9a-f]{16})_[0-9a-f]{48}$")


pytestmark = pytest.mark.usefixtures("cheap_hashing")


@pytest.fixture
def app(raw_settings: dict[str, Any]) -> Iterator[webtest.TestApp]:
    with running(sql_settings(raw_settings)) as testapp:
        access = services(testapp.app).access
        access.create_user(ADMIN, PASSWORD, is_admin=True)
        for name in (BOB, CAROL):
            access.create_user(name, PASSWORD)
        yield testapp


def new_token(testapp: webtest.TestApp, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    resp = call(testapp, "POST", "/api/tokens", headers, json=body)
    assert resp.status_int == 201, resp.body
    created: dict[str, Any] = resp.json
    return created


@pytest.fixture
def projects(app: webtest.TestApp, admin: dict[str, str], dist_dir: Path) -> None:
    """Two projects the admin owns (first uploader), with bob as their maintainer."""
    upload_wheel(app, admin, dist_dir, "Foo.Bar", "1.0")
    upload_wheel(app, admin, dist_dir, "other", "1.0")
    for project in ("foo-bar", "other"):
        services(app.app).access.set_grant(project, "user", BOB, MAINTAINER_PERMS)


# -- creating and listing -------------------------------------------------------------


def test_create_token(app: webtest.TestApp, bob: dict[str, str]) -> None:
    resp = call(app, "POST", "/api/tokens", bob, json={"description": "CI"})
    assert resp.status_int == 201
    assert "no-store" in resp.headers["Cache-Control"]
    body = resp.json
    match = TOKEN.match(body.pop("token"))
    assert match, resp.body
    created = body.pop("created")
    assert created.endswith("Z")
    assert body == {
        "id": match.group(1),
        "user": BOB,
        "description": "CI",
        "projects": None,
        "read_only": False,
        "expires": None,
        "publisher": None,
        "last_used": None,
    }
    listed = app.get("/api/tokens", headers=bob)
    assert listed.json == {"tokens": [{**body, "created": created}]}


def test_secret_is_shown_only_once(app: webtest.TestApp, bob: dict[str, str], admin: dict[str, str]) -> None:
    created = new_token(app, bob)
    secret = created["token"].rsplit("_", 1)[1]
    for headers, params in ((bob, {}), (admin, {"all": "1"})):
        resp = app.get("/api/tokens", params=params, headers=headers)
        assert "token" not in resp.json["tokens"][0]
        assert secret not in resp.text
    assert secret not in app.get("/api/users/bob", headers=bob).text


def test_token_authenticates_as_its_user(
    app: webtest.TestApp, bob: dict[str, str], projects: None, dist_dir: Path
) -> None:
    headers = token_auth(new_token(app, bob)["token"])
    assert app.get("/api/users/bob", headers=headers).json["name"] == BOB
    assert_error(call(app, "GET", "/api/users", headers), 403)
    wheel = upload_wheel(app, headers, dist_dir, "Foo.Bar", "2.0")
    assert wheel.name in simple_filenames(app, "foo-bar")
    versions = app.get("/api/projects/foo-bar").json["versions"]
    assert versions[0]["files"][0]["uploader"] == BOB


def test_read_only_token(app: webtest.TestApp, bob: dict[str, str], projects: None, dist_dir: Path) -> None:
    headers = token_auth(new_token(app, bob, read_only=True)["token"])
    assert app.get("/simple/", headers=headers).status_int == 200
    assert app.get("/simple/foo-bar/", headers={"Accept": JSON_V1, **headers}).status_int == 200
    assert app.get("/packages/foo-bar/foo_bar-1.0-py3-none-any.whl", headers=headers).status_int == 200
    assert app.get("/pypi/foo-bar/json", headers=headers).status_int == 200
    upload_wheel(app, headers, dist_dir, "Foo.Bar", "2.0", status=403)
    upload_wheel(app, headers, dist_dir, "fresh", "1.0", status=403)
    assert simple_filenames(app, "foo-bar") == ["foo_bar-1.0-py3-none-any.whl"]


def test_read_only_admin_token_cannot_administer(app: webtest.TestApp, admin: dict[str, str], projects: None) -> None:
    headers = token_auth(new_token(app, admin, read_only=True)["token"])
    assert app.get("/simple/other/", headers=headers).status_int == 200
    assert_error(call(app, "POST", "/api/users", headers, json={"name": "eve", "password": "x"}), 403)
    assert_error(call(app, "PUT", "/api/projects/foo-bar/status", headers, json={"status": "archived"}), 403)
    assert_error(call(app, "POST", "/api/projects/foo-bar/versions/1.0/yank", headers), 403)
    assert_error(call(app, "DELETE", "/api/projects/foo-bar/versions/1.0", headers), 403)


@pytest.mark.parametrize(
    "body",
    [{"password": "taken over"}, {"admin": True}],
)
def test_admin_token_cannot_change_users(
    app: webtest.TestApp, admin: dict[str, str], bob: dict[str, str], body: dict[str, Any]
) -> None:
    # A leaked read-only CI token of an admin must not reset passwords or hand out admin rights:
    # tokens may not change passwords, and read-only tokens change nothing.
    headers = token_auth(new_token(app, admin, read_only=True)["token"])
    assert_error(call(app, "PUT", "/api/users/bob", headers, json=body), 403)
    assert app.get("/api/users/bob", headers=bob).json["admin"] is False


def test_project_token(app: webtest.TestApp, bob: dict[str, str], projects: None, dist_dir: Path) -> None:
    created = new_token(app, bob, projects=["Foo.Bar"])
    assert created["projects"] == ["foo-bar"]
    headers = token_auth(created["token"])
    upload_wheel(app, headers, dist_dir, "Foo.Bar", "2.0")
    # Elsewhere the token is refused, even though bob himself may upload there...
    upload_wheel(app, headers, dist_dir, "other", "2.0", status=403)
    upload_wheel(app, headers, dist_dir, "fresh", "1.0", status=403)
    upload_wheel(app, bob, dist_dir, "other", "3.0")
    # ...and may not even read it: 404, as for a project that does not exist.
    assert_error(call(app, "GET", "/simple/other/", headers), 404)
    assert_error(call(app, "GET", "/pypi/other/json", headers), 404)
    assert [p["name"] for p in app.get("/api/projects", headers=headers).json["projects"]] == ["foo-bar"]
    assert app.get("/simple/fresh/", expect_errors=True).status_int == 404


def test_project_token_of_an_admin_stays_in_its_project(
    app: webtest.TestApp, admin: dict[str, str], projects: None
) -> None:
    headers = token_auth(new_token(app, admin, projects=["foo-bar"])["token"])
    assert call(app, "POST", "/api/projects/foo-bar/versions/1.0/yank", headers).status_int == 200
    assert_error(call(app, "POST", "/api/projects/other/versions/1.0/yank", headers), 404)
    # A token for foo-bar must not change another project's status...
    assert_error(call(app, "PUT", "/api/projects/other/status", headers, json={"status": "quarantined"}), 403)
    assert app.get("/api/projects/other", headers=admin).json["status"] == "active"


def test_project_token_of_an_admin_cannot_create_users(app: webtest.TestApp, admin: dict[str, str]) -> None:
    headers = token_auth(new_token(app, admin, projects=["foo-bar"])["token"])
    # ...nor mint a full admin login for itself.
    resp = call(app, "POST", "/api/users", headers, json={"name": "eve", "password": "x", "admin": True})
    assert_error(resp, 403)
    assert services(app.app).access.get_user("eve") is None


def test_empty_project_list_does_not_mean_every_project(
    app: webtest.TestApp, bob: dict[str, str], projects: None, dist_dir: Path
) -> None:
    resp = call(app, "POST", "/api/tokens", bob, json={"projects": []})
    if resp.status_int == 400:
        return
    assert resp.status_int == 201
    # A token for no project must not silently become a token for all of them.
    assert resp.json["projects"] == [], resp.json
    upload_wheel(app, token_auth(resp.json["token"]), dist_dir, "Foo.Bar", "2.0", status=403)


def test_expiry(app: webtest.TestApp, bob: dict[str, str]) -> None:
    past = new_token(app, bob, expires="2000-01-01T00:00:00Z")
    assert past["expires"] == "2000-01-01T00:00:00Z"
    assert_error(call(app, "GET", "/api/users/bob", token_auth(past["token"])), 401)
    future = new_token(app, bob, expires="2999-01-01T00:00:00+00:00")
    assert future["expires"] == "2999-01-01T00:00:00Z"
    assert app.get("/api/users/bob", headers=token_auth(future["token"])).status_int == 200
    # Without a zone the time is UTC.
    naive = new_token(app, bob, expires="2999-06-01T12:00:00")
    assert naive["expires"] == "2999-06-01T12:00:00Z"
    other_zone = new_token(app, bob, expires="2999-06-01T12:00:00+02:00")
    assert other_zone["expires"] == "2999-06-01T10:00:00Z"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"expires": "tomorrow"}', "expires"),
        (b'{"expires": 5}', "expires"),
        (b'{"projects": "foo-bar"}', "projects"),
        (b'{"projects": [1]}', "projects"),
        (b'{"projects": [""]}', "projects"),
        (b'{"read_only": "false"}', "read_only"),
        (b"not json", "JSON"),
        (b"[]", "object"),
    ],
)
def test_create_token_invalid(app: webtest.TestApp, bob: dict[str, str], body: bytes, message: str) -> None:
    assert_error(call(app, "POST", "/api/tokens", bob, body=body), 400, message)
    assert app.get("/api/tokens", headers=bob).json == {"tokens": []}


def test_tokens_need_a_password_login(app: webtest.TestApp, bob: dict[str, str]) -> None:
    assert_error(call(app, "POST", "/api/tokens", json={}), 401)
    assert_error(call(app, "GET", "/api/tokens"), 401)
    assert_error(call(app, "POST", "/api/tokens", creds(BOB, "wrong"), json={}), 401)
    created = new_token(app, bob)
    headers = token_auth(created["token"])
    # A token cannot mint, list or revoke tokens.
    assert_error(call(app, "POST", "/api/tokens", headers, json={}), 403, "password")
    assert_error(call(app, "GET", "/api/tokens", headers), 403)
    assert_error(call(app, "DELETE", f"/api/tokens/{created['id']}", headers), 403)
    assert len(app.get("/api/tokens", headers=bob).json["tokens"]) == 1


@pytest.mark.parametrize(
    "secret",
    [
        "ppc_0123456789abcdef_" + "0" * 48,
        "garbage",
        "",
        "ppc_0123456789ABCDEF_" + "0" * 48,
    ],
)
def test_wrong_tokens(app: webtest.TestApp, bob: dict[str, str], secret: str) -> None:
    assert_error(call(app, "GET", "/api/users/bob", token_auth(secret)), 401)


def test_wrong_secret_for_a_real_token(app: webtest.TestApp, bob: dict[str, str]) -> None:
    token = new_token(app, bob)["token"]
    forged = token[: -len("0" * 48)] + ("1" * 48 if not token.endswith("1" * 48) else "2" * 48)
    assert_error(call(app, "GET", "/api/users/bob", token_auth(forged)), 401)


# -- revoking ----------------------------------------------------------------------------


def test_revoke(app: webtest.TestApp, bob: dict[str, str]) -> None:
    created = new_token(app, bob)
    kept = new_token(app, bob, description="kept")
    headers = token_auth(created["token"])
    assert app.get("/api/users/bob", headers=headers).status_int == 200
    resp = call(app, "DELETE", f"/api/tokens/{created['id']}", bob)
    assert resp.status_int == 200
    assert resp.json == {"revoked": created["id"]}
    # At once, though the token was just used.
    assert_error(call(app, "GET", "/api/users/bob", headers), 401)
    assert [t["id"] for t in app.get("/api/tokens", headers=bob).json["tokens"]] == [kept["id"]]
    assert app.get("/api/users/bob", headers=token_auth(kept["token"])).status_int == 200
    assert_error(call(app, "DELETE", f"/api/tokens/{created['id']}", bob), 404)


def test_users_see_and_revoke_only_their_own_tokens(
    app: webtest.TestApp, admin: dict[str, str], bob: dict[str, str]
) -> None:
    carols = new_token(app, creds(CAROL))
    bobs = new_token(app, bob)
    assert [t["id"] for t in app.get("/api/tokens", headers=bob).json["tokens"]] == [bobs["id"]]
    # Asking for more is refused, not quietly answered with one's own.
    assert_error(call(app, "GET", "/api/tokens?all=1", bob), 403, "Only admins may list other users' tokens.")
    assert_error(call(app, "GET", f"/api/tokens?user={CAROL}", bob), 403, "Only admins")
    assert [t["id"] for t in app.get("/api/tokens", params={"user": BOB}, headers=bob).json["tokens"]] == [bobs["id"]]
    # Someone else's token is as unknown as a token that does not exist.
    assert_error(call(app, "DELETE", f"/api/tokens/{carols['id']}", bob), 404)
    assert app.get("/api/users/carol", headers=token_auth(carols["token"])).status_int == 200
    # An admin sees everyone's with ?all=1 and may revoke any.
    assert app.get("/api/tokens", headers=admin).json == {"tokens": []}
    everyone = app.get("/api/tokens", params={"all": "true"}, headers=admin).json["tokens"]
    assert {t["id"]: t["user"] for t in everyone} == {carols["id"]: CAROL, bobs["id"]: BOB}
    # ...or one user's with ?user=NAME.
    assert [t["id"] for t in app.get("/api/tokens", params={"user": CAROL}, headers=admin).json["tokens"]] == [
        carols["id"]
    ]
    assert call(app, "DELETE", f"/api/tokens/{carols['id']}", admin).json == {"revoked": carols["id"]}
    assert_error(call(app, "GET", "/api/users/carol", token_auth(carols["token"])), 401)


def test_admin_creates_a_token_for_another_user(
    app: webtest.TestApp, admin: dict[str, str], bob: dict[str, str]
) -> None:
    created = new_token(app, admin, user=BOB, description="for bob")
    assert created["user"] == BOB
    headers = token_auth(created["token"])
    assert app.get("/api/users/bob", headers=headers).json["name"] == BOB
    # It has bob's rights, not the admin's.
    assert_error(call(app, "GET", "/api/users", headers), 403)
    assert [t["id"] for t in app.get("/api/tokens", headers=bob).json["tokens"]] == [created["id"]]
    assert_error(call(app, "POST", "/api/tokens", admin, json={"user": "ghost"}), 404, "ghost")


def test_user_cannot_create_a_token_for_another(app: webtest.TestApp, bob: dict[str, str]) -> None:
    assert_error(call(app, "POST", "/api/tokens", bob, json={"user": CAROL}), 403, "admin")
    assert app.get("/api/tokens", params={"all": "1"}, headers=creds(ADMIN)).json == {"tokens": []}


# -- the failed-login limiter -------------------------------------------------------------


@pytest.fixture
def limited(raw_settings: dict[str, Any]) -> Iterator[webtest.TestApp]:
    raw = {
        **raw_settings,
        **static_users(BOB, CAROL, "a", "b", "c"),
        "auth.max_failed_logins": "3",
        "auth.max_failed_logins_per_address": "4",
    }
    with running(raw) as testapp:
        yield testapp


def test_too_many_failed_logins(limited: webtest.TestApp) -> None:
    wrong = creds(BOB, "wrong")
    for _ in range(3):
        assert_error(limited.get("/api/users/bob", headers=wrong, expect_errors=True), 401)
    # The fourth attempt is refused before the password is checked, even the right one.
    resp = limited.get("/api/users/bob", headers=creds(BOB), expect_errors=True)
    message = assert_error(resp, 429, "too many")
    assert int(resp.headers["Retry-After"]) >= 1
    assert resp.headers["Retry-After"] in message
    assert_error(limited.get("/simple/", headers=creds(BOB), expect_errors=True), 429)
    # Other users are not locked out.
    assert limited.get("/api/users/carol", headers=creds(CAROL)).status_int == 200


def test_an_attacker_elsewhere_does_not_lock_the_owner_out(limited: webtest.TestApp) -> None:
    attacker, owner = {"REMOTE_ADDR": "192.0.2.66"}, {"REMOTE_ADDR": "203.0.113.5"}
    for _ in range(10):
        resp = limited.get("/simple/", headers=creds(BOB, "wrong"), extra_environ=attacker, expect_errors=True)
        assert resp.status_int in (401, 429)
    assert_error(limited.get("/simple/", headers=creds(BOB), extra_environ=attacker, expect_errors=True), 429)
    # pip and twine from the owner's own address still get in.
    assert limited.get("/simple/", headers=creds(BOB), extra_environ=owner).status_int == 200
    assert limited.get("/api/users/bob", headers=creds(BOB), extra_environ=owner).status_int == 200


def test_success_resets_the_count(limited: webtest.TestApp) -> None:
    wrong = creds(BOB, "wrong")
    for _ in range(2):
        assert_error(limited.get("/api/users/bob", headers=wrong, expect_errors=True), 401)
    assert limited.get("/api/users/bob", headers=creds(BOB)).status_int == 200
    for _ in range(2):
        assert_error(limited.get("/api/users/bob", headers=wrong, expect_errors=True), 401)
    assert limited.get("/api/users/bob", headers=creds(BOB)).status_int == 200


def test_failures_from_one_address(limited: webtest.TestApp) -> None:
    attacker = {"REMOTE_ADDR": "192.0.2.66"}
    for name in ("a", "b", "c", CAROL):
        resp = limited.get("/simple/", headers=creds(name, "wrong"), extra_environ=attacker, expect_errors=True)
        assert_error(resp, 401)
    resp = limited.get("/simple/", headers=creds(BOB), extra_environ=attacker, expect_errors=True)
    assert_error(resp, 429)
    # Bob from his own address is fine.
    assert limited.get("/simple/", headers=creds(BOB), extra_environ={"REMOTE_ADDR": "192.0.2.1"}).status_int == 200


def test_bad_tokens_do_not_lock_out_every_token(raw_settings: dict[str, Any]) -> None:
    with running({**sql_settings(raw_settings), "auth.max_failed_logins": "3"}) as testapp:
        services(testapp.app).access.create_user(BOB, PASSWORD)
        token = new_token(testapp, creds(BOB))["token"]
        for n in range(3):
            forged = token_auth(f"ppc_{n:016x}_" + "0" * 48)
            resp = testapp.get(
                "/simple/", headers=forged, extra_environ={"REMOTE_ADDR": "192.0.2.66"}, expect_errors=True
            )
            assert_error(resp, 401)
        # All tokens share the username __token__: failures keyed on it would let anyone
        # lock every CI pipeline out with three bad requests.
        resp = testapp.get(
            "/simple/", headers=token_auth(token), extra_environ={"REMOTE_ADDR": "192.0.2.1"}, expect_errors=True
        )
        assert resp.status_int == 200, resp.status


@pytest.mark.usefixtures("projects")
def test_a_scope_refusal_names_the_tokens_scope(app: webtest.TestApp, admin: dict[str, str], dist_dir: Path) -> None:
    scoped = new_token(app, admin, projects=["foo-bar"])
    path = build_wheel(dist_dir, "other", "2.0")
    resp = upload_dist(app, token_auth(scoped["token"]), path, "other", "2.0")
    assert_error(resp, 403, f"Uploading on project 'other' is refused: token {scoped['id']} is scoped to foo-bar only.")
    read_only = new_token(app, admin, read_only=True)
    resp = call(app, "DELETE", "/api/projects/foo-bar/versions/1.0", token_auth(read_only["token"]))
    assert_error(resp, 403, f"token {read_only['id']} is read-only (scope: every project)")


def test_a_tokens_last_use_is_recorded_at_most_once_a_minute(
    app: webtest.TestApp, bob: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    created = new_token(app, bob)
    start = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)

    def used_at(offset: timedelta) -> str | None:
        monkeypatch.setattr("pypicloud_lite.access.base.utcnow", lambda: start + offset)
        assert app.get("/api/users/bob", headers=token_auth(created["token"])).status_int == 200
        listed: str | None = app.get("/api/tokens", headers=bob).json["tokens"][0]["last_used"]
        return listed

    assert used_at(timedelta(0)) == "2030-01-01T12:00:00Z"
    # Used again within the minute: nothing written.
    assert used_at(timedelta(seconds=59)) == "2030-01-01T12:00:00Z"
    assert used_at(timedelta(seconds=61)) == "2030-01-01T12:01:01Z"
    page = app.get("/ui/tokens", headers=bob)
    assert "2030-01-01 12:01" in page.text
