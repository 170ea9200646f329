"""The CDN outbox in the cdn table: purges recorded with each change, claimed in batches by the flusher."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

from pynamodb.models import Model

from pypicloud_lite.cache.base import CdnOutbox
from pypicloud_lite.cache.dynamo.items import translated
from pypicloud_lite.cache.dynamo.tables import DynamoTables
from pypicloud_lite.models import CdnBatch, CdnChange, CdnRecord

# Outbox partitions of the cdn table.
PENDING, OPEN, SENT = "pending", "open", "sent"


class DynamoOutbox(CdnOutbox):
    """Pending purges, the open batch and the history of sent ones, each in its own partition."""

    t: DynamoTables
    cdn_outbox: bool

    def _cdn_items(self, changes: list[CdnChange]) -> list[Model]:
        if not self.cdn_outbox:
            return []
        now = datetime.now(UTC)
        return [
            self.t.cdn(
                PENDING,
                f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}",
                project=c.project,
                version=c.version,
                filename=c.filename,
                created=now,
            )
            for c in dict.fromkeys(changes)
        ]

    def _record_cdn_ahead(self, changes: list[CdnChange]) -> bool:
        """For changes too big for one transaction: record before writing, so a crash loses no purge.

        A purge of a change that then failed costs a path and shows the same page again: harmless.
        """
        items = self._cdn_items(changes)
        with self.t.cdn.batch_write() as batch:
            for item in items:
                batch.save(item)
        return bool(items)

    @staticmethod
    def _to_change(item: Any) -> CdnChange:
        return CdnChange(item.project, item.version, item.filename, id=item.sk)

    @translated
    def outbox_pending(self, limit: int) -> list[CdnChange]:
        items = self.t.cdn.query(PENDING, consistent_read=True, limit=limit)
        return [self._to_change(item) for item in items]

    @translated
    def outbox_batch(self) -> CdnBatch | None:
        opened = next(iter(self.t.cdn.query(OPEN, consistent_read=True, limit=1)), None)
        if opened is None:
            return None
        keys = [(PENDING, change_id) for change_id in opened.change_ids or []]
        changes = sorted(
            (self._to_change(item) for item in self.t.cdn.batch_get(keys, consistent_read=True)),
            key=lambda c: c.id,
        )
        return CdnBatch(opened.sk, opened.created, tuple(changes))

    @translated
    def open_outbox_batch(self, batch: CdnBatch) -> None:
        # Pending items stay where they are until the batch closes: the open item lists them.
        item = self.t.cdn(OPEN, batch.id, created=batch.created, change_ids=[c.id for c in batch.changes])
        item.save(condition=self.t.cdn.sk.does_not_exist())

    @translated
    def close_outbox_batch(self, batch: CdnBatch, record: CdnRecord) -> None:
        # History first, the open item last: a flush that dies between them finds the batch
        # open again, sees its invalidation already made, and only finishes the cleanup.
        history = {
            "batch_id": record.batch_id,
            "sent": record.sent.isoformat(),
            "changes": record.changes,
            "paths": record.paths,
            "wildcards": record.wildcards,
            "invalidation_id": record.invalidation_id,
        }
        self.t.cdn(SENT, f"{batch.created.astimezone(UTC).isoformat()}#{batch.id}", record=history).save()
        with self.t.cdn.batch_write() as writes:
            for change in batch.changes:
                writes.delete(self.t.cdn(PENDING, change.id))
        self.t.cdn(OPEN, batch.id).delete()

    @translated
    def cdn_history(self, since: datetime) -> list[CdnRecord]:
        items = self.t.cdn.query(SENT, self.t.cdn.sk >= since.astimezone(UTC).isoformat(), consistent_read=True)
        return [
            CdnRecord(
                batch_id=r["batch_id"],
                sent=datetime.fromisoformat(r["sent"]),
                changes=int(r["changes"]),
                paths=int(r["paths"]),
                wildcards=int(r["wildcards"]),
                invalidation_id=r["invalidation_id"],
            )
            for r in (item.record for item in items)
        ]
