"""SQLCache: the metadata cache in SQL through SQLAlchemy 2 (SQLite, PostgreSQL, MySQL/MariaDB)."""

from __future__ import annotations

from pypicloud_lite.cache.sql.cache import SQLCache

__all__ = ["SQLCache"]
