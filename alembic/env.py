"""Alembic environment for the SQL database: the URL comes from pypicloud_lite.config, never from pyramid."""

from __future__ import annotations

import logging.config

from alembic import context
from sqlalchemy import Connection

from pypicloud_lite.config import load_ini
from pypicloud_lite.db.engine import create_db_engine
from pypicloud_lite.db.migrate import target_metadata as full_metadata

config = context.config
target_metadata = full_metadata()

if config.config_file_name and not config.attributes.get("connection"):
    logging.config.fileConfig(config.config_file_name, disable_existing_loggers=False)


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    ini = context.get_x_argument(as_dictionary=True).get("ini")
    if not ini:
        raise SystemExit("usage: alembic -x ini=<your app ini> upgrade head")
    engine = create_db_engine(load_ini(ini).cache)
    with engine.connect() as conn:
        _run(conn)
        conn.commit()
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run against the database")
run_migrations_online()
