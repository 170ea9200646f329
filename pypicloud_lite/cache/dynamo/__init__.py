"""DynamoCache: the metadata cache in DynamoDB through pynamodb (no SQLAlchemy import)."""

from __future__ import annotations

from pypicloud_lite.cache.dynamo.cache import DynamoCache

__all__ = ["DynamoCache"]
