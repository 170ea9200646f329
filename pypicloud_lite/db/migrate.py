"""The SQL schema's history (alembic/): bring a database to head, or check that it is there."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, MetaData
from sqlalchemy.exc import DBAPIError

from pypicloud_lite.db.engine import write_engine
from pypicloud_lite.db.tables import Base
from pypicloud_lite.errors import BackendUnavailable, ConfigError

# An installed wheel carries alembic/ as pypicloud_lite/db/migrations (setup.py maps it there);
# a checkout (and an editable install) keeps it at the top of the repository, beside alembic.ini.
_PACKAGED = Path(__file__).with_name("migrations")
_REPOSITORY = Path(__file__).resolve().parents[2]


def migrations_dir() -> Path:
    """Where the schema history is; ConfigError rather than a database left without a schema."""
    if (_PACKAGED / "env.py").is_file():
        return _PACKAGED
    # Only a checkout has alembic.ini beside alembic/ (in site-packages, alembic/ is the library itself).
    if (_REPOSITORY / "alembic.ini").is_file() and (_REPOSITORY / "alembic" / "env.py").is_file():
        return _REPOSITORY / "alembic"
    raise ConfigError(f"the SQL schema history is missing: {_PACKAGED} holds no alembic env.py (a broken install?)")


def target_metadata() -> MetaData:
    """Every table the SQL database holds (db/tables.py defines them all)."""
    return Base.metadata


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
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


def prepare(engine: Engine, migrate_on_start: bool, what: str) -> None:
    """At start-up: migrate to head (`cache.migrate_on_start`) or refuse a database that is not at head.

    `what` names the database in the error an unreachable server gives the operator.
    """
    try:
        if migrate_on_start:
            upgrade(engine)
        else:
            require_head(engine)
    except DBAPIError as exc:
        engine.dispose()
        # At start-up the reason goes to the operator (request-time errors never show it).
        reason = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else exc.orig.__class__.__name__
        raise BackendUnavailable(f"The {what} is unavailable at start: {reason}") from exc
