"""Helpers of the ownership tests (tests/web/test_owners.py, tests/scripts/test_assign_owners.py, the migration's):
an app with the shipped defaults on the SQL access backend, its users, grants as the API shows them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import webtest

from pypicloud_lite.models import Grant
from pypicloud_lite.service import PackageIndex
from pypicloud_lite.storage.base import Storage
from tests.support.apiutil import ADMIN, BOB, CAROL, PASSWORD, creds, running, sql_settings
from tests.support.common import services
from tests.support.distbuilder import build_wheel
from tests.support.reload import key_of, put_raw

DAVE = "dave"

# What development.ini and ppc-make-config ship: everyone reads, any logged-in user may write (create).
SHIPPED_DEFAULTS = {"pypi.default_read": "everyone", "pypi.default_write": "authenticated"}


@contextmanager
def shipped_app(raw_settings: dict[str, Any], **overrides: str) -> Iterator[webtest.TestApp]:
    """The SQL access backend with the shipped defaults, an admin and three users (all with PASSWORD)."""
    with running({**sql_settings(raw_settings), **SHIPPED_DEFAULTS, **overrides}) as testapp:
        access = services(testapp.app).access
        access.create_user(ADMIN, PASSWORD, is_admin=True)
        for name in (BOB, CAROL, DAVE):
            access.create_user(name, PASSWORD)
        yield testapp


def grants_json(testapp: webtest.TestApp, project: str, headers: dict[str, str] | None = None) -> list[dict[str, str]]:
    """The grants on `project` as GET /api/projects/<project>/grants lists them (to an admin by default)."""
    resp = testapp.get(f"/api/projects/{project}/grants", headers=headers or creds(ADMIN))
    return sorted(resp.json["grants"], key=lambda g: (g["kind"], g["name"]))


def owner_grant(project: str, name: str) -> dict[str, str]:
    return {"project": project, "kind": "user", "name": name, "perms": "rwdo"}


def grant_tuples(grants: list[Grant]) -> set[tuple[str, str, str, str]]:
    return {(g.project, g.kind, g.name, g.perms) for g in grants}


def found_by_reload(index: PackageIndex, storage: Storage, dist_dir: Path, name: str, version: str) -> Path:
    """A project that appears in storage behind the index's back and is indexed by a reload: nobody owns it."""
    wheel = build_wheel(dist_dir, name, version)
    put_raw(storage, key_of(wheel), wheel.read_bytes())
    index.begin_reload().execute()
    return wheel


def ui_login(testapp: webtest.TestApp, user: str, password: str = PASSWORD) -> None:
    form = testapp.get("/ui/login").forms["login-form"]
    form["username"], form["password"] = user, password
    assert form.submit().status_int == 303
