"""PEP 752 namespaces on the web: uploads into a reserved prefix, the JSON API's fields and endpoints, management."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import webtest

from pypicloud_lite.web.namespace_view import MAX_AGE
from tests.support.apiutil import (
    ADMIN,
    BOB,
    CAROL,
    PASSWORD,
    assert_error,
    call,
    creds,
    running,
    static_users,
    upload_wheel,
)
from tests.support.common import services
from tests.support.distbuilder import build_wheel
from tests.support.legacy import HTML, JSON_V1, upload_dist
from tests.support.owners import DAVE, grants_json, shipped_app, ui_login
from tests.support.settings import NO_UPLOADER, server_settings

pytestmark = pytest.mark.usefixtures("cheap_hashing")


@pytest.fixture
def app(raw_settings: dict[str, Any]) -> Iterator[webtest.TestApp]:
    """The SQL access backend: `corp` is group platform's (carol), `corp-ml` a child of it, `acme` is bob's."""
    with shipped_app(raw_settings) as testapp:
        access = services(testapp.app).access
        access.set_group("platform", [CAROL])
        access.add_namespace("Corp", "group", "platform")
        access.add_namespace("corp.ml", "user", DAVE)
        access.add_namespace("acme", "user", BOB)
        yield testapp


def project_json(app: webtest.TestApp, project: str, **headers: str) -> dict[str, Any]:
    resp = app.get(f"/simple/{project}/", headers={"Accept": JSON_V1, **headers})
    assert resp.content_type == JSON_V1
    result: dict[str, Any] = resp.json
    return result


# -- uploads ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["corp-tool", "Corp.Tool", "corp", "acme-x"])
def test_a_new_project_in_someone_elses_namespace_is_a_conflict(
    app: webtest.TestApp, dist_dir: Path, name: str
) -> None:
    path = build_wheel(dist_dir, name, "1.0")
    resp = upload_dist(app, creds(DAVE), path, name, "1.0")
    message = assert_error(resp, 409, "namespace")
    assert "PEP 752" in message
    assert services(app.app).index.find_project(name) is None
    assert services(app.app).access.grants_for(name.lower().replace(".", "-")) == []


@pytest.mark.parametrize(
    ("who", "name"),
    [
        (CAROL, "corp-tool"),  # a member of the owning group
        (BOB, "acme-tool"),  # the owning user
        (BOB, "acme"),  # the namespace's own name
        (ADMIN, "corp-admin-tool"),  # an admin
        (DAVE, "corp-ml-vision"),  # the owner of the child namespace, which governs its names
        (DAVE, "corptool"),  # not in the namespace: a hyphen must follow the prefix
    ],
)
def test_owners_members_and_admins_create_projects_in_a_namespace(
    app: webtest.TestApp, dist_dir: Path, who: str, name: str
) -> None:
    upload_wheel(app, creds(who), dist_dir, name, "1.0")
    assert services(app.app).index.find_project(name) is not None


def test_the_child_namespace_governs_its_names(app: webtest.TestApp, dist_dir: Path) -> None:
    # carol is in the group owning `corp`, but `corp-ml` is dave's.
    path = build_wheel(dist_dir, "corp-ml-x", "1.0")
    assert_error(upload_dist(app, creds(CAROL), path, "corp-ml-x", "1.0"), 409, "corp-ml")


def test_a_project_created_in_a_namespace_is_owned_by_the_namespace_owner(app: webtest.TestApp, dist_dir: Path) -> None:
    upload_wheel(app, creds(ADMIN), dist_dir, "corp-lib", "1.0")
    assert grants_json(app, "corp-lib") == [
        {"project": "corp-lib", "kind": "group", "name": "platform", "perms": "rwdo"},
        {"project": "corp-lib", "kind": "user", "name": ADMIN, "perms": "rwdo"},
    ]
    # So the group's members upload its next releases.
    upload_wheel(app, creds(CAROL), dist_dir, "corp-lib", "2.0")


def test_a_project_older_than_the_namespace_keeps_its_grants(app: webtest.TestApp, dist_dir: Path) -> None:
    upload_wheel(app, creds(DAVE), dist_dir, "beta-old", "1.0")
    services(app.app).access.add_namespace("beta", "user", BOB)
    upload_wheel(app, creds(DAVE), dist_dir, "beta-old", "2.0")
    assert project_json(app, "beta-old")["namespaces"] == [{"name": "beta", "owned": False}]
    # A new name in it is bob's alone.
    path = build_wheel(dist_dir, "beta-new", "1.0")
    assert_error(upload_dist(app, creds(DAVE), path, "beta-new", "1.0"), 409, "beta")


def test_the_ui_upload_refuses_a_new_project_in_a_namespace(app: webtest.TestApp, dist_dir: Path) -> None:
    ui_login(app, DAVE)
    page = app.get("/ui/")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    path = build_wheel(dist_dir, "corp-ui", "1.0")
    answer = app.post(
        "/ui/upload", {"csrf_token": token.group(1)}, upload_files=[("content", path.name, path.read_bytes())]
    )
    assert "namespace" in answer.follow().text
    assert services(app.app).index.find_project("corp-ui") is None


# -- the JSON API -----------------------------------------------------------------------------


def test_project_detail_carries_the_namespaces_and_api_version_1_5(app: webtest.TestApp, dist_dir: Path) -> None:
    upload_wheel(app, creds(DAVE), dist_dir, "plain", "1.0")
    upload_wheel(app, creds(DAVE), dist_dir, "corp-ml-tool", "1.0")
    plain = project_json(app, "plain")
    assert plain["namespaces"] is None
    assert plain["meta"]["api-version"] == "1.5"
    assert project_json(app, "corp-ml-tool")["namespaces"] == [
        {"name": "corp", "owned": False},  # dave owns the project, the platform group owns corp
        {"name": "corp-ml", "owned": True},
    ]
    assert app.get("/simple/", headers={"Accept": JSON_V1}).json["meta"]["api-version"] == "1.5"
    # The HTML API stays at its version (PEP 752 changes only the JSON API).
    html = app.get("/simple/plain/", headers={"Accept": "text/html"}).text
    assert '<meta name="pypi:repository-version" content="1.1">' in html
    assert "namespace" not in html


def test_a_group_members_project_is_owned(app: webtest.TestApp, dist_dir: Path) -> None:
    upload_wheel(app, creds(CAROL), dist_dir, "corp-thing", "1.0")
    assert project_json(app, "corp-thing")["namespaces"] == [{"name": "corp", "owned": True}]


def test_namespace_changes_by_another_process_reach_the_cached_page(app: webtest.TestApp, dist_dir: Path) -> None:
    view = services(app.app).namespaces
    now = [1000.0]
    view.clock = lambda: now[0]
    upload_wheel(app, creds(DAVE), dist_dir, "zeta-one", "1.0")
    before = app.get("/simple/zeta-one/", headers={"Accept": JSON_V1})
    assert before.json["namespaces"] is None
    services(app.app).access.add_namespace("zeta", "user", DAVE)  # as another server process would
    now[0] += MAX_AGE - 0.1
    assert project_json(app, "zeta-one")["namespaces"] is None  # what this process read is still young
    now[0] += 0.2
    after = app.get("/simple/zeta-one/", headers={"Accept": JSON_V1, "If-None-Match": before.headers["ETag"]})
    assert after.status_int == 200
    assert after.json["namespaces"] == [{"name": "zeta", "owned": True}]
    assert after.headers["ETag"] != before.headers["ETag"]
    services(app.app).access.delete_namespace("zeta")
    now[0] += MAX_AGE
    assert project_json(app, "zeta-one")["namespaces"] is None  # an unclaimed namespace: null again


@pytest.mark.parametrize("prefix", ["/simple", ""])
def test_the_namespace_list(app: webtest.TestApp, prefix: str) -> None:
    resp = app.get(f"{prefix}/namespaces")
    assert resp.content_type == JSON_V1
    assert resp.json == [{"name": "acme"}, {"name": "corp"}, {"name": "corp-ml"}]


@pytest.mark.parametrize("prefix", ["/simple", ""])
def test_namespace_detail(app: webtest.TestApp, prefix: str) -> None:
    corp = app.get(f"{prefix}/namespace/corp")
    assert corp.content_type == JSON_V1
    assert corp.json == {"name": "corp", "parent": None, "children": ["corp-ml"], "owner": "group:platform"}
    assert app.get(f"{prefix}/namespace/corp-ml").json == {
        "name": "corp-ml",
        "parent": "corp",
        "children": [],
        "owner": f"user:{DAVE}",
    }
    moved = app.get(f"{prefix}/namespace/Corp.ML", status=301)
    assert moved.location.endswith(f"{prefix}/namespace/corp-ml")
    assert_error(app.get(f"{prefix}/namespace/nope", expect_errors=True), 404, "nope")


def test_namespace_endpoints_speak_json_only(app: webtest.TestApp) -> None:
    assert app.get("/namespaces", headers={"Accept": "application/json"}).content_type == "application/json"
    assert app.get("/namespaces", headers={"Accept": HTML}, expect_errors=True).status_int == 406


def test_a_private_index_hides_its_namespaces_from_anonymous_callers(raw_settings: dict[str, Any]) -> None:
    with shipped_app(raw_settings, **{"pypi.default_read": "authenticated"}) as app:
        services(app.app).access.add_namespace("corp", "user", BOB)
        assert_error(app.get("/namespaces", expect_errors=True), 401)
        assert_error(app.get("/simple/namespace/corp", expect_errors=True), 401)
        assert app.get("/namespaces", headers=creds(DAVE)).json == [{"name": "corp"}]


# -- management: the API and the admin UI -------------------------------------------------------


def test_admins_manage_namespaces_through_the_api(app: webtest.TestApp) -> None:
    listed = call(app, "GET", "/api/namespaces", creds(ADMIN))
    assert listed.json["read_only"] is False
    assert [(n["name"], n["display_name"], n["kind"], n["owner"]) for n in listed.json["namespaces"]] == [
        ("acme", "acme", "user", BOB),
        ("corp", "Corp", "group", "platform"),
        ("corp-ml", "corp.ml", "user", DAVE),
    ]
    created = call(app, "POST", "/api/namespaces", creds(ADMIN), json={"name": "New.NS", "owner": f"user:{CAROL}"})
    assert created.status_int == 201, created.body
    assert created.json["name"] == "new-ns" and created.json["owner"] == CAROL
    assert created.location.endswith("/api/namespaces/new-ns")
    assert call(app, "GET", "/api/namespaces/New.NS", creds(ADMIN)).json["display_name"] == "New.NS"
    assert_error(call(app, "POST", "/api/namespaces", creds(ADMIN), json={"name": "new-ns", "owner": "user:bob"}), 409)
    assert_error(call(app, "POST", "/api/namespaces", creds(ADMIN), json={"name": "x", "owner": "bob"}), 400, "owner")
    assert call(app, "DELETE", "/api/namespaces/new-ns", creds(ADMIN)).json == {"deleted": True}
    assert_error(call(app, "DELETE", "/api/namespaces/new-ns", creds(ADMIN)), 404)


def test_only_admins_manage_namespaces(app: webtest.TestApp) -> None:
    assert_error(call(app, "POST", "/api/namespaces", creds(BOB), json={"name": "b", "owner": "user:bob"}), 403)
    assert_error(call(app, "DELETE", "/api/namespaces/acme", creds(BOB)), 403)
    assert_error(call(app, "GET", "/api/namespaces"), 401)
    assert services(app.app).access.get_namespace("acme") is not None


def test_admins_manage_namespaces_in_the_ui(app: webtest.TestApp) -> None:
    ui_login(app, ADMIN, PASSWORD)
    page = app.get("/ui/admin/access")
    assert 'data-namespace="corp"' in page.text
    form = page.forms["namespace-form"]
    form["name"], form["owner"] = "Team.X", f"user:{CAROL}"
    answer = form.submit().follow()
    assert 'data-namespace="team-x"' in answer.text
    assert services(app.app).access.get_namespace("team-x") is not None
    # Without this session's CSRF token, nothing happens.
    forged = app.post("/ui/admin/access/namespaces", {"action": "delete", "name": "team-x"}, expect_errors=True)
    assert forged.status_int == 403
    assert services(app.app).access.get_namespace("team-x") is not None
    delete = answer.forms["namespace-delete-team-x"]
    delete["confirm"].checked = True
    assert 'data-namespace="team-x"' not in delete.submit().follow().text
    assert services(app.app).access.get_namespace("team-x") is None


# -- the static backend ---------------------------------------------------------------------------


def test_namespaces_from_the_ini(tmp_path: Path) -> None:
    raw = server_settings(
        tmp_path,
        {
            **NO_UPLOADER,
            **static_users(ADMIN, BOB, DAVE),
            "auth.admins": ADMIN,
            "group.platform": BOB,
            "namespace.corp": "group:platform",
        },
    )
    with running(raw) as app:
        path = build_wheel(tmp_path / "dist", "corp-x", "1.0")
        assert_error(upload_dist(app, creds(DAVE), path, "corp-x", "1.0"), 409, "corp")
        upload_wheel(app, creds(BOB), tmp_path / "dist", "corp-x", "1.0")
        assert app.get("/namespaces").json == [{"name": "corp"}]
        assert project_json(app, "corp-x")["namespaces"] == [{"name": "corp", "owned": False}]
        assert call(app, "GET", "/api/namespaces", creds(ADMIN)).json["read_only"] is True
        assert_error(call(app, "POST", "/api/namespaces", creds(ADMIN), json={"name": "n", "owner": "user:bob"}), 409)


def test_namespaces_changed_through_this_process_show_at_once_however_long_pages_are_kept(
    raw_settings: dict[str, Any], dist_dir: Path
) -> None:
    # With cache.serial_max_age, a process reuses what it read; its own changes must not wait for that.
    with shipped_app(raw_settings, **{"cache.serial_max_age": "3600"}) as app:
        upload_wheel(app, creds(DAVE), dist_dir, "kappa-x", "1.0")
        assert project_json(app, "kappa-x")["namespaces"] is None
        made = call(app, "POST", "/api/namespaces", creds(ADMIN), json={"name": "kappa", "owner": f"user:{DAVE}"})
        assert made.status_int == 201
        assert project_json(app, "kappa-x")["namespaces"] == [{"name": "kappa", "owned": True}]
        # The router's path (a query string) gives the same page as the fast path.
        assert app.get("/simple/kappa-x/?format=json").json["namespaces"] == [{"name": "kappa", "owned": True}]
        assert app.get("/namespaces").json == [{"name": "kappa"}]
        assert call(app, "DELETE", "/api/namespaces/kappa", creds(ADMIN)).status_int == 200
        assert project_json(app, "kappa-x")["namespaces"] is None
