"""The CDN outbox in SQL: changes recorded with each change's transaction, claimed in batches by the flusher."""

from __future__ import annotations

from abc import abstractmethod
from contextlib import AbstractContextManager
from datetime import UTC, datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from pypicloud_lite.cache.base import CdnOutbox
from pypicloud_lite.cache.sql.rows import chunks, naive_utc
from pypicloud_lite.db.tables import CdnBatchRow, CdnChangeRow
from pypicloud_lite.models import CdnBatch, CdnChange, CdnRecord


class SQLOutbox(CdnOutbox):
    """Pending changes, the claimed batch and the history of sent invalidations, each in its table."""

    @abstractmethod
    def _session(self, write: bool = False) -> AbstractContextManager[Session]:
        """A transaction on the cache's database."""

    @staticmethod
    def _to_change(row: CdnChangeRow) -> CdnChange:
        return CdnChange(row.project, row.version, row.filename, id=str(row.id))

    def outbox_pending(self, limit: int) -> list[CdnChange]:
        with self._session() as session:
            rows = session.scalars(
                select(CdnChangeRow).where(CdnChangeRow.batch_id.is_(None)).order_by(CdnChangeRow.id).limit(limit)
            )
            return [self._to_change(row) for row in rows]

    def outbox_batch(self) -> CdnBatch | None:
        with self._session() as session:
            row = session.scalars(
                select(CdnBatchRow).where(CdnBatchRow.sent.is_(None)).order_by(CdnBatchRow.created).limit(1)
            ).first()
            if row is None:
                return None
            changes = session.scalars(
                select(CdnChangeRow).where(CdnChangeRow.batch_id == row.id).order_by(CdnChangeRow.id)
            )
            return CdnBatch(row.id, row.created.replace(tzinfo=UTC), tuple(self._to_change(c) for c in changes))

    def open_outbox_batch(self, batch: CdnBatch) -> None:
        with self._session(write=True) as session:
            session.add(CdnBatchRow(id=batch.id, created=naive_utc(batch.created), changes=0, paths=0, wildcards=0))
            for ids in chunks([int(c.id) for c in batch.changes]):
                session.execute(
                    update(CdnChangeRow)
                    .where(CdnChangeRow.id.in_(ids), CdnChangeRow.batch_id.is_(None))
                    .values(batch_id=batch.id)
                )

    def close_outbox_batch(self, batch: CdnBatch, record: CdnRecord) -> None:
        with self._session(write=True) as session:
            session.execute(
                update(CdnBatchRow)
                .where(CdnBatchRow.id == batch.id)
                .values(
                    sent=naive_utc(record.sent),
                    changes=record.changes,
                    paths=record.paths,
                    wildcards=record.wildcards,
                    invalidation_id=record.invalidation_id,
                )
            )
            # The batch row is the history; the changes themselves are done with.
            session.execute(delete(CdnChangeRow).where(CdnChangeRow.batch_id == batch.id))

    def cdn_history(self, since: datetime) -> list[CdnRecord]:
        with self._session() as session:
            rows = session.scalars(
                select(CdnBatchRow).where(CdnBatchRow.sent >= naive_utc(since)).order_by(CdnBatchRow.sent)
            )
            return [
                CdnRecord(
                    batch_id=row.id,
                    sent=(row.sent or row.created).replace(tzinfo=UTC),
                    changes=row.changes,
                    paths=row.paths,
                    wildcards=row.wildcards,
                    invalidation_id=row.invalidation_id or "",
                )
                for row in rows
            ]
