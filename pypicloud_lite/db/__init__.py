"""The SQL database: engines, every table, and the schema's migrations; the SQL cache and SQL access use it."""

from __future__ import annotations

from pypicloud_lite.db.engine import create_db_engine, transaction, write_engine

# The schema's migrations are in pypicloud_lite.db.migrate, imported where they are used (it imports alembic).
__all__ = ["create_db_engine", "transaction", "write_engine"]
