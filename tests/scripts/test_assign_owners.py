"""ppc-assign-owners: the migration 0006's rule for a cache and an access database that are not one database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from pypicloud_lite.config import load_ini
from pypicloud_lite.db import migrate
from pypicloud_lite.db.engine import create_db_engine
from pypicloud_lite.scripts import assign_owners as cli
from tests.support.cache import cache_settings
from tests.support.owners import OLD_FILES, OLD_GRANTS, OLD_USERS, OWNED_GRANTS, grant_rows, seed_old_index

SPLIT_INI = """\
[app:main]
storage.dir = %(here)s/packages
cache.url = sqlite:///%(here)s/cache.sqlite
cache.migrate_on_start = true
auth.backend = sql
auth.url = sqlite:///%(here)s/access.sqlite
"""


def _migrated(url: str) -> Engine:
    engine = create_db_engine(cache_settings(url))
    migrate.upgrade(engine)
    return engine


@pytest.fixture
def ini(tmp_path: Path) -> Path:
    path = tmp_path / "server.ini"
    path.write_text(SPLIT_INI, encoding="utf-8")
    return path


@pytest.fixture
def access_db(ini: Path) -> Iterator[Engine]:
    """The old index: files (with uploaders) in the cache database, users and grants in the access database."""
    cache_engine = _migrated(f"sqlite:///{ini.parent / 'cache.sqlite'}")
    seed_old_index(cache_engine, OLD_FILES, [], [])
    cache_engine.dispose()
    engine = _migrated(f"sqlite:///{ini.parent / 'access.sqlite'}")
    seed_old_index(engine, [], OLD_USERS, OLD_GRANTS)
    yield engine
    engine.dispose()


def test_owners_are_assigned_once(ini: Path, access_db: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    # The migration ran on both databases, but neither holds both files and users: nobody owns anything yet.
    assert grant_rows(access_db) == set(OLD_GRANTS)
    assert cli.main([str(ini)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert grant_rows(access_db) == OWNED_GRANTS
    assert out == [
        "first-wins: bob owns it (earliest known uploader)",
        "found: left without an owner (no known uploader)",
        "ghosted: left without an owner (uploader 'ghost' is no longer a user)",
        "public: bob owns it (earliest known uploader)",
        "read-granted: alice owns it (earliest known uploader)",
        "3 owner grant(s) made; 2 project(s) left ownerless",
    ]
    # Idempotent: a second run finds only the projects it cannot give an owner.
    assert cli.main([str(ini)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "0 owner grant(s) made; 2 project(s) left ownerless"
    assert grant_rows(access_db) == OWNED_GRANTS


def test_a_dry_run_grants_nothing(ini: Path, access_db: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([str(ini), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "first-wins: bob would own it" in out
    assert "3 owner grant(s) to make" in out
    assert grant_rows(access_db) == set(OLD_GRANTS)


def test_the_static_backend_records_no_owners(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "static.ini"
    path.write_text(SPLIT_INI.replace("auth.backend = sql", "auth.backend = static"), encoding="utf-8")
    assert load_ini(path, environ={}).auth.backend == "static"
    assert cli.main([str(path)]) == 2
    assert "auth.backend is 'static'" in capsys.readouterr().err
