"""Ownership as on PyPI: a project's first uploader owns it, and `default_write` never opens an owned project."""

from __future__ import annotations

from collections.abc import Iterator
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
    static_users,
    token_auth,
    upload_wheel,
)
from tests.support.cache import statements_on
from tests.support.common import services
from tests.support.distbuilder import build_wheel
from tests.support.legacy import upload_dist
from tests.support.owners import (
    DAVE,
    SHIPPED_DEFAULTS,
    found_by_reload,
    grants_json,
    owner_grant,
    shipped_app,
    ui_login,
)

pytestmark = pytest.mark.usefixtures("cheap_hashing")


@pytest.fixture
def app(raw_settings: dict[str, Any]) -> Iterator[webtest.TestApp]:
    with shipped_app(raw_settings) as testapp:
        yield testapp


@pytest.fixture
def owned(app: webtest.TestApp, dist_dir: Path) -> Path:
    """Project `owned` (1.0), first uploaded by bob."""
    return upload_wheel(app, creds(BOB), dist_dir, "owned", "1.0")


def new_token(app: webtest.TestApp, user: str, **body: Any) -> dict[str, str]:
    resp = call(app, "POST", "/api/tokens", creds(user), json=body)
    assert resp.status_int == 201, resp.body
    return token_auth(resp.json["token"])


# -- the first uploader owns the project --------------------------------------------------


def test_the_first_uploader_becomes_the_owner(app: webtest.TestApp, owned: Path) -> None:
    assert grants_json(app, "owned") == [owner_grant("owned", BOB)]
    # The owner reads the grants of its own project too.
    assert grants_json(app, "owned", creds(BOB)) == [owner_grant("owned", BOB)]


def test_a_new_projects_first_upload_reads_its_row_once_and_claims_its_owner_in_one_write(
    app: webtest.TestApp, dist_dir: Path
) -> None:
    """The project's row as the upload's lease read it serves the closed check and the state's seed; the owner's
    grant is one read and one insert; the namespaces are read once, by the check that allowed the creation."""
    with statements_on() as seen:
        upload_wheel(app, creds(BOB), dist_dir, "fresh", "1.0")
    assert len([s for s in seen if s.startswith("SELECT") and "FROM ppc_projects" in s]) == 1, seen
    assert len([s for s in seen if "FROM ppc_namespaces" in s]) == 1, seen
    assert [s.split()[0] for s in seen if "ppc_grants" in s and not s.startswith("SELECT")] == ["INSERT"], seen
    assert grants_json(app, "fresh") == [owner_grant("fresh", BOB)]


def test_a_project_scoped_token_makes_its_user_the_owner(app: webtest.TestApp, dist_dir: Path) -> None:
    upload_wheel(app, new_token(app, CAROL, projects=["Fresh"]), dist_dir, "Fresh", "1.0")
    assert grants_json(app, "fresh") == [owner_grant("fresh", CAROL)]


def test_a_refused_upload_leaves_no_owner(app: webtest.TestApp, dist_dir: Path) -> None:
    path = build_wheel(dist_dir, "broken", "1.0")
    # The form names another version than the file: the upload fails after the permission check.
    assert upload_dist(app, creds(BOB), path, "broken", "2.0").status_int == 400
    assert services(app.app).access.grants_for("broken") == []


@pytest.mark.parametrize("how", ["password", "token"])
def test_another_user_cannot_upload_to_an_owned_project(
    app: webtest.TestApp, owned: Path, dist_dir: Path, how: str
) -> None:
    # default_write = authenticated, as shipped: it must not open a project bob owns.
    headers = creds(CAROL) if how == "password" else new_token(app, CAROL)
    path = build_wheel(dist_dir, "owned", "2.0")
    assert_error(upload_dist(app, headers, path, "owned", "2.0"), 403, "may not upload")
    assert simple_filenames(app, "owned") == [owned.name]
    # Nor does carol become an owner by trying.
    assert grants_json(app, "owned") == [owner_grant("owned", BOB)]


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("POST", "/api/projects/owned/versions/1.0/yank"),
        ("DELETE", "/api/projects/owned/versions/1.0/yank"),
        ("DELETE", "/api/projects/owned/versions/1.0"),
        ("DELETE", "/api/projects/owned/files/owned-1.0-py3-none-any.whl"),
    ],
)
def test_another_user_cannot_yank_or_delete_in_an_owned_project(
    app: webtest.TestApp, owned: Path, method: str, url: str
) -> None:
    assert_error(call(app, method, url, creds(CAROL)), 403)
    assert simple_filenames(app, "owned") == [owned.name]


