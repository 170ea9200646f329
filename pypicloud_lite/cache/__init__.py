"""Cache backends; build_cache picks one from the settings and imports it lazily."""

from __future__ import annotations

from dataclasses import replace

from pypicloud_lite.cache.base import Cache
from pypicloud_lite.config import CacheSettings

__all__ = ["Cache", "build_cache", "settings_elsewhere"]


def build_cache(settings: CacheSettings) -> Cache:
    cache = _build(settings)
    cache.built_from = settings
    return cache


def _build(settings: CacheSettings) -> Cache:
    if settings.backend == "sql":
        from pypicloud_lite.cache.sql import SQLCache

        return SQLCache.from_settings(settings)
    if settings.backend == "dynamo":
        from pypicloud_lite.cache.dynamo import DynamoCache

        return DynamoCache.from_settings(settings)
    raise ValueError(f"unknown cache backend {settings.backend!r}")


def settings_elsewhere(cache: Cache) -> CacheSettings | None:
    """Settings with which another process opens this very cache (None: it cannot, e.g. an in-memory SQLite).

    That process finds the database set up, as this one checked it at its start (no migration, no schema check, no
    table creation), and records purges as this one does.
    """
    settings = cache.built_from
    if settings is None:
        return None
    if settings.backend == "sql":
        # Here, not at the top: a process with a DynamoDB cache (the sync Lambda) never imports SQLAlchemy.
        from sqlalchemy.engine import make_url

        url = make_url(settings.url)
        database = url.database or ""
        if url.get_backend_name() == "sqlite" and (
            database in ("", ":memory:") or database.startswith("file::memory:") or url.query.get("mode") == "memory"
        ):
            return None
    dynamo = settings.dynamo and replace(settings.dynamo, create_tables=False)
    return replace(settings, migrate_on_start=False, check_schema=False, dynamo=dynamo, cdn_outbox=cache.cdn_outbox)
