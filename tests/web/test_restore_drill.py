"""The restore drill of the README: the access data backed up with SQLite's online backup, the database lost,
the backup restored, the cache reloaded from storage: every page as before the loss (changes made after the
backup included, since storage holds them), the same users log in and upload, their grants and tokens hold."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
import webtest

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
from tests.support.common import services
from tests.support.index_driver import IndexDriver
from tests.support.served_pages import assert_same_pages, served_pages
from tests.support.settings import NO_UPLOADER, server_settings

pytestmark = pytest.mark.usefixtures("cheap_hashing")

LAYOUTS = ("one database", "separate access database")


def sqlite_backup(source: Path, target: Path) -> None:
    """What the README says: Python's sqlite3 online backup (`sqlite3 DB ".backup FILE"` from a shell)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()


def lose(database: Path) -> None:
    """The database file is gone, with its WAL and shared-memory files."""
    for suffix in ("", "-wal", "-shm"):
        database.with_name(database.name + suffix).unlink(missing_ok=True)


def access_data(app: webtest.TestApp, admin: dict[str, str]) -> dict[str, Any]:
    """Users, groups, each project's grants and every token, as the API lists them."""
    grants = {p: app.get(f"/api/projects/{p}/grants", headers=admin).json for p in ("foo-bar", "baz-qux")}
    return {
        "users": app.get("/api/users", headers=admin).json,
        "groups": app.get("/api/groups", headers=admin).json,
        "grants": grants,
        "tokens": app.get("/api/tokens", params={"all": "1"}, headers=admin).json,
    }


@pytest.mark.parametrize("layout", LAYOUTS)
def test_restore_drill_brings_back_access_and_every_page(layout: str, tmp_path: Path) -> None:
    root = tmp_path / "server"
    separate = layout == "separate access database"
    access_db = root / ("access.sqlite" if separate else "cache.sqlite")
    raw = server_settings(root, {**NO_UPLOADER, "auth.backend": "sql", "pypi.default_write": ""})
    if separate:
        raw["auth.url"] = f"sqlite:///{access_db}"
    backup = tmp_path / "backups" / "access.sqlite"
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
        assert upload("Foo.Bar", "1.1", creds(BOB)) == 200
        assert upload("baz_qux", "1.1", creds(CAROL), "sdist") == 200
        assert driver.yank("foo-bar", "1.0.0", "Broken build: use 1.1") == 200
        assert driver.set_status("baz-qux", "deprecated", "Use foo-bar instead") == 200
        access_before = access_data(app, admin)

        # The nightly backup, taken while the server runs.
        sqlite_backup(access_db, backup)

        # Changes after the backup: the backup does not have them, storage does.
        assert upload("Foo.Bar", "1.2", token_auth(secret)) == 200
        assert driver.yank("baz-qux", "1.1", "late reason") == 200
        assert driver.unyank("foo-bar", "1.0") == 200
        assert driver.set_status("foo-bar", "deprecated", "Moved to foo-bar-ng") == 200
        assert driver.delete_file("baz-qux", "baz_qux-1.0-py3-none-any.whl") == 200
        expected = served_pages(app, admin)

    lose(root / "cache.sqlite")
    lose(access_db)
    sqlite_backup(backup, access_db)  # the restore: the backup copied into a new database file

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
