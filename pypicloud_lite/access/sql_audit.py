"""SQLAuditStore: the audit trail in the access database's `ppc_audit` table."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, delete, insert, select
from sqlalchemy.orm import sessionmaker

from pypicloud_lite.access.audit import AuditEvent, AuditQuery, AuditStore
from pypicloud_lite.db.engine import connection, transaction, write_engine
from pypicloud_lite.db.tables import AuditRow, table_of

# Every change an index takes records one: a Core insert built once, on a plain connection (an ORM session cost
# about twice as much per record).
_INSERT = insert(table_of(AuditRow))


def _naive(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


class SQLAuditStore(AuditStore):
    def __init__(self, engine: Engine) -> None:
        self._read = sessionmaker(engine, expire_on_commit=False)
        self._write_engine = write_engine(engine)
        self._write = sessionmaker(self._write_engine, expire_on_commit=False)

    def add(self, event: AuditEvent) -> None:
        record = {
            "at": _naive(event.at),
            "actor": event.actor,
            "action": event.action,
            "project": event.project,
            "target": event.target,
            "detail": event.detail,
            "address": event.address,
        }
        with connection(self._write_engine, "access database") as conn:
            conn.execute(_INSERT, record)

    def find(self, query: AuditQuery) -> list[AuditEvent]:
        statement = select(AuditRow).order_by(AuditRow.id.desc()).limit(query.limit)
        if query.actor is not None:
            statement = statement.where(AuditRow.actor == query.actor)
        if query.action is not None:
            if query.action.endswith("."):
                statement = statement.where(AuditRow.action.startswith(query.action, autoescape=True))
            else:
                statement = statement.where(AuditRow.action == query.action)
        if query.project is not None:
            statement = statement.where(AuditRow.project == query.project)
        if query.since is not None:
            statement = statement.where(AuditRow.at >= _naive(query.since))
        if query.until is not None:
            statement = statement.where(AuditRow.at < _naive(query.until))
        if query.before is not None:
            statement = statement.where(AuditRow.id < query.before)
        with transaction(self._read, "access database") as session:
            rows = session.scalars(statement).all()
            return [
                AuditEvent(
                    row.action,
                    row.actor,
                    row.address,
                    row.project,
                    row.target,
                    row.detail,
                    at=row.at.replace(tzinfo=UTC),
                    id=row.id,
                )
                for row in rows
            ]

    def prune(self, older_than: datetime) -> int:
        with transaction(self._write, "access database") as session:
            result = session.execute(delete(AuditRow).where(AuditRow.at < _naive(older_than)))
            return int(getattr(result, "rowcount", 0) or 0)
