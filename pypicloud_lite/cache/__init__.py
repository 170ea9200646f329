"""Cache backends; build_cache picks one from the settings and imports it lazily."""

from __future__ import annotations

from pypicloud_lite.cache.base import Cache
from pypicloud_lite.config import CacheSettings

__all__ = ["Cache", "build_cache"]


def build_cache(settings: CacheSettings) -> Cache:
    if settings.backend == "sql":
        from pypicloud_lite.cache.sql import SQLCache

        return SQLCache.from_settings(settings)
    if settings.backend == "dynamo":
        from pypicloud_lite.cache.dynamo import DynamoCache

        return DynamoCache.from_settings(settings)
    raise ValueError(f"unknown cache backend {settings.backend!r}")
