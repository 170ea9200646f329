"""DynamoCache: the metadata cache in DynamoDB through pynamodb.

Reads that decide what a client sees are strongly consistent. Every change is
one transaction that moves the serial item from N to N+1 (conditioned on it
still being N), writes the change, and stamps the project with N+1. Writers
that raced retry with the new N: changes are strictly ordered, the serial
counts them exactly, and no update is lost.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import random
import time
import uuid
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar

from pynamodb.connection import Connection
from pynamodb.exceptions import PynamoDBException, TransactWriteError
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from pypicloud_lite.cache.base import Cache
from pypicloud_lite.cache.dynamo.tables import PROJECT_PARTITION, DynamoTables, build_tables, create_tables
from pypicloud_lite.config import CacheSettings, DynamoSettings
from pypicloud_lite.errors import BackendUnavailable, InvalidUpload
from pypicloud_lite.models import CdnBatch, CdnChange, CdnRecord, CoreMetadata, PackageFile, Project
from pypicloud_lite.naming import parse_filename

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")
SERIAL = "serial"
CONDITION_FAILED = "ConditionalCheckFailedException"
THROTTLED = frozenset({"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"})
# Items per TransactWriteItems call (DynamoDB's limit is 100): the serial, the project, the rest.
TRANSACTION_ITEMS = 100
# Outbox partitions of the cdn table.
PENDING, OPEN, SENT = "pending", "open", "sent"
APPLY_WORKERS = 16
COMMIT_ATTEMPTS = 50
# What a reload fills in once it has read an object.
DETAIL_FIELDS = ("sha256", "requires_python", "summary", "metadata_sha256", "core_metadata", "storage_etag", "size")


class _ItemConditionFailed(Exception):
    """A condition on one of the change's own items failed (not the serial's)."""


def _translated(method: Callable[P, R]) -> Callable[P, R]:
    """pynamodb errors become BackendUnavailable at this boundary (503 with Retry-After)."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except PynamoDBException as exc:
            code = getattr(exc, "cause_response_code", None) or exc.__class__.__name__
            logger.warning("DynamoDB cache error in %s: %s", method.__name__, code)
            if code in THROTTLED:
                raise BackendUnavailable("The package cache (DynamoDB) is throttling requests.", 2) from exc
            raise BackendUnavailable(f"The package cache (DynamoDB) is unavailable ({code}).") from exc

    return wrapper


def _condition_failed(exc: PynamoDBException) -> bool:
    if isinstance(exc, TransactWriteError):
        reasons = exc.cancellation_reasons or []
        return any(r is not None and r.code == "ConditionalCheckFailed" for r in reasons)
    return getattr(exc, "cause_response_code", None) == CONDITION_FAILED


