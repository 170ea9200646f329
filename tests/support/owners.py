"""Helpers of the ownership tests (tests/web/test_owners.py, tests/scripts/test_assign_owners.py, the migration's):
an app with the shipped defaults on the SQL access backend, its users, grants as the API shows them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import webtest
from packaging.utils import canonicalize_version
from sqlalchemy import Engine, insert, inspect, select

from pypicloud_lite.db.tables import FileRow, GrantRow, ProjectRow, UserRow
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


# -- databases from before owners (schema revision 0005) ------------------------------------

EPOCH = datetime(2026, 1, 1)


@dataclass(frozen=True)
class OldFile:
    """A file row as an index before owners held it: who uploaded it (None: a reload found it), and when."""

    project: str
    version: str
    uploader: str | None
    minutes: int  # after EPOCH


def seed_old_index(
    engine: Engine, files: list[OldFile], users: list[str], grants: list[tuple[str, str, str, str]]
) -> None:
    """Projects, files, users and grants written straight into the tables, as an older release left them.

    At revision 0007 or later the files also get the release they belong to (a column 0007 added).
    """
    with engine.begin() as conn:
        knows_releases = "canonical_version" in {c["name"] for c in inspect(conn).get_columns("ppc_files")}
        for project in sorted({f.project for f in files}):
            conn.execute(insert(ProjectRow).values(name=project, display_name=project, serial=1, created=EPOCH))
        for f in files:
            conn.execute(
                insert(FileRow).values(
                    filename=f"{f.project}-{f.version}-py3-none-any.whl",
                    project=f.project,
                    version=f.version,
                    packagetype="bdist_wheel",
                    python_version="py3",
                    size=1,
                    upload_time=EPOCH + timedelta(minutes=f.minutes),
                    uploader=f.uploader,
                    **({"canonical_version": canonicalize_version(f.version)} if knows_releases else {}),
                )
            )
        for name in users:
            conn.execute(insert(UserRow).values(name=name, password_hash="x", is_admin=False, created=EPOCH))
        for project, kind, name, perms in grants:
            conn.execute(insert(GrantRow).values(project=project, kind=kind, name=name, perms=perms))


def grant_rows(engine: Engine) -> set[tuple[str, str, str, str]]:
    with engine.connect() as conn:
        return {
            tuple(row) for row in conn.execute(select(GrantRow.project, GrantRow.kind, GrantRow.name, GrantRow.perms))
        }


# Before owners: who uploaded what, and the grants an admin had set. bob and alice are users; ghost was deleted.
OLD_USERS = ["alice", "bob"]
OLD_FILES = [
    OldFile("first-wins", "0.9", None, 0),  # a reload found it: unknown uploader, not the owner
    OldFile("first-wins", "1.0", "bob", 1),
    OldFile("first-wins", "2.0", "alice", 2),
    OldFile("kept", "1.0", "bob", 3),
    OldFile("read-granted", "1.0", "alice", 4),
    OldFile("public", "1.0", "bob", 5),
    OldFile("ghosted", "1.0", "ghost", 6),
    OldFile("ghosted", "2.0", "alice", 7),
    OldFile("found", "1.0", None, 8),
]
OLD_GRANTS = [
    ("kept", "user", "alice", "rw"),  # a maintainer already: nobody is added
    ("read-granted", "user", "alice", "r"),  # the uploader's read grant becomes an owner's
    ("public", "group", "everyone", "r"),
]
# What the migration (and ppc-assign-owners) leaves: the earliest known uploader owns each project nobody
# kept, unless that uploader is no longer a user; `found` has no known uploader.
OWNED_GRANTS = {
    *OLD_GRANTS[:1],
    ("public", "group", "everyone", "r"),
    ("first-wins", "user", "bob", "rwdo"),
    ("read-granted", "user", "alice", "rwdo"),
    ("public", "user", "bob", "rwdo"),
}
