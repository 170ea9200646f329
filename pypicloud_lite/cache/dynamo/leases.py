"""Leases (the reload's, the CDN window's) as conditional writes on the meta table's `lock#<name>` items."""

from __future__ import annotations

import time

from pynamodb.exceptions import PynamoDBException

from pypicloud_lite.cache.base import Leases
from pypicloud_lite.cache.dynamo.items import condition_failed, translated
from pypicloud_lite.cache.dynamo.tables import DynamoTables


class DynamoLeases(Leases):
    """A lease is held while its item names the holder and has not expired; progress rides along."""

    t: DynamoTables

    @translated
    def acquire_lock(self, name: str, holder: str, ttl: float) -> bool:
        m = self.t.meta
        now = time.time()
        lease = m(f"lock#{name}", holder=holder, expires=now + ttl, progress=None)
        try:
            lease.save(condition=m.name.does_not_exist() | (m.expires < now) | (m.holder == holder))
        except PynamoDBException as exc:
            if condition_failed(exc):
                return False
            raise
        return True

    @translated
    def update_lock(self, name: str, holder: str, ttl: float, progress: dict[str, object]) -> bool:
        m = self.t.meta
        try:
            m(f"lock#{name}").update(
                actions=[m.expires.set(time.time() + ttl), m.progress.set(progress)], condition=m.holder == holder
            )
        except PynamoDBException as exc:
            if not condition_failed(exc):
                raise
            return False
        return True

    @translated
    def release_lock(self, name: str, holder: str, progress: dict[str, object]) -> None:
        m = self.t.meta
        try:
            m(f"lock#{name}").update(
                actions=[m.expires.set(time.time()), m.progress.set(progress)], condition=m.holder == holder
            )
        except PynamoDBException as exc:
            if not condition_failed(exc):
                raise

    @translated
    def lock_state(self, name: str) -> tuple[bool, dict[str, object] | None]:
        try:
            item = self.t.meta.get(f"lock#{name}", consistent_read=True)
        except self.t.meta.DoesNotExist:
            return False, None
        return (item.expires or 0) > time.time(), item.progress