class DynamoCache(Cache):
    def __init__(self, tables: DynamoTables, settings: DynamoSettings, cdn_outbox: bool = False) -> None:
        self.t = tables
        self.settings = settings
        self.cdn_outbox = cdn_outbox
        self._connection = Connection(region=settings.region, host=settings.endpoint_url)

    @classmethod
    def from_settings(cls, settings: CacheSettings) -> DynamoCache:
        assert settings.dynamo is not None
        tables = build_tables(settings.dynamo)
        if settings.dynamo.create_tables:
            for name in create_tables(tables):
                logger.info("created DynamoDB table %s", name)
        return cls(tables, settings.dynamo, cdn_outbox=settings.cdn_outbox)

    # -- conversions -------------------------------------------------------------

    @staticmethod
    def _to_file(item: Any) -> PackageFile:
        return PackageFile(
            project=item.project,
            filename=item.filename,
            version=item.version,
            packagetype=item.packagetype,
            python_version=item.python_version,
            size=int(item.size),
            sha256=item.sha256,
            upload_time=item.upload_time,
            md5=item.md5,
            blake2_256=item.blake2_256,
            requires_python=item.requires_python,
            summary=item.summary,
            metadata_sha256=item.metadata_sha256,
            yanked=bool(item.yanked),
            yanked_reason=item.yanked_reason,
            uploader=item.uploader,
            core_metadata=CoreMetadata.from_dict(item.core_metadata) if item.core_metadata else None,
            storage_etag=item.storage_etag,
            key=item.object_key,
        )

    def _file_item(self, file: PackageFile) -> Model:
        item: Model = self.t.file(
            file.project,
            file.filename,
            version=file.version,
            packagetype=file.packagetype,
            python_version=file.python_version,
            size=file.size,
            sha256=file.sha256,
            md5=file.md5,
            blake2_256=file.blake2_256,
            upload_time=file.upload_time.astimezone(UTC),
            requires_python=file.requires_python,
            summary=file.summary,
            metadata_sha256=file.metadata_sha256,
            yanked=file.yanked,
            yanked_reason=file.yanked_reason,
            uploader=file.uploader,
            core_metadata=file.core_metadata.to_dict() if file.core_metadata else None,
            storage_etag=file.storage_etag,
            object_key=file.key,
        )
        return item

    @staticmethod
    def _to_project(item: Any) -> Project:
        return Project(
            name=item.name,
            display_name=item.display_name,
            serial=int(item.serial),
            status=item.status,
            status_reason=item.status_reason,
        )

    # -- serials -----------------------------------------------------------------

    def _commit(self, write: Callable[[TransactWrite, int], None]) -> int:
        """Run `write(tx, serial)` in one transaction with the serial's move to `serial`; returns it.

        Raises _ItemConditionFailed when a condition of the change itself failed.
        """
        m = self.t.meta
        for attempt in range(COMMIT_ATTEMPTS):
            current = self.serial()
            serial = current + 1
            expected = (m.value == current) if current else (m.name.does_not_exist() | (m.value == 0))
            try:
                with TransactWrite(connection=self._connection) as tx:
                    tx.update(m(SERIAL), actions=[m.value.set(serial)], condition=expected)
                    write(tx, serial)
                return serial
            except TransactWriteError as exc:
                codes = {r.code for r in exc.cancellation_reasons or [] if r is not None}
                if not codes & {"ConditionalCheckFailed", "TransactionConflict"}:
                    raise
                # Reasons are ordered by pynamodb's grouping, not ours: the serial tells who lost.
                if "TransactionConflict" not in codes and self.serial() == current:
                    raise _ItemConditionFailed from exc
                # Another change took this serial: back off a little and try the next one.
                time.sleep(random.uniform(0, 0.01 * (attempt + 1)))  # noqa: S311 - jitter, not security
        raise BackendUnavailable("The package cache (DynamoDB) is too busy: too many concurrent changes.", 2)

    def _stamp_actions(self, project: str, serial: int, display_name: str | None) -> list[Any]:
        """Move the project row to this serial, creating it when it is new (names and dates are kept)."""
        p = self.t.project
        return [
            p.serial.set(serial),
            p.display_name.set(p.display_name | (display_name or project)),
            p.created.set(p.created | datetime.now(UTC)),
            p.status.set(p.status | "active"),
        ]

    def _stamp(self, tx: TransactWrite, project: str, serial: int, display_name: str | None = None) -> None:
        """Upsert the project row with this serial (changes are ordered by _commit: no condition needed)."""
        tx.update(
            self.t.project(PROJECT_PARTITION, project), actions=self._stamp_actions(project, serial, display_name)
        )

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

    def _record_cdn(self, tx: TransactWrite, changes: list[CdnChange]) -> bool:
        """Put what the CDN must purge into the outbox, in the change's own transaction."""
        items = self._cdn_items(changes)
        for item in items:
            tx.save(item)
        return bool(items)

    def _record_cdn_ahead(self, changes: list[CdnChange]) -> bool:
        """For changes too big for one transaction: record before writing, so a crash loses no purge.

        A purge of a change that then failed costs a path and shows the same page again: harmless.
        """
        items = self._cdn_items(changes)
        with self.t.cdn.batch_write() as batch:
            for item in items:
                batch.save(item)
        return bool(items)

    # -- reads -------------------------------------------------------------------

    @_translated
    def get_file(self, filename: str) -> PackageFile | None:
        try:
            project = parse_filename(filename).project
        except InvalidUpload:
            return None
        try:
            return self._to_file(self.t.file.get(project, filename, consistent_read=True))
        except self.t.file.DoesNotExist:
            return None

    @_translated
    def get_project(self, name: str) -> Project | None:
        try:
            return self._to_project(self.t.project.get(PROJECT_PARTITION, name, consistent_read=True))
        except self.t.project.DoesNotExist:
            return None

    @_translated
    def list_projects(self) -> list[Project]:
        return [self._to_project(i) for i in self.t.project.query(PROJECT_PARTITION, consistent_read=True)]

    @_translated
    def counts(self) -> tuple[int, int]:
        # Projects: a COUNT Query of their one partition. Files span every partition: a Scan of their
        # keys alone (DescribeTable's ItemCount is only refreshed every six hours or so).
        projects = self.t.project.count(PROJECT_PARTITION, consistent_read=True)
        files = sum(1 for _ in self.t.file.scan(attributes_to_get=["project", "filename"], consistent_read=True))
        return projects, files

    def search_projects(
        self, query: str, offset: int, limit: int, only: Collection[str] | None = None
    ) -> tuple[list[Project], int]:
        wanted = set(only) if only is not None else None
        matching = [p for p in self.list_projects() if query in p.name and (wanted is None or p.name in wanted)]
        return matching[offset : offset + limit], len(matching)

    @_translated
    def project_files(self, name: str) -> list[PackageFile]:
        return [self._to_file(i) for i in self.t.file.query(name, consistent_read=True)]

    def files_of_projects(self, names: list[str]) -> list[PackageFile]:
        files: list[PackageFile] = []
        for name in names:
            files.extend(self.project_files(name))
        return files

    @_translated
    def serial(self) -> int:
        try:
            return int(self.t.meta.get(SERIAL, consistent_read=True).value)
        except self.t.meta.DoesNotExist:
            return 0

    # -- changes -----------------------------------------------------------------

    @_translated
    def add_file(self, file: PackageFile, display_name: str) -> tuple[PackageFile, bool]:
        existing = self.get_file(file.filename)
        if existing is not None:
            return existing, False

        def write(tx: TransactWrite, serial: int) -> None:
            tx.save(self._file_item(file), condition=self.t.file.filename.does_not_exist())
            self._stamp(tx, file.project, serial, display_name)
            self._record_cdn(tx, [CdnChange(file.project, file.version)])

        try:
            self._commit(write)
        except _ItemConditionFailed:
            stored = self.get_file(file.filename)
            if stored is None:
                raise BackendUnavailable("The package cache (DynamoDB) refused the write; try again.") from None
            return stored, False  # a racing writer inserted it first
        self._after_cdn_change()
        return file, True

    @_translated
    def delete_file(self, filename: str) -> bool:
        existing = self.get_file(filename)
        if existing is None:
            return False

        def write(tx: TransactWrite, serial: int) -> None:
            tx.delete(self.t.file(existing.project, filename), condition=self.t.file.filename.exists())
            self._stamp(tx, existing.project, serial)
            self._record_cdn(tx, [CdnChange(existing.project, existing.version, filename)])

        try:
            self._commit(write)
        except _ItemConditionFailed:
            return False  # deleted by someone else meanwhile
        self._after_cdn_change()
        return True

    @_translated
    def set_yanked(self, project: str, version: str, yanked: bool, reason: str | None) -> int:
        reason = reason if yanked else None
        release = [f for f in self.project_files(project) if f.version == version]
        changing = [f for f in release if (f.yanked, f.yanked_reason or "") != (yanked, reason or "")]
        f = self.t.file
        actions = [f.yanked.set(yanked), f.yanked_reason.set(reason) if reason else f.yanked_reason.remove()]
        # The serial, the project and the outbox item take three of the transaction's items.
        for start in range(0, len(changing), TRANSACTION_ITEMS - 3):
            batch = changing[start : start + TRANSACTION_ITEMS - 3]

            def write(tx: TransactWrite, serial: int, batch: list[PackageFile] = batch) -> None:
                for file in batch:
                    tx.update(f(file.project, file.filename), actions=actions, condition=f.filename.exists())
                self._stamp(tx, project, serial)
                self._record_cdn(tx, [CdnChange(project, version)])

            with contextlib.suppress(_ItemConditionFailed):
                self._commit(write)  # a file deleted meanwhile: nothing left to yank there
        if changing:
            self._after_cdn_change()
        return len(release)

    @_translated
    def set_project_status(self, name: str, status: str, reason: str | None) -> bool:
        current = self.get_project(name)
        if current is None:
            return False
        if (current.status, current.status_reason) == (status, reason):
            return True
        p = self.t.project
        status_actions = [p.status.set(status), p.status_reason.set(reason) if reason else p.status_reason.remove()]

        # A status shows on every page of the project (quarantine hides every file).
        versions = sorted({file.version for file in self.project_files(name)})
        changes = [CdnChange(name), *(CdnChange(name, v) for v in versions)]
        fits = len(changes) <= TRANSACTION_ITEMS - 2
        if not fits:
            self._record_cdn_ahead(changes)

        def write(tx: TransactWrite, serial: int) -> None:
            tx.update(p(PROJECT_PARTITION, name), actions=[p.serial.set(serial), *status_actions])
            if fits:
                self._record_cdn(tx, changes)

        self._commit(write)
        self._after_cdn_change()
        return True

    # -- reload ------------------------------------------------------------------

    @_translated
    def all_files(self) -> list[PackageFile]:
        return [self._to_file(i) for i in self.t.file.scan(consistent_read=True)]

    @_translated
    def apply_reload(
        self, added: list[PackageFile], changed: list[PackageFile], removed: list[str], etags: dict[str, str]
    ) -> None:
        # DynamoDB has no transaction of this size: each write is conditional and idempotent,
        # and nothing is ever emptied, so readers see old rows or new ones, never a hole.
        if not (added or changed or removed or etags):
            return
        f = self.t.file
        touched: set[str] = set()
        gone = [file for file in map(self.get_file, removed) if file is not None] if self.cdn_outbox else []
        self._record_cdn_ahead(
            [CdnChange(x.project, x.version) for x in added]
            + [CdnChange(x.project, x.version, x.filename) for x in changed + gone]
        )

        def add(file: PackageFile) -> None:
            try:
                self._file_item(file).save(condition=f.filename.does_not_exist())
            except PynamoDBException as exc:
                if not _condition_failed(exc):
                    raise  # an upload wrote it meanwhile: that row wins otherwise

        def replace(file: PackageFile) -> None:
            self._file_item(file).save()

        def remove(filename: str) -> None:
            existing = self.get_file(filename)
            if existing is not None:
                touched.add(existing.project)
                f(existing.project, filename).delete()

        def set_etag(item: tuple[str, str]) -> None:
            filename, etag = item
            project = parse_filename(filename).project
            try:
                f(project, filename).update(actions=[f.storage_etag.set(etag)], condition=f.filename.exists())
            except PynamoDBException as exc:
                if not _condition_failed(exc):
                    raise

        with ThreadPoolExecutor(max_workers=APPLY_WORKERS) as pool:
            list(pool.map(add, added))
            list(pool.map(replace, changed))
            list(pool.map(remove, removed))
            list(pool.map(set_etag, etags.items()))
        touched |= {file.project for file in added + changed}
        projects = sorted(touched)
        first, rest = projects[: TRANSACTION_ITEMS - 1], projects[TRANSACTION_ITEMS - 1 :]

        def write(tx: TransactWrite, serial: int) -> None:
            for project in first:
                self._stamp(tx, project, serial)

        serial = self._commit(write)
        p = self.t.project
        for project in rest:
            # Beyond one transaction's size: the same serial, never lowering a newer one.
            try:
                p(PROJECT_PARTITION, project).update(
                    actions=self._stamp_actions(project, serial, None),
                    condition=p.serial.does_not_exist() | (p.serial < serial),
                )
            except PynamoDBException as exc:
                if not _condition_failed(exc):
                    raise  # a project left without its row would hide its files: fail the reload
        self._after_cdn_change()

    @_translated
    def update_details(self, file: PackageFile, display_name: str | None = None) -> bool:
        f = self.t.file
        item = self._file_item(file)
        actions = [
            getattr(f, name).set(getattr(item, name)) if getattr(item, name) is not None else getattr(f, name).remove()
            for name in DETAIL_FIELDS
        ]

        current = self.get_file(file.filename)
        if current is None or current.storage_etag != file.storage_etag:
            return False
        replaced = current.sha256 is not None and current.sha256 != file.sha256
        if display_name:
            # Before the serial moves, so that pages rendered at the new serial show the name.
            p = self.t.project
            try:
                p(PROJECT_PARTITION, file.project).update(
                    actions=[p.display_name.set(display_name)], condition=p.display_name == file.project
                )
            except PynamoDBException as exc:
                if not _condition_failed(exc):
                    raise

        def write(tx: TransactWrite, serial: int) -> None:
            tx.update(f(file.project, file.filename), actions=actions, condition=f.storage_etag == file.storage_etag)
            self._stamp(tx, file.project, serial)
            self._record_cdn(tx, [CdnChange(file.project, file.version, file.filename if replaced else None)])

        try:
            self._commit(write)
        except _ItemConditionFailed:
            return False  # the object changed since it was listed: a later reload fills it in
        self._after_cdn_change()
        return True

    @_translated
    def acquire_lock(self, name: str, holder: str, ttl: float) -> bool:
        m = self.t.meta
        now = time.time()
        lease = m(f"lock#{name}", holder=holder, expires=now + ttl, progress=None)
        try:
            lease.save(condition=m.name.does_not_exist() | (m.expires < now) | (m.holder == holder))
        except PynamoDBException as exc:
            if _condition_failed(exc):
                return False
            raise
        return True

    @_translated
    def update_lock(self, name: str, holder: str, ttl: float, progress: dict[str, object]) -> bool:
        m = self.t.meta
        try:
            m(f"lock#{name}").update(
                actions=[m.expires.set(time.time() + ttl), m.progress.set(progress)], condition=m.holder == holder
            )
        except PynamoDBException as exc:
            if not _condition_failed(exc):
                raise
            return False
        return True

    @_translated
    def release_lock(self, name: str, holder: str, progress: dict[str, object]) -> None:
        m = self.t.meta
        try:
            m(f"lock#{name}").update(
                actions=[m.expires.set(time.time()), m.progress.set(progress)], condition=m.holder == holder
            )
        except PynamoDBException as exc:
            if not _condition_failed(exc):
                raise

    @_translated
    def lock_state(self, name: str) -> tuple[bool, dict[str, object] | None]:
        try:
            item = self.t.meta.get(f"lock#{name}", consistent_read=True)
        except self.t.meta.DoesNotExist:
            return False, None
        return (item.expires or 0) > time.time(), item.progress

    def _after_cdn_change(self) -> None:
        if self.cdn_outbox:
            self._cdn_changed()

    # -- CDN outbox --------------------------------------------------------------

    @staticmethod
    def _to_change(item: Any) -> CdnChange:
        return CdnChange(item.project, item.version, item.filename, id=item.sk)

    @_translated
    def outbox_pending(self, limit: int) -> list[CdnChange]:
        items = self.t.cdn.query(PENDING, consistent_read=True, limit=limit)
        return [self._to_change(item) for item in items]

    @_translated
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

    @_translated
    def open_outbox_batch(self, batch: CdnBatch) -> None:
        # Pending items stay where they are until the batch closes: the open item lists them.
        item = self.t.cdn(OPEN, batch.id, created=batch.created, change_ids=[c.id for c in batch.changes])
        item.save(condition=self.t.cdn.sk.does_not_exist())

    @_translated
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

    @_translated
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

    def check_health(self) -> None:
        self.serial()

    def close(self) -> None:
        """pynamodb keeps one HTTP session per model class; nothing to release."""
