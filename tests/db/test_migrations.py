"""The SQL cache schema history: upgrade, downgrade, the head check, and models that match the migrations."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, select

from pypicloud_lite.access.base import OWNER_PERMS
from pypicloud_lite.cache.sql import SQLCache
from pypicloud_lite.db import migrate
from pypicloud_lite.db.engine import create_db_engine
from pypicloud_lite.db.tables import GrantRow, IndexStateRow
from pypicloud_lite.errors import ConfigError
from tests.support.cache import SQL_BACKENDS, cache_settings, fresh_database
from tests.support.owners import OLD_FILES, OLD_GRANTS, OLD_USERS, OWNED_GRANTS, grant_rows, seed_old_index

PPC_TABLES = {"ppc_index_state", "ppc_projects", "ppc_files"}


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
    assert _tables(engine) >= PPC_TABLES
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
    config = migrate.alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "base")
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
    config = migrate.alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0005")
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
