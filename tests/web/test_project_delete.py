"""Deleting a whole project: owners and admins, API and UI; its filenames stay used, as on PyPI."""

from __future__ import annotations

import re
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
    sql_settings,
    upload_wheel,
)
from tests.support.common import services
from tests.support.distbuilder import build_wheel
from tests.support.legacy import upload_dist
from tests.support.owners import ui_login

pytestmark = pytest.mark.usefixtures("cheap_hashing")


@pytest.fixture
def app(raw_settings: dict[str, Any], dist_dir: Path) -> Iterator[webtest.TestApp]:
    """bob owns Doomed (two releases) and kept; carol maintains Doomed."""
    with running(sql_settings(raw_settings)) as testapp:
        access = services(testapp.app).access
        access.create_user(ADMIN, PASSWORD, is_admin=True)
        for name in (BOB, CAROL):
            access.create_user(name, PASSWORD)
        for version in ("1.0", "2.0"):
            upload_wheel(testapp, creds(BOB), dist_dir, "Doomed", version)
        upload_wheel(testapp, creds(BOB), dist_dir, "kept", "1.0")
        access.set_grant("doomed", "user", CAROL, MAINTAINER_PERMS)
        yield testapp


def test_an_owner_deletes_a_project_and_its_filenames_stay_used(app: webtest.TestApp, dist_dir: Path) -> None:
    assert_error(call(app, "DELETE", "/api/projects/doomed"), 401)
    assert_error(call(app, "DELETE", "/api/projects/doomed", creds(CAROL)), 403, "own permission")
    assert_error(call(app, "DELETE", "/api/projects/nothing-here", creds(BOB)), 404)
    answer = call(app, "DELETE", "/api/projects/Doomed", creds(BOB))
    assert answer.json == {"deleted": "Doomed", "files": ["doomed-1.0-py3-none-any.whl", "doomed-2.0-py3-none-any.whl"]}
    assert app.get("/simple/doomed/", expect_errors=True).status_int == 404
    assert "doomed" not in app.get("/simple/").text and "kept" in app.get("/simple/").text
    assert services(app.app).access.grants_for("doomed") == []
    # The name is free again (anyone may create it), but a deleted filename never comes back with other bytes.
    other = build_wheel(dist_dir / "again", "doomed", "1.0", summary="other bytes")
    assert_error(upload_dist(app, creds(CAROL), other, "doomed", "1.0"), 400, "has already been used")
    upload_wheel(app, creds(CAROL), dist_dir, "doomed", "3.0")


def test_an_admin_deletes_an_archived_project(app: webtest.TestApp) -> None:
    call(app, "PUT", "/api/projects/doomed/status", creds(ADMIN), json={"status": "archived", "reason": "old"})
    assert call(app, "DELETE", "/api/projects/doomed", creds(ADMIN)).status_int == 200
    assert app.get("/api/projects/doomed", headers=creds(ADMIN), expect_errors=True).status_int == 404


def test_an_archived_project_without_files_is_deleted_and_leaves_the_index(app: webtest.TestApp) -> None:
    """Only its status kept it listed once its files were gone: deleted, it is unknown again."""
    call(app, "PUT", "/api/projects/doomed/status", creds(ADMIN), json={"status": "archived", "reason": "old"})
    for version in ("1.0", "2.0"):
        assert call(app, "DELETE", f"/api/projects/doomed/versions/{version}", creds(ADMIN)).status_int == 200
    assert "doomed" in app.get("/simple/").text  # the status keeps the empty project
    assert call(app, "DELETE", "/api/projects/doomed", creds(ADMIN)).json == {"deleted": "Doomed", "files": []}
    assert app.get("/api/projects/doomed", headers=creds(ADMIN), expect_errors=True).status_int == 404
    assert app.get("/simple/doomed/", expect_errors=True).status_int == 404
    assert "doomed" not in app.get("/simple/").text and "kept" in app.get("/simple/").text


def _logged_in(app: webtest.TestApp, user: str) -> webtest.TestApp:
    browser = webtest.TestApp(app.app)
    ui_login(browser, user)
    return browser


def test_the_ui_deletes_a_project_once_its_name_is_typed(app: webtest.TestApp) -> None:
    assert 'id="delete-project-form"' not in _logged_in(app, CAROL).get("/ui/projects/doomed").text
    browser = _logged_in(app, BOB)
    form = browser.get("/ui/projects/doomed").forms["delete-project-form"]
    form["confirm_name"] = "kept"
    refused = form.submit()
    assert refused.location.endswith("/ui/projects/doomed")
    assert "Type the project&#39;s name, doomed, to confirm deleting it." in refused.follow().text
    form["confirm_name"] = "Doomed"
    answer = form.submit()
    assert answer.location.endswith("/ui/")
    assert "Deleted the project Doomed (2 files)." in answer.follow().text
    assert app.get("/simple/doomed/", expect_errors=True).status_int == 404


def test_an_archived_project_offers_no_upload_form(app: webtest.TestApp) -> None:
    browser = _logged_in(app, BOB)
    assert 'id="upload-form"' in browser.get("/ui/projects/doomed").text
    call(app, "PUT", "/api/projects/doomed/status", creds(ADMIN), json={"status": "archived"})
    page = browser.get("/ui/projects/doomed").text
    assert 'id="upload-form"' not in page and re.search(r'id="project-status">archived<', page)


def test_an_empty_archived_project_made_active_again_leaves_the_index(app: webtest.TestApp) -> None:
    """The API answers the status set; the UI says where the project went, and shows the list, not a 404."""
    for project in ("doomed", "kept"):
        call(app, "PUT", f"/api/projects/{project}/status", creds(ADMIN), json={"status": "archived"})
    for version in ("1.0", "2.0"):
        call(app, "DELETE", f"/api/projects/doomed/versions/{version}", creds(ADMIN))
    call(app, "DELETE", "/api/projects/kept/versions/1.0", creds(ADMIN))
    answer = call(app, "PUT", "/api/projects/doomed/status", creds(ADMIN), json={"status": "active"})
    assert answer.json == {"name": "doomed", "status": "active", "status_reason": None}
    assert app.get("/simple/doomed/", expect_errors=True).status_int == 404
    form = _logged_in(app, ADMIN).get("/ui/projects/kept").forms["status-form"]
    form["status"] = "active"
    moved = form.submit()
    assert moved.location.endswith("/ui/")
    assert "Status of kept is now active. It has no files, so it left the index." in moved.follow().text
    assert app.get("/simple/kept/", expect_errors=True).status_int == 404