def test_the_owner_uploads_yanks_and_deletes(app: webtest.TestApp, owned: Path, dist_dir: Path) -> None:
    upload_wheel(app, creds(BOB), dist_dir, "owned", "2.0")
    assert call(app, "POST", "/api/projects/owned/versions/1.0/yank", creds(BOB)).status_int == 200
    assert call(app, "DELETE", "/api/projects/owned/versions/2.0", creds(BOB)).status_int == 200
    assert simple_filenames(app, "owned") == [owned.name]


def test_an_admin_may_do_anything_to_an_owned_project(app: webtest.TestApp, owned: Path, dist_dir: Path) -> None:
    admin = creds(ADMIN)
    upload_wheel(app, admin, dist_dir, "owned", "2.0")
    assert call(app, "POST", "/api/projects/owned/versions/2.0/yank", admin).status_int == 200
    assert call(app, "PUT", f"/api/projects/owned/grants/user/{DAVE}", admin, json={"perms": "rw"}).status_int == 200
    # An admin may even remove the last owner.
    assert call(app, "DELETE", f"/api/projects/owned/grants/user/{BOB}", admin).status_int == 200
    assert call(app, "DELETE", "/api/projects/owned/versions/1.0", admin).status_int == 200
    # The admin's upload made nobody else an owner.
    assert grants_json(app, "owned") == [{"project": "owned", "kind": "user", "name": DAVE, "perms": "rw"}]


# -- owners manage maintainers -------------------------------------------------------------


def test_an_owner_grants_a_maintainer_who_uploads_but_does_not_delete(
    app: webtest.TestApp, owned: Path, dist_dir: Path
) -> None:
    resp = call(app, "PUT", f"/api/projects/owned/grants/user/{CAROL}", creds(BOB), json={"perms": MAINTAINER_PERMS})
    assert resp.json == {"project": "owned", "kind": "user", "name": CAROL, "perms": "rw"}
    upload_wheel(app, creds(CAROL), dist_dir, "owned", "2.0")
    assert_error(call(app, "DELETE", "/api/projects/owned/versions/2.0", creds(CAROL)), 403)
    assert_error(call(app, "POST", "/api/projects/owned/versions/2.0/yank", creds(CAROL)), 403)
    # A maintainer manages no roles.
    assert_error(call(app, "GET", "/api/projects/owned/grants", creds(CAROL)), 403)
    assert_error(call(app, "PUT", f"/api/projects/owned/grants/user/{DAVE}", creds(CAROL), json={"perms": "rw"}), 403)
    # Dave, granted nothing, still may not upload.
    upload_wheel(app, creds(DAVE), dist_dir, "owned", "3.0", status=403)
    # The owner takes the maintainer away again.
    assert call(app, "DELETE", f"/api/projects/owned/grants/user/{CAROL}", creds(BOB)).status_int == 200
    upload_wheel(app, creds(CAROL), dist_dir, "owned", "3.0", status=403)


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/api/projects/owned/grants"), ("PUT", "/grants/user/carol"), ("DELETE", "/grants/user/bob")],
)
def test_a_non_owner_cannot_manage_grants(app: webtest.TestApp, owned: Path, method: str, path: str) -> None:
    url = path if path.startswith("/api") else f"/api/projects/owned{path}"
    body = {"perms": "rwdo"} if method == "PUT" else None
    assert_error(call(app, method, url, creds(CAROL), json=body), 403)
    assert_error(call(app, method, url, None, json=body), 401)
    assert grants_json(app, "owned") == [owner_grant("owned", BOB)]


def test_an_owners_token_does_not_manage_grants(app: webtest.TestApp, owned: Path) -> None:
    resp = call(app, "PUT", f"/api/projects/owned/grants/user/{CAROL}", new_token(app, BOB), json={"perms": "rw"})
    assert_error(resp, 403, "password")


