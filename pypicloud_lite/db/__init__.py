"""The SQL database: engines, every table, and the schema's migrations; the SQL cache and SQL access use it."""

from __future__ import annotations

from pypicloud_lite.db.engine import create_db_engine, transaction, write_engine
from pypicloud_lite.db.migrate import prepare, require_head, upgrade

__all__ = ["create_db_engine", "prepare", "require_head", "transaction", "upgrade", "write_engine"]
