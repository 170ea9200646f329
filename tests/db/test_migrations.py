"""The SQL cache schema history: upgrade, downgrade, the head check, and models that match the migrations."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import JSON, Boolean, DateTime, Engine, column, insert, inspect, select, table

from pypicloud_lite.access.base import OWNER_PERMS
from pypicloud_lite.cache.sql import SQLCache
from pypicloud_lite.db import migrate
from pypicloud_lite.db.engine import create_db_engine
from pypicloud_lite.db.tables import FileRow, GrantRow, IndexStateRow
from pypicloud_lite.errors import ConfigError
from pypicloud_lite.models import SetYanked
from tests.support.access_backup import ACCESS_TABLES as BACKED_UP_ACCESS_TABLES
from tests.support.cache import SQL_BACKENDS, cache_settings, fresh_database
from tests.support.owners import EPOCH, OLD_FILES, OLD_GRANTS, OLD_USERS, OWNED_GRANTS, grant_rows, seed_old_index

PPC_TABLES = {"ppc_index_state", "ppc_projects", "ppc_files"}
ACCESS_TABLES = set(BACKED_UP_ACCESS_TABLES)


@pytest.fixture(params=SQL_BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    built = create_db_engine(cache_settings(database_url))
    try:
        yield built
    finally:
        built.dispose()


def _tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def test_there_is_one_head() -> None:
    script = ScriptDirectory.from_config(migrate.alembic_config())
    assert len(script.get_heads()) == 1
    assert migrate.head_revision() == script.get_current_head()


def test_upgrade_head_from_empty(engine: Engine) -> None:
    assert migrate.current_revision(engine) is None
    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.head_revision()
    assert _tables(engine) >= PPC_TABLES | ACCESS_TABLES
    with engine.connect() as conn:
        assert conn.execute(select(IndexStateRow.id, IndexStateRow.serial)).all() == [(1, 0)]
    migrate.require_head(engine)


def test_upgrade_twice_changes_nothing(engine: Engine) -> None:
    migrate.upgrade(engine)
    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.head_revision()
    with engine.connect() as conn:
        assert conn.execute(select(IndexStateRow.id, IndexStateRow.serial)).all() == [(1, 0)]


def test_require_head_refuses_an_empty_database(engine: Engine) -> None:
    with pytest.raises(ConfigError, match=r"cache\.url") as excinfo:
        migrate.require_head(engine)
    assert "ppc-migrate" in excinfo.value.message
    assert _tables(engine) & PPC_TABLES == set()


def test_cache_without_migrate_on_start_refuses_an_empty_database(database_url: str) -> None:
    with pytest.raises(ConfigError, match=r"cache\.url"):
        SQLCache.from_settings(cache_settings(database_url, migrate_on_start=False))


def test_cache_without_migrate_on_start_opens_a_migrated_database(database_url: str) -> None:
    SQLCache.from_settings(cache_settings(database_url, migrate_on_start=True)).close()
    cache = SQLCache.from_settings(cache_settings(database_url, migrate_on_start=False))
    try:
        assert cache.serial() == 0
    finally:
        cache.close()


def test_models_and_migrations_agree(engine: Engine) -> None:
    migrate.upgrade(engine)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
        # Every table the migrations create: the cache's and the SQL access backend's.
        differences = compare_metadata(context, migrate.target_metadata())
    assert differences == []


def test_downgrade_to_base_removes_the_schema(engine: Engine) -> None:
    migrate.upgrade(engine)
    downgrade(engine, "base")
    assert migrate.current_revision(engine) is None
    assert _tables(engine) & PPC_TABLES == set()
    migrate.upgrade(engine)  # and back up again from base
    assert migrate.current_revision(engine) == migrate.head_revision()


def test_0006_gives_each_project_its_earliest_known_uploader_as_owner(engine: Engine) -> None:
    migrate.upgrade(engine, "0005")
    seed_old_index(engine, OLD_FILES, OLD_USERS, OLD_GRANTS)
    migrate.upgrade(engine)
    assert grant_rows(engine) == OWNED_GRANTS
    # Down and up again: the owner grants stay, and nobody gets a second one.
    downgrade(engine, "0005")
    migrate.upgrade(engine)
    assert grant_rows(engine) == OWNED_GRANTS


def test_0006_grants_nothing_without_users(engine: Engine) -> None:
    # A cache database whose access backend is static (or elsewhere): no users, so no owners here.
    migrate.upgrade(engine, "0005")
    seed_old_index(engine, OLD_FILES, [], [])
    migrate.upgrade(engine)
    assert grant_rows(engine) == set()


def test_the_grants_table_holds_an_owners_perms() -> None:
    assert GrantRow.__table__.c.perms.type.length >= len(OWNER_PERMS)


def test_release_versions_are_filled_in_for_existing_rows(engine: Engine) -> None:
    # Rows written at 0005, before files knew their release: more of them than one fill-in batch takes.
    migrate.upgrade(engine, "0005")
    projects = table("ppc_projects", column("name"), column("display_name"), column("serial"), column("created"))
    files = table(
        "ppc_files",
        *(column(name) for name in ("filename", "project", "version", "packagetype", "python_version", "size")),
        *(column(name) for name in ("sha256", "upload_time", "yanked")),
    )
    spelled = {"1.0": "1", "1.0.0": "1", "1.0.0.0": "1", "2.0rc1": "2rc1", "1.0+ABC": "1+abc", "0!3.10.0": "3.10"}
    versions = {f"demo-{v}.tar.gz": v for v in spelled} | {f"demo-9.{n}.tar.gz": f"9.{n}" for n in range(2100)}
    common = {"project": "demo", "packagetype": "sdist", "python_version": "source", "size": 1, "sha256": "a" * 64}
    now = datetime(2026, 1, 1)
    with engine.begin() as conn:
        conn.execute(insert(projects), [{"name": "demo", "display_name": "demo", "serial": 1, "created": now}])
        rows = [
            {"filename": f, "version": v, "upload_time": now, "yanked": False, **common} for f, v in versions.items()
        ]
        conn.execute(insert(files), rows)

    migrate.upgrade(engine)

    with engine.connect() as conn:
        stored = dict(conn.execute(select(FileRow.filename, FileRow.canonical_version)).all())
    assert {f"demo-{v}.tar.gz": stored[f"demo-{v}.tar.gz"] for v in spelled} == {
        f"demo-{v}.tar.gz": canonical for v, canonical in spelled.items()
    }
    assert len(stored) == len(versions)
    assert all(stored[f"demo-9.{n}.tar.gz"] == f"9.{n}" for n in range(1, 2100))
    assert stored["demo-9.0.tar.gz"] == "9"
    cache = SQLCache(engine)
    try:
        assert cache.apply(SetYanked("demo", "1.0.0", True, "r")).count == 3
        yanked = sorted(f.filename for f in cache.project_files("demo") if f.yanked)
    finally:
        cache.close()
    assert yanked == ["demo-1.0.0.0.tar.gz", "demo-1.0.0.tar.gz", "demo-1.0.tar.gz"]


def test_0008_adds_the_namespaces_table_and_takes_it_away(engine: Engine) -> None:
    migrate.upgrade(engine, "0007")
    assert "ppc_namespaces" not in _tables(engine)
    seed_old_index(engine, OLD_FILES, OLD_USERS, OLD_GRANTS)
    migrate.upgrade(engine, "0008")
    assert migrate.current_revision(engine) == "0008"
    grants = grant_rows(engine)
    assert grants
    namespaces = table(
        "ppc_namespaces", column("name"), column("display_name"), column("kind"), column("owner"), column("created")
    )
    with engine.begin() as conn:
        conn.execute(
            insert(namespaces),
            [{"name": "corp", "display_name": "Corp", "kind": "user", "owner": OLD_USERS[0], "created": EPOCH}],
        )
        assert conn.execute(select(namespaces.c.name, namespaces.c.display_name)).all() == [("corp", "Corp")]
    downgrade(engine, "0007")
    assert "ppc_namespaces" not in _tables(engine)
    # The rest of the access database is left as it was.
    assert grant_rows(engine) == grants


def test_0009_adds_publishers_and_the_tokens_publisher_and_takes_them_away(engine: Engine) -> None:
    migrate.upgrade(engine, "0008")
    seed_old_index(engine, OLD_FILES, OLD_USERS, OLD_GRANTS)
    old_tokens = table(
        "ppc_tokens",
        column("id"),
        column("username"),
        column("secret_hash"),
        column("description"),
        column("read_only", Boolean),
        column("created", DateTime),
    )
    token = {"id": "0123456789abcdef", "username": OLD_USERS[0], "secret_hash": "0" * 64, "description": "ci"}
    with engine.begin() as conn:
        conn.execute(insert(old_tokens), [{**token, "read_only": False, "created": EPOCH}])
    migrate.upgrade(engine, "0009")
    assert migrate.current_revision(engine) == "0009"
    publishers = table(
        "ppc_publishers",
        column("id"),
        column("project"),
        column("kind"),
        column("config", JSON),
        column("added_by"),
        column("created", DateTime),
    )
    tokens = table("ppc_tokens", column("id"), column("publisher"))
    publisher = {"id": "p1", "project": "demo", "kind": "github", "config": {"repository": "a/b"}}
    with engine.begin() as conn:
        conn.execute(insert(publishers), [{**publisher, "added_by": OLD_USERS[0], "created": EPOCH}])
        assert conn.execute(select(publishers.c.config)).scalar_one() == {"repository": "a/b"}
        assert conn.execute(select(tokens.c.id, tokens.c.publisher)).all() == [("0123456789abcdef", None)]
    downgrade(engine, "0008")
    assert "ppc_publishers" not in _tables(engine)
    assert "publisher" not in {c["name"] for c in inspect(engine).get_columns("ppc_tokens")}
    with engine.connect() as conn:
        assert conn.execute(select(old_tokens.c.id, old_tokens.c.description)).all() == [("0123456789abcdef", "ci")]


def test_0011_adds_download_counts_and_takes_them_away(engine: Engine) -> None:
    migrate.upgrade(engine, "0010")
    migrate.upgrade(engine, "0011")
    counts = table("ppc_download_counts", column("project"), column("filename"), column("count"))
    with engine.begin() as conn:
        conn.execute(insert(counts), [{"project": "demo", "filename": "demo-1.0.tar.gz", "count": 2**40}])
        assert conn.execute(select(counts.c.count)).scalar_one() == 2**40
    downgrade(engine, "0010")
    assert "ppc_download_counts" not in _tables(engine)


def test_0010_adds_the_audit_table_and_takes_it_away(engine: Engine) -> None:
    migrate.upgrade(engine, "0009")
    seed_old_index(engine, OLD_FILES, OLD_USERS, OLD_GRANTS)
    grants = grant_rows(engine)
    migrate.upgrade(engine, "0010")
    audit = table("ppc_audit", column("id"), column("at", DateTime), column("action"), column("actor"))
    with engine.begin() as conn:
        conn.execute(insert(audit), [{"at": EPOCH, "action": "user.create", "actor": OLD_USERS[0]}])
        assert conn.execute(select(audit.c.id, audit.c.action)).all() == [(1, "user.create")]
    downgrade(engine, "0009")
    assert "ppc_audit" not in _tables(engine)
    assert grant_rows(engine) == grants


def downgrade(engine: Engine, revision: str) -> None:
    config = migrate.alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, revision)


def test_0012_adds_the_tokens_last_use_and_takes_it_away(engine: Engine) -> None:
    migrate.upgrade(engine)
    assert "last_used" in {c["name"] for c in inspect(engine).get_columns("ppc_tokens")}
    downgrade(engine, "0011")
    assert "last_used" not in {c["name"] for c in inspect(engine).get_columns("ppc_tokens")}