def test_the_last_owner_stays_unless_an_admin_removes_it(app: webtest.TestApp, owned: Path) -> None:
    bob = creds(BOB)
    assert_error(call(app, "DELETE", f"/api/projects/owned/grants/user/{BOB}", bob), 403, "last owner")
    assert_error(call(app, "PUT", f"/api/projects/owned/grants/user/{BOB}", bob, json={"perms": "rw"}), 403)
    # With a second owner, either may step down.
    assert call(app, "PUT", f"/api/projects/owned/grants/user/{CAROL}", bob, json={"perms": "rwdo"}).status_int == 200
    assert call(app, "DELETE", f"/api/projects/owned/grants/user/{BOB}", bob).status_int == 200
    assert grants_json(app, "owned") == [owner_grant("owned", CAROL)]


# -- projects nobody owns ------------------------------------------------------------------


def test_a_project_found_by_a_reload_follows_default_write(app: webtest.TestApp, dist_dir: Path) -> None:
    found = services(app.app)
    found_by_reload(found.index, found.index.storage, dist_dir, "stray", "1.0")
    assert found.access.grants_for("stray") == []
    upload_wheel(app, creds(CAROL), dist_dir, "stray", "2.0")
    upload_wheel(app, creds(DAVE), dist_dir, "stray", "3.0")
    # Uploading into an existing project nobody owns makes nobody its owner.
    assert found.access.grants_for("stray") == []


def test_default_write_decides_who_creates(raw_settings: dict[str, Any], dist_dir: Path) -> None:
    with shipped_app(raw_settings, **{"pypi.default_write": f"user:{BOB}"}) as app:
        upload_wheel(app, creds(CAROL), dist_dir, "new", "1.0", status=403)
        upload_wheel(app, creds(BOB), dist_dir, "new", "1.0")
        assert grants_json(app, "new") == [owner_grant("new", BOB)]


# -- the web UI ----------------------------------------------------------------------------


def test_the_ui_upload_makes_the_owner_and_refuses_others(app: webtest.TestApp, dist_dir: Path) -> None:
    wheel = build_wheel(dist_dir, "viaui", "1.0")
    ui_login(app, BOB)
    form = app.get("/ui/").forms["upload-form"]
    form["content"] = webtest.Upload(wheel.name, wheel.read_bytes())
    form.submit().follow()
    assert grants_json(app, "viaui") == [owner_grant("viaui", BOB)]
    app.reset()
    ui_login(app, CAROL)
    second = build_wheel(dist_dir, "viaui", "2.0")
    page = app.get("/ui/projects/viaui")
    assert "upload-form" not in page.forms and "project-grant-form" not in page.forms
    form = app.get("/ui/").forms["upload-form"]
    form["content"] = webtest.Upload(second.name, second.read_bytes())
    assert form.submit(expect_errors=True).status_int == 403


def test_the_owner_adds_a_maintainer_on_the_project_page(app: webtest.TestApp, owned: Path) -> None:
    ui_login(app, BOB)
    form = app.get("/ui/projects/owned").forms["project-grant-form"]
    form["name"], form["role"] = CAROL, "maintainer"
    page = form.submit().follow()
    assert "/ui/projects/owned" in page.request.url
    assert grants_json(app, "owned") == [
        owner_grant("owned", BOB),
        {"project": "owned", "kind": "user", "name": CAROL, "perms": "rw"},
    ]


# -- the static backend ---------------------------------------------------------------------


def test_static_grants_close_their_project_and_record_no_owner(raw_settings: dict[str, Any], dist_dir: Path) -> None:
    static = {
        **raw_settings,
        **SHIPPED_DEFAULTS,
        **static_users(BOB, CAROL),
        f"package.kept.user.{BOB}": "rw",
    }
    with running(static) as app:
        upload_wheel(app, creds(BOB), dist_dir, "kept", "1.0")
        upload_wheel(app, creds(CAROL), dist_dir, "kept", "2.0", status=403)
        # A project the ini grants nothing on follows default_write, and its first upload records nobody.
        upload_wheel(app, creds(CAROL), dist_dir, "loose", "1.0")
        upload_wheel(app, creds(BOB), dist_dir, "loose", "2.0")
        assert services(app.app).access.grants_for("loose") == []


def test_the_ini_may_name_static_owners(raw_settings: dict[str, Any]) -> None:
    static = {**raw_settings, **static_users(BOB), f"package.kept.user.{BOB}": "rwdo"}
    with running(static) as app:
        access = services(app.app).access
        assert [g.name for g in access.owners("kept")] == [BOB]
        assert access.can_own(access.authenticate(BOB, PASSWORD), "kept") is True
