"""The restore drill of the README: the access data backed up (SQLite's online backup, pg_dump, mysqldump), the
database lost, the backup restored, the cache reloaded from storage: every page as before the loss (changes made
after the backup included, since storage holds them), the same users log in and upload, grants and tokens hold."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import webtest

from tests.support.access_backup import AccessBackup
from tests.support.apiutil import (
    ADMIN,
    BOB,
    CAROL,
    PASSWORD,
    call,
    creds,
    running,
    token_auth,
)
from tests.support.cache import fresh_database
from tests.support.common import services
from tests.support.index_driver import IndexDriver
from tests.support.served_pages import assert_same_pages, served_pages
from tests.support.settings import NO_UPLOADER, server_settings

pytestmark = pytest.mark.usefixtures("cheap_hashing")

# (the cache's database, whether the access tables have a database of their own)
LAYOUTS = {
    "sqlite, one database": ("sqlite", False),
    "sqlite, separate access database": ("sqlite", True),
    "postgresql, one database": ("postgresql", False),
    "mariadb, one database": ("mariadb", False),
}


def access_data(app: webtest.TestApp, admin: dict[str, str]) -> dict[str, Any]:
    """Users, groups, each project's grants and trusted publishers, and every token, as the API lists them."""
    grants = {p: app.get(f"/api/projects/{p}/grants", headers=admin).json for p in ("foo-bar", "baz-qux")}
    return {
        "publishers": app.get("/api/projects/foo-bar/publishers", headers=admin).json,
        "users": app.get("/api/users", headers=admin).json,
        "groups": app.get("/api/groups", headers=admin).json,
        "grants": grants,
        "tokens": app.get("/api/tokens", params={"all": "1"}, headers=admin).json,
    }


@pytest.mark.parametrize("layout", LAYOUTS)
def test_restore_drill_brings_back_access_and_every_page(layout: str, tmp_path: Path) -> None:
    backend, separate = LAYOUTS[layout]
    with fresh_database(backend, tmp_path) as url:
        root = tmp_path / "server"
        raw = server_settings(root, {**NO_UPLOADER, "cache.url": url, "auth.backend": "sql", "pypi.default_write": ""})
        access = AccessBackup(url, tmp_path / "backups" / "access.dump")
        if separate:
            access = AccessBackup(f"sqlite:///{root / 'access.sqlite'}", access.file)
            raw["auth.url"] = access.url
        run_drill(raw, access, tmp_path, layout)


def run_drill(raw: dict[str, str], access: AccessBackup, tmp_path: Path, layout: str) -> None:
    admin = creds(ADMIN)

    with running(raw) as app:
        services(app.app).access.create_user(ADMIN, PASSWORD, is_admin=True)
        driver = IndexDriver(app, admin, tmp_path / "dists")

        def upload(name: str, version: str, headers: dict[str, str], kind: str = "wheel") -> int:
            return driver.upload(driver.build(name, version, kind), name, version, headers)

        for user in (BOB, CAROL):
            assert call(app, "POST", "/api/users", admin, json={"name": user, "password": PASSWORD}).status_int == 201
        assert call(app, "PUT", "/api/groups/team", admin, json={"members": [CAROL]}).status_int == 200
        assert upload("Foo.Bar", "1.0", admin) == 200
        assert upload("Foo.Bar", "1.0", admin, "sdist") == 200
        assert upload("baz_qux", "1.0", admin) == 200
        assert call(app, "PUT", "/api/projects/foo-bar/grants/user/bob", admin, json={"perms": "rw"}).status_int == 200
        assert (
            call(app, "PUT", "/api/projects/baz-qux/grants/group/team", admin, json={"perms": "rw"}).status_int == 200
        )
        token = call(app, "POST", "/api/tokens", creds(BOB), json={"projects": ["foo-bar"], "description": "ci"})
        assert token.status_int == 201, token.body
        secret = token.json["token"]
        publisher = {"kind": "github", "repository": "acme/foo-bar", "workflow": "release.yml"}
        assert call(app, "POST", "/api/projects/foo-bar/publishers", admin, json=publisher).status_int == 201
        assert upload("Foo.Bar", "1.1", creds(BOB)) == 200
        assert upload("baz_qux", "1.1", creds(CAROL), "sdist") == 200
        assert driver.yank("foo-bar", "1.0.0", "Broken build: use 1.1") == 200
        assert driver.set_status("baz-qux", "deprecated", "Use foo-bar instead") == 200
        access_before = access_data(app, admin)

        # The nightly backup, taken while the server runs.
        access.backup()

        # Changes after the backup: the backup does not have them, storage does.
        assert upload("Foo.Bar", "1.2", token_auth(secret)) == 200
        assert driver.yank("baz-qux", "1.1", "late reason") == 200
        assert driver.unyank("foo-bar", "1.0") == 200
        assert driver.set_status("foo-bar", "deprecated", "Moved to foo-bar-ng") == 200
        assert driver.delete_file("baz-qux", "baz_qux-1.0-py3-none-any.whl") == 200
        expected = served_pages(app, admin)

    # The database is lost (and a separate cache database with it): a new empty one, the backup restored into it.
    access.lose()
    if access.url != raw["cache.url"]:
        AccessBackup(raw["cache.url"], access.file).lose()
    if access.restore_needs_schema:
        with running(raw):  # `ppc-migrate`: the server brings the empty database to the schema's head
            pass
    access.restore()

    with running(raw) as app:
        result = IndexDriver(app, admin, tmp_path / "unused").reload()
        assert result.get("failed", 0) == 0, result
        actual = served_pages(app, admin)
        # Access: the same users, groups, grants and tokens, and they work.
        assert access_data(app, admin) == access_before, "the restored access data differ from the backed-up ones"
        assert app.get(f"/api/users/{BOB}", headers=creds(BOB)).json["name"] == BOB
        driver = IndexDriver(app, admin, tmp_path / "dists-after")
        assert driver.upload(driver.build("Foo.Bar", "3.0"), "Foo.Bar", "3.0", creds(BOB)) == 200
        assert driver.upload(driver.build("baz_qux", "3.0"), "baz_qux", "3.0", creds(BOB)) == 403, "bob: no grant"
        assert driver.upload(driver.build("baz_qux", "3.1"), "baz_qux", "3.1", creds(CAROL)) == 200, "group grant"
        assert driver.upload(driver.build("Foo.Bar", "3.1"), "Foo.Bar", "3.1", token_auth(secret)) == 200
        assert driver.upload(driver.build("baz_qux", "3.2"), "baz_qux", "3.2", token_auth(secret)) == 403
    assert_same_pages(
        expected, actual, f"{layout}: restored from the backup and reloaded, against the pages before the loss"
    )
