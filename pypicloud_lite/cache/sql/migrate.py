"""Alembic helpers: bring the SQL cache schema to head, or check that it is there."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, MetaData

from pypicloud_lite.cache.sql.engine import write_engine
from pypicloud_lite.cache.sql.tables import Base
from pypicloud_lite.errors import ConfigError

# The schema history lives at the top of the source tree (alembic/, beside alembic.ini);
# `migrations` links to it so that wheels carry it as package data.
ALEMBIC_DIR = Path(__file__).parent / "migrations"


def target_metadata() -> MetaData:
    """Every table the SQL database holds: the cache's and the SQL access backend's."""
    import pypicloud_lite.access.sql  # noqa: F401 - registers the access tables on Base.metadata

    return Base.metadata


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(ALEMBIC_DIR))
    return cfg


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    cfg = alembic_config()
    # On SQLite this takes the write lock first, so servers starting together migrate one at a time.
    with write_engine(engine).begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def require_head(engine: Engine) -> None:
    current, head = current_revision(engine), head_revision()
    if current != head:
        raise ConfigError(
            f"setting 'cache.url': the SQL cache schema is at revision {current or 'none'}, "
            f"expected {head}; run `ppc-migrate <ini>` (alembic upgrade head) or set cache.migrate_on_start = true"
        )
