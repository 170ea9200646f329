"""The audit trail: one record per change (JSON API, web UI, legacy upload), its filters, pages, retention."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import webtest

from pypicloud_lite.access.audit import AuditEvent, AuditQuery, AuditRecorder
from pypicloud_lite.models import utcnow
from tests.support.apiutil import ADMIN, BOB, CAROL, PASSWORD, assert_error, call, creds, running, upload_wheel
from tests.support.common import UPLOADER, services

pytestmark = pytest.mark.usefixtures("cheap_hashing")
CLIENT = {"REMOTE_ADDR": "192.0.2.7"}
Row = tuple[str | None, str, str | None, str | None]


@pytest.fixture
def app(sql_raw: dict[str, Any]) -> Iterator[webtest.TestApp]:
    with running({**sql_raw, "pypi.default_write": "authenticated"}) as testapp:
        access = services(testapp.app).access
        access.create_user(ADMIN, PASSWORD, is_admin=True)
        access.create_user(BOB, PASSWORD)
        testapp.extra_environ = CLIENT
        yield testapp


def records(app: webtest.TestApp, **filters: str) -> list[dict[str, Any]]:
    resp = app.get("/api/audit", {"limit": "1000", **filters}, headers=creds(ADMIN))
    return list(resp.json["records"])


def changes(app: webtest.TestApp) -> list[Row]:
    """Every record but logins, oldest first, as (actor, action, project, target)."""
    found = reversed(records(app))
    return [(r["actor"], r["action"], r["project"], r["target"]) for r in found if not r["action"].startswith("login")]


def test_each_api_change_leaves_one_record_with_its_actor(app: webtest.TestApp, dist_dir: Path) -> None:
    admin, bob = creds(ADMIN), creds(BOB)
    upload_wheel(app, bob, dist_dir, "widget", "1.0")
    upload_wheel(app, bob, dist_dir, "widget", "1.0")  # identical: no change, no record
    upload_wheel(app, bob, dist_dir, "widget", "2.0")
    steps: list[tuple[str | None, str, str, dict[str, str], Any]] = [
        (BOB, "POST", "/api/projects/widget/versions/1.0/yank", bob, {"reason": "broken"}),
        (BOB, "DELETE", "/api/projects/widget/versions/1.0/yank", bob, None),
        (ADMIN, "PUT", "/api/projects/widget/status", admin, {"status": "deprecated", "reason": "use gadget"}),
        (ADMIN, "PUT", "/api/projects/widget/origin", admin, {"origin": "local"}),
        (ADMIN, "POST", "/api/users", admin, {"name": CAROL, "password": "carol's secret"}),
        (ADMIN, "PUT", f"/api/users/{CAROL}", admin, {"password": "another secret"}),
        (ADMIN, "PUT", "/api/groups/devs", admin, {"members": [CAROL]}),
        (BOB, "PUT", f"/api/projects/widget/grants/user/{CAROL}", bob, {"perms": "rw"}),
        (BOB, "DELETE", f"/api/projects/widget/grants/user/{CAROL}", bob, None),
        (ADMIN, "DELETE", "/api/groups/devs", admin, None),
        (ADMIN, "POST", "/api/namespaces", admin, {"name": "acme", "owner": f"user:{BOB}"}),
        (ADMIN, "DELETE", "/api/namespaces/acme", admin, None),
        (
            BOB,
            "POST",
            "/api/projects/widget/publishers",
            bob,
            {"kind": "github", "repository": "o/r", "workflow": "r.yml"},
        ),
        (ADMIN, "POST", "/admin/reload?wait=1", admin, None),
        (BOB, "DELETE", "/api/projects/widget/files/widget-2.0-py3-none-any.whl", bob, None),
        (BOB, "DELETE", "/api/projects/widget/versions/1.0", bob, None),
        (ADMIN, "DELETE", f"/api/users/{CAROL}", admin, None),
    ]
    for _actor, method, url, headers, body in steps:
        assert call(app, method, url, headers, json=body).status_int < 300, url
    publisher = call(app, "GET", "/api/projects/widget/publishers", bob).json["publishers"][0]["id"]
    assert call(app, "DELETE", f"/api/projects/widget/publishers/{publisher}", bob).status_int == 200
    token = call(app, "POST", "/api/tokens", bob, json={"description": "ci"}).json["id"]
    assert call(app, "DELETE", f"/api/tokens/{token}", bob).status_int == 200

    assert changes(app) == [
        (BOB, "file.upload", "widget", "widget-1.0-py3-none-any.whl"),
        (BOB, "file.upload", "widget", "widget-2.0-py3-none-any.whl"),
        (BOB, "version.yank", "widget", "1.0"),
        (BOB, "version.unyank", "widget", "1.0"),
        (ADMIN, "project.status", "widget", None),
        (ADMIN, "project.origin", "widget", None),
        (ADMIN, "user.create", None, CAROL),
        (ADMIN, "user.update", None, CAROL),
        (ADMIN, "group.set", None, "devs"),
        (BOB, "grant.set", "widget", f"user:{CAROL}"),
        (BOB, "grant.delete", "widget", f"user:{CAROL}"),
        (ADMIN, "group.delete", None, "devs"),
        (ADMIN, "namespace.add", None, "acme"),
        (ADMIN, "namespace.delete", None, "acme"),
        (BOB, "publisher.add", "widget", publisher),
        (ADMIN, "reload.start", None, None),
        (BOB, "file.delete", "widget", "widget-2.0-py3-none-any.whl"),
        (BOB, "version.delete", "widget", "1.0"),
        (ADMIN, "user.delete", None, CAROL),
        (BOB, "publisher.delete", "widget", publisher),
        (BOB, "token.create", None, token),
        (BOB, "token.revoke", None, token),
    ]
    newest = records(app)[0]
    assert newest["address"] == CLIENT["REMOTE_ADDR"] and newest["detail"] == f"of {BOB}"
    [status] = records(app, action="project.status")
    assert status["detail"] == "deprecated: use gadget"


def test_logins_and_failures_are_recorded(app: webtest.TestApp) -> None:
    assert_error(call(app, "GET", "/api/tokens", creds(BOB, "a guess")), 401)
    assert call(app, "GET", "/api/tokens", creds(BOB)).status_int == 200  # Basic auth: not a login record
    form = app.get("/ui/login").forms["login-form"]
    form["username"], form["password"] = BOB, PASSWORD
    assert form.submit().status_int == 303
    logins = [(r["actor"], r["action"], r["target"], r["address"]) for r in records(app, action="login.")]
    address = CLIENT["REMOTE_ADDR"]
    # The admin's own reads of /api/audit are not logins either.
    assert logins == [(BOB, "login.success", BOB, address), (None, "login.failure", BOB, address)]
    # The password tried is never in the trail.
    assert "a guess" not in str(records(app))


def _csrf(page: webtest.TestResponse) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


def test_each_ui_change_leaves_one_record(app: webtest.TestApp, dist_dir: Path) -> None:
    upload_wheel(app, creds(BOB), dist_dir, "widget", "1.0")
    form = app.get("/ui/login").forms["login-form"]
    form["username"], form["password"] = ADMIN, PASSWORD
    form.submit()
    csrf = _csrf(app.get("/ui/admin/access"))
    posts = [
        ("/ui/admin/access/users", {"action": "create", "name": CAROL, "password": "carol's secret"}),
        ("/ui/admin/access/groups", {"action": "set", "name": "devs", "members": CAROL}),
        (
            "/ui/admin/access/grants",
            {"action": "set", "project": "widget", "kind": "user", "name": CAROL, "role": "maintainer"},
        ),
        ("/ui/projects/widget/versions/1.0/yank", {"reason": "broken"}),
        ("/ui/projects/widget/versions/1.0/yank", {"action": "unyank"}),
        ("/ui/projects/widget/status", {"status": "archived"}),
        ("/ui/admin/reload", {}),
        ("/ui/projects/widget/files/widget-1.0-py3-none-any.whl/delete", {"confirm": "yes"}),
        ("/ui/admin/access/users", {"action": "delete", "name": CAROL, "confirm": "yes"}),
    ]
    for url, fields in posts:
        assert app.post(url, {**fields, "csrf_token": csrf}).status_int == 303, url
    assert changes(app) == [
        (BOB, "file.upload", "widget", "widget-1.0-py3-none-any.whl"),
        (ADMIN, "user.create", None, CAROL),
        (ADMIN, "group.set", None, "devs"),
        (ADMIN, "grant.set", "widget", f"user:{CAROL}"),
        (ADMIN, "version.yank", "widget", "1.0"),
        (ADMIN, "version.unyank", "widget", "1.0"),
        (ADMIN, "project.status", "widget", None),
        (ADMIN, "reload.start", None, None),
        (ADMIN, "file.delete", "widget", "widget-1.0-py3-none-any.whl"),
        (ADMIN, "user.delete", None, CAROL),
    ]
    page = app.get("/ui/admin/audit", {"action": "version.", "project": "widget"})
    assert page.text.count('class="audit-record"') == 2 and "broken" in page.text
    assert "Audit log" in app.get("/ui/").text


def test_filters_pages_and_refusals(app: webtest.TestApp, dist_dir: Path) -> None:
    for version in ("1.0", "2.0", "3.0"):
        upload_wheel(app, creds(BOB), dist_dir, "widget", version)
    upload_wheel(app, creds(ADMIN), dist_dir, "gadget", "1.0")
    assert [r["project"] for r in records(app, actor=BOB)] == ["widget"] * 3
    assert [r["actor"] for r in records(app, project="Gadget")] == [ADMIN]
    first = app.get("/api/audit", {"action": "file.upload", "limit": "2"}, headers=creds(ADMIN)).json
    assert [r["target"][:10] for r in first["records"]] == ["gadget-1.0", "widget-3.0"]
    second = app.get(first["next"], headers=creds(ADMIN)).json
    assert [r["target"][:10] for r in second["records"]] == ["widget-2.0", "widget-1.0"]
    assert not app.get(second["next"], headers=creds(ADMIN)).json["records"]
    now = utcnow()
    assert len(records(app, since=(now - timedelta(hours=1)).isoformat(), action="file.upload")) == 4
    assert records(app, until=(now - timedelta(hours=1)).isoformat()) == []
    assert_error(call(app, "GET", "/api/audit?action=nonsense", creds(ADMIN)), 400, "Unknown action")
    assert_error(call(app, "GET", "/api/audit?since=yesterday", creds(ADMIN)), 400, "since")
    assert_error(call(app, "GET", "/api/audit?limit=0", creds(ADMIN)), 400, "limit")
    assert_error(call(app, "GET", "/api/audit", creds(BOB)), 403)


def test_static_backend_logs_the_trail_and_says_where_it_is(
    raw_settings: dict[str, Any], auth: dict[str, str], dist_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    raw = {**raw_settings, "auth.admins": UPLOADER}
    with running(raw) as app, caplog.at_level(logging.WARNING, "pypicloud_lite.access.audit"):
        upload_wheel(app, auth, dist_dir, "widget", "1.0")
        lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("audit:")]
        [line] = lines
        assert line.startswith(f"audit: {UPLOADER} file.upload project=widget target=widget-1.0-py3-none-any.whl "), (
            line
        )
        assert_error(call(app, "GET", "/api/audit", auth), 409, "log only")


def test_records_older_than_the_retention_are_pruned(app: webtest.TestApp) -> None:
    recorder = services(app.app).access.audit
    store = recorder.store
    old = AuditEvent("user.create", ADMIN, None, target="ancient", at=utcnow() - timedelta(days=3))
    store.add(old)
    pruning = AuditRecorder(store, retention=2 * 86400)
    pruning.record("user.create", ADMIN, None, target="recent")
    assert [e.target for e in store.find(AuditQuery(action="user.create"))] == ["recent"]
