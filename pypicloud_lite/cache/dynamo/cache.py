"""DynamoCache: the metadata cache in DynamoDB through pynamodb.

Reads that decide what a client sees are strongly consistent. Every change is
one transaction that moves the serial item from N to N+1 (conditioned on it
still being N), writes the change, and stamps the project with N+1. Writers
that raced retry with the new N: changes are strictly ordered, the serial
counts them exactly, and no update is lost.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from pynamodb.connection import Connection
from pynamodb.exceptions import PynamoDBException, TransactWriteError
from pynamodb.transactions import TransactWrite

from pypicloud_lite.cache.base import Cache
from pypicloud_lite.cache.dynamo.downloads import DynamoDownloads
from pypicloud_lite.cache.dynamo.items import (
    DETAIL_FIELDS,
    cancellation_codes,
    condition_failed,
    detail_actions,
    file_item,
    fill_purge,
    name_if_unnamed,
    same_row_condition,
    stamp_actions,
    to_file,
    to_project,
    translated,
    update_quietly,
)
from pypicloud_lite.cache.dynamo.leases import DynamoLeases
from pypicloud_lite.cache.dynamo.outbox import DynamoOutbox
from pypicloud_lite.cache.dynamo.tables import PROJECT_PARTITION, DynamoTables, build_tables, create_tables
from pypicloud_lite.config import CacheSettings, DynamoSettings
from pypicloud_lite.errors import BackendUnavailable
from pypicloud_lite.models import (
    AddFile,
    Applied,
    CdnChange,
    Change,
    FillDetails,
    FillMany,
    PackageFile,
    Project,
    ReloadChanges,
    RemoveFile,
    ReplaceFile,
    SetStatus,
    SetYanked,
    SyncProject,
    canonical_version,
    joining_releases,
)
from pypicloud_lite.naming import filename_project

logger = logging.getLogger(__name__)

SERIAL = "serial"
# Items per TransactWriteItems call (DynamoDB's limit is 100): the serial, the project, the rest.
TRANSACTION_ITEMS = 100
APPLY_WORKERS = 16
COMMIT_ATTEMPTS = 50
# A transaction cancelled for these is tried again (a condition that may no longer hold, a concurrent write).
RETRIED_CANCELLATIONS = frozenset({"ConditionalCheckFailed", "TransactionConflict"})


# The method that commits each kind of change.
_HANDLERS: dict[type, str] = {
    AddFile: "_add_file",
    RemoveFile: "_remove_file",
    ReplaceFile: "_replace_file",
    FillDetails: "_fill_one",
    FillMany: "_fill_batch",
    SetYanked: "_set_yanked",
    SetStatus: "_set_status",
    SyncProject: "_sync_project",
}


def _serial_of(project: Project | None) -> int | None:
    return project.serial if project else None


class _ItemConditionFailed(Exception):
    """A condition on one of the change's own items failed (not the serial's)."""


class _StaleRead(Exception):
    """The index changed since the change read what it writes: it must read again."""


class DynamoCache(DynamoLeases, DynamoOutbox, DynamoDownloads, Cache):
    def __init__(self, tables: DynamoTables, settings: DynamoSettings, cdn_outbox: bool = False) -> None:
        super().__init__()
        self.t = tables
        self.settings = settings
        self.cdn_outbox = cdn_outbox
        self._connection = Connection(
            region=settings.region, host=settings.endpoint_url, max_pool_connections=settings.max_pool_connections
        )

    @classmethod
    def from_settings(cls, settings: CacheSettings) -> DynamoCache:
        assert settings.dynamo is not None
        tables = build_tables(settings.dynamo)
        if settings.dynamo.create_tables:
            for name in translated(create_tables)(tables):  # refused credentials: a start-up error naming them
                logger.info("created DynamoDB table %s", name)
        return cls(tables, settings.dynamo, cdn_outbox=settings.cdn_outbox)

    # -- serials -----------------------------------------------------------------

    def _transact(self, write: Callable[[TransactWrite, int], None], purges: list[CdnChange] | None = None) -> int:
        """Run `write(tx, serial)` in one transaction with the serial's move to `serial` and the purges; returns it.

        The one place a change meets its serial and its outbox entries. Raises
        _ItemConditionFailed when a condition of the change itself failed.
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
                    for item in self._cdn_items(purges or []):
                        tx.save(item)
                return serial
            except TransactWriteError as exc:
                codes = cancellation_codes(exc)
                if not codes & RETRIED_CANCELLATIONS:
                    raise
                # Reasons are ordered by pynamodb's grouping, not ours: the serial tells who lost.
                if "TransactionConflict" not in codes and self.serial() == current:
                    raise _ItemConditionFailed from exc
                # Another change took this serial: back off a little and try the next one.
                time.sleep(random.uniform(0, 0.01 * (attempt + 1)))  # noqa: S311 - jitter, not security
        raise BackendUnavailable("The package cache (DynamoDB) is too busy: too many concurrent changes.", 2)

    def _stamp(self, tx: TransactWrite, project: str, serial: int, display_name: str | None = None) -> None:
        """Upsert the project row with this serial (changes are ordered by _commit: no condition needed)."""
        tx.update(self.t.project(PROJECT_PARTITION, project), actions=stamp_actions(self.t, serial, display_name))

    # -- reads -------------------------------------------------------------------

    @translated
    def get_file(self, filename: str) -> PackageFile | None:
        # Not parse_filename: a row stored before a filename check was added must still be found.
        project = filename_project(filename)
        if not project:
            return None  # DynamoDB refuses an empty key
        try:
            return to_file(self.t.file.get(project, filename, consistent_read=True))
        except self.t.file.DoesNotExist:
            return None

    @translated
    def get_project(self, name: str) -> Project | None:
        try:
            return to_project(self.t.project.get(PROJECT_PARTITION, name, consistent_read=True))
        except self.t.project.DoesNotExist:
            return None

    @translated
    def list_projects(self) -> list[Project]:
        return [to_project(i) for i in self.t.project.query(PROJECT_PARTITION, consistent_read=True)]

    @translated
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

    @translated
    def project_files(self, name: str) -> list[PackageFile]:
        return [to_file(i) for i in self.t.file.query(name, consistent_read=True)]

    def files_of_projects(self, names: list[str]) -> list[PackageFile]:
        files: list[PackageFile] = []
        for name in names:
            files.extend(self.project_files(name))
        return files

    @translated
    def all_files(self) -> list[PackageFile]:
        return [to_file(i) for i in self.t.file.scan(consistent_read=True)]

    @translated
    def serial(self) -> int:
        try:
            return int(self.t.meta.get(SERIAL, consistent_read=True).value)
        except self.t.meta.DoesNotExist:
            return 0

    # -- the one change path -------------------------------------------------------

    @translated
    def _commit(self, change: Change) -> Applied:
        handler = _HANDLERS.get(type(change))
        if handler is None:
            raise TypeError(f"not a change: {change!r}")
        applied: Applied = getattr(self, handler)(change)
        if isinstance(change, AddFile) and change.lease is not None:  # no transaction to end it in
            self.release_lock(change.lease.name, change.lease.holder, {})
        return applied

    def _applied(self, serial: int, count: int, projects: set[str], file: PackageFile | None = None) -> Applied:
        return Applied(serial, count, file, frozenset(projects), self.cdn_outbox)

    def _add_file(self, change: AddFile) -> Applied:
        file = change.file
        existing = self.get_file(file.filename)
        if existing is not None:
            return Applied(None, 1, existing)

        stored = file

        def write(tx: TransactWrite, serial: int) -> None:
            nonlocal stored
            # Read after the serial this attempt commits on: a yank of the release that lands
            # in between moves the serial, and the attempt is made again with a fresh read.
            stored = self._joining_release(file)
            tx.save(file_item(self.t, stored), condition=self.t.file.filename.does_not_exist())
            self._stamp(tx, file.project, serial, change.display_name)

        try:
            serial = self._transact(write, [CdnChange(file.project, file.version)])
        except _ItemConditionFailed:
            racing = self.get_file(file.filename)
            if racing is None:
                raise BackendUnavailable("The package cache (DynamoDB) refused the write; try again.") from None
            return Applied(None, 1, racing)  # a racing writer inserted it first
        return self._applied(serial, 1, {file.project}, stored)

    def _joining_release(self, file: PackageFile) -> PackageFile:
        """The file as its release takes it: yanked, with the release's reason, when every file of it is."""
        return joining_releases([file], self.project_files(file.project))[0]

    def _remove_file(self, change: RemoveFile) -> Applied:
        existing = self.get_file(change.filename)
        if existing is None:
            return Applied(None)

        def write(tx: TransactWrite, serial: int) -> None:
            tx.delete(self.t.file(existing.project, change.filename), condition=self.t.file.filename.exists())
            self._stamp(tx, existing.project, serial)

        try:
            serial = self._transact(write, [CdnChange(existing.project, existing.version, change.filename)])
        except _ItemConditionFailed:
            return Applied(None)  # deleted by someone else meanwhile
        dropped = self._drop_if_empty(existing.project, serial)
        return self._applied(dropped or serial, 1, {existing.project})

    def _drop_if_empty(self, project: str, stamped: int) -> int | None:
        """A project left without files leaves the index (a 404, as for any unknown name), unless an admin gave
        it a status: that decision stays.

        Its own change (its serial is returned), conditional on the project still carrying the serial of the
        change that emptied it: an upload since then stamped it anew, and the project stays.
        """
        if any(True for _ in self.t.file.query(project, limit=1, consistent_read=True)):
            return None
        p = self.t.project

        def write(tx: TransactWrite, serial: int) -> None:
            condition = (p.serial == stamped) & (p.status.does_not_exist() | (p.status == "active"))
            tx.delete(p(PROJECT_PARTITION, project), condition=condition)

        try:
            return self._transact(write, [CdnChange(project)])
        except _ItemConditionFailed:
            return None  # uploaded to, or given a status, meanwhile

    def _replace_file(self, change: ReplaceFile) -> Applied:
        file = change.file

        def write(tx: TransactWrite, serial: int) -> None:
            tx.save(file_item(self.t, file))
            self._stamp(tx, file.project, serial, file.upload_name)

        serial = self._transact(write, [CdnChange(file.project, file.version, file.filename)])
        return self._applied(serial, 1, {file.project}, file)

    def _set_yanked(self, change: SetYanked) -> Applied:
        for _attempt in range(COMMIT_ATTEMPTS):
            try:
                return self._set_yanked_as_read(change)
            except _StaleRead:
                # A change committed between reading the release and writing it (a file may have
                # joined it, having read it unyanked): read it again.
                time.sleep(random.uniform(0, 0.01))  # noqa: S311 - jitter, not security
        raise BackendUnavailable("The package cache (DynamoDB) is too busy: too many concurrent changes.", 2)

    def _set_yanked_as_read(self, change: SetYanked) -> Applied:
        project, wanted = change.project, canonical_version(change.version)
        reason = change.reason if change.yanked else None
        read_at = self.serial()
        release = [f for f in self.project_files(project) if f.canonical_version == wanted]
        # Every spelling its files carry is a per-version JSON page that shows the change.
        purges = [CdnChange(project, v) for v in sorted({f.version for f in release})]
        differing = [f for f in release if (f.yanked, f.yanked_reason or "") != (change.yanked, reason or "")]
        f = self.t.file
        actions = [f.yanked.set(change.yanked), f.yanked_reason.set(reason) if reason else f.yanked_reason.remove()]
        serial: int | None = None
        # The serial and the project take two of the transaction's items, the outbox one per spelling;
        # a release spelled too many ways to leave room has its purges recorded ahead.
        outbox = purges if len(purges) <= TRANSACTION_ITEMS // 2 else None
        if differing and outbox is None:
            self._record_cdn_ahead(purges)
        room = TRANSACTION_ITEMS - 2 - len(outbox or ())
        for start in range(0, len(differing), room):
            batch = differing[start : start + room]

            def write(
                tx: TransactWrite, serial: int, batch: list[PackageFile] = batch, first: bool = not start
            ) -> None:
                if first and serial != read_at + 1:
                    raise _StaleRead
                for file in batch:
                    tx.update(f(file.project, file.filename), actions=actions, condition=f.filename.exists())
                self._stamp(tx, project, serial)

            with contextlib.suppress(_ItemConditionFailed):  # a file deleted meanwhile: nothing left to yank
                serial = self._transact(write, outbox)
        if serial is None:
            return Applied(None, len(release))
        return self._applied(serial, len(release), {project})

    def _set_status(self, change: SetStatus) -> Applied:
        name = change.project
        current = self.get_project(name)
        if current is None:
            return Applied(None)
        if (current.status, current.status_reason) == (change.status, change.reason):
            return Applied(None, 1)
        p = self.t.project
        reason_action = p.status_reason.set(change.reason) if change.reason else p.status_reason.remove()
        # A status shows on every page of the project (quarantine hides every file).
        versions = sorted({file.version for file in self.project_files(name)})
        purges = [CdnChange(name), *(CdnChange(name, v) for v in versions)]
        if not (fits := len(purges) <= TRANSACTION_ITEMS - 2):
            self._record_cdn_ahead(purges)

        def write(tx: TransactWrite, serial: int) -> None:
            tx.update(
                p(PROJECT_PARTITION, name), actions=[p.serial.set(serial), p.status.set(change.status), reason_action]
            )

        serial = self._transact(write, purges if fits else None)
        # Back to active without files: only the status kept the project listed (as after a project delete).
        return self._applied((change.status == "active" and self._drop_if_empty(name, serial)) or serial, 1, {name})

    def _sync_project(self, change: SyncProject) -> Applied:
        """The project's name, status and yanks as storage records them: yanks first, then the serial."""
        state = change.state
        name = state.name
        project, files = self.get_project(name), self.project_files(name)
        if project is None and not files and state.status == "active":
            return Applied(None)  # a project without files is not in the index
        f, p = self.t.file, self.t.project
        wrong = [x for x in files if state.yank_of(x.filename) != (x.yanked, x.yanked_reason if x.yanked else None)]
        shown = (project.display_name, project.status, project.status_reason) if project else None
        if not wrong and shown == (state.display_name, state.status, state.status_reason):
            return Applied(None, 1)
        for file in wrong:
            yanked, reason = state.yank_of(file.filename)
            reason_action = f.yanked_reason.set(reason) if yanked and reason else f.yanked_reason.remove()
            try:
                f(name, file.filename).update(
                    actions=[f.yanked.set(yanked), reason_action], condition=f.filename.exists()
                )
            except PynamoDBException as exc:
                if not condition_failed(exc):
                    raise  # else deleted meanwhile: nothing to yank
        purges = [CdnChange(name), *(CdnChange(name, v) for v in sorted({x.version for x in files}))]
        fits = len(purges) <= TRANSACTION_ITEMS - 2
        if not fits:
            self._record_cdn_ahead(purges)
        reason = p.status_reason.set(state.status_reason) if state.status_reason else p.status_reason.remove()

        def write(tx: TransactWrite, serial: int) -> None:
            actions = [
                p.serial.set(serial),
                p.created.set(p.created | datetime.now(UTC)),
                p.display_name.set(state.display_name),
                p.status.set(state.status),
                reason,
            ]
            tx.update(p(PROJECT_PARTITION, name), actions=actions)

        serial = self._transact(write, purges if fits else None)
        return self._applied(serial, 1, {name})

    def _fill_one(self, change: FillDetails) -> Applied:
        return self._fill_many([change])

    def _fill_batch(self, change: FillMany) -> Applied:
        return self._fill_many(change.fills)

    def _fill_many(self, fills: Sequence[FillDetails]) -> Applied:
        """Fill in the rows that still have the fill's ETag, under one serial: as a reload's apply, each row is a
        conditional update of its own (its ETag unchanged), then the projects are stamped with one new serial."""
        keys = [(fill.file.project, fill.file.filename) for fill in fills]
        # Only what the fill compares: a row's other attributes would cost reading and parsing for nothing.
        read = self.t.file.batch_get(
            keys, consistent_read=True, attributes_to_get=["project", "filename", *DETAIL_FIELDS]
        )
        current = {item.filename: item for item in read}
        fillable = [
            (fill, row)
            for fill in fills
            if (row := current.get(fill.file.filename)) is not None and row.storage_etag == fill.file.storage_etag
        ]
        if not fillable:
            return Applied(None)
        self._record_cdn_ahead([fill_purge(fill.file, row.sha256) for fill, row in fillable])
        f = self.t.file

        def fill_one(fill: tuple[FillDetails, Any]) -> bool:
            file, row = fill[0].file, fill[1]
            actions = detail_actions(self.t, file, row)
            if not actions:
                return True  # the row holds all of it already (its ETag, checked above, is the file's)
            try:
                update_quietly(f, (file.project, file.filename), actions, f.storage_etag == file.storage_etag)
            except PynamoDBException as exc:
                if not condition_failed(exc):
                    raise
                return False  # the object changed since it was listed: a later reload fills it in
            return True

        with ThreadPoolExecutor(max_workers=APPLY_WORKERS) as pool:
            oks = list(pool.map(fill_one, fillable))
            filled = [fill.file for (fill, _row), ok in zip(fillable, oks, strict=True) if ok]
        if not filled:
            return Applied(None)
        projects = {file.project for file in filled}
        # A project the listing made is named by its stamp, in the serial's move, if nothing named it before.
        names: dict[str, str] = {}
        for fill, _row in fillable:
            if fill.display_name:
                names.setdefault(fill.file.project, fill.display_name)
        return self._applied(self._stamp_projects(sorted(projects), names), len(filled), projects)

    @translated
    def _commit_reload(self, changes: ReloadChanges) -> Applied:
        # DynamoDB has no transaction of this size: each write is conditional and idempotent,
        # and nothing is ever emptied, so readers see old rows or new ones, never a hole.
        added, changed = list(changes.added), list(changes.changed)
        # A file a reload finds joins its release as an upload does: yanked if the release is.
        existing = [file for project in sorted({x.project for x in added}) for file in self.project_files(project)]
        added = joining_releases(added, existing)
        f = self.t.file
        touched: set[str] = set()
        # The rows to change or remove, if still the ones the reload saw; each write checks it again.
        current = {name: self.get_file(name) for name in [*(x.filename for x in changed), *changes.removed]}
        changed = [x for x in changed if changes.applies_to(x.filename, current[x.filename])]
        gone = [
            file for name in changes.removed if (file := current[name]) is not None and changes.applies_to(name, file)
        ]
        self._record_cdn_ahead(
            [CdnChange(x.project, x.version) for x in added]
            + [CdnChange(x.project, x.version, x.filename) for x in changed + gone]
        )

        def add(file: PackageFile) -> None:
            try:
                file_item(self.t, file).save(condition=f.filename.does_not_exist())
            except PynamoDBException as exc:
                if not condition_failed(exc):
                    raise  # an upload wrote it meanwhile: that row wins otherwise

        def unless_changed(write: Callable[[Any], Any], seen: PackageFile | None) -> bool:
            try:
                write(same_row_condition(self.t, seen) if seen is not None else f.filename.exists())
            except PynamoDBException as exc:
                if not condition_failed(exc):
                    raise
                return False  # uploaded, deleted or yanked since the reload looked: left to the next one
            return True

        def replace(file: PackageFile) -> None:
            if unless_changed(
                lambda condition: file_item(self.t, file).save(condition=condition), changes.seen.get(file.filename)
            ):
                touched.add(file.project)

        def remove(file: PackageFile) -> None:
            item = f(file.project, file.filename)
            if unless_changed(lambda condition: item.delete(condition=condition), changes.seen.get(file.filename)):
                touched.add(file.project)

        def set_etag(item: tuple[str, str]) -> None:
            filename, etag = item
            project = filename_project(filename)
            try:
                f(project, filename).update(
                    actions=[f.storage_etag.set(etag)], condition=f.filename.exists() & f.storage_etag.does_not_exist()
                )
            except PynamoDBException as exc:
                if not condition_failed(exc):
                    raise

        with ThreadPoolExecutor(max_workers=APPLY_WORKERS) as pool:
            list(pool.map(add, added))
            list(pool.map(replace, changed))
            list(pool.map(remove, gone))
            list(pool.map(set_etag, changes.etags.items()))
        touched |= {file.project for file in added}
        # Checked before this reload stamps its projects: a project changed since the reload read it is left alone.
        states = [s for s in changes.projects if changes.state_applies(s.name, _serial_of(self.get_project(s.name)))]
        stamped = serial = self._stamp_projects(sorted(touched))
        for project in sorted({file.project for file in gone}):
            serial = self._drop_if_empty(project, stamped) or serial
        for state in states:
            synced = self._sync_project(SyncProject(state))
            if synced.serial is not None:
                serial, touched = synced.serial, touched | {state.name}
        return self._applied(serial, len(added) + len(changed) + len(gone), touched)

    def _stamp_projects(self, projects: list[str], names: dict[str, str] | None = None) -> int:
        """Bump the serial and stamp these projects with it: one transaction, then one per TRANSACTION_ITEMS beyond.

        `names`: the names of projects that may have none yet (a reload's fill read them).
        """
        first, rest = projects[: TRANSACTION_ITEMS - 1], projects[TRANSACTION_ITEMS - 1 :]
        names = names or {}

        def write(tx: TransactWrite, serial: int) -> None:
            for project in first:
                self._stamp(tx, project, serial, names.get(project))

        serial = self._transact(write)
        for start in range(0, len(rest), TRANSACTION_ITEMS):
            self._stamp_beyond(rest[start : start + TRANSACTION_ITEMS], serial, names)
        return serial

    def _stamp_beyond(self, projects: list[str], serial: int, names: dict[str, str]) -> None:
        """Stamp projects beyond the serial's transaction with its serial, never lowering a newer one: in one
        transaction, or, when one of them has moved on or another write holds one, in one update each."""
        p = self.t.project
        newer = p.serial.does_not_exist() | (p.serial < serial)
        try:
            with TransactWrite(connection=self._connection) as tx:
                for project in projects:
                    tx.update(
                        p(PROJECT_PARTITION, project),
                        actions=stamp_actions(self.t, serial, names.get(project)),
                        condition=newer,
                    )
            return
        except TransactWriteError as exc:
            if not cancellation_codes(exc) & RETRIED_CANCELLATIONS:
                raise
        for project in projects:
            try:
                update_quietly(
                    p, (PROJECT_PARTITION, project), stamp_actions(self.t, serial, names.get(project)), newer
                )
            except PynamoDBException as exc:
                if not condition_failed(exc):
                    raise  # a project left without its row would hide its files: fail the reload
                name_if_unnamed(self.t, project, names.get(project))  # moved on, maybe without a name

    @translated
    def check_health(self) -> None:
        # Each table the index reads from, not only the serial's: one item (or none) from each.
        self.serial()
        for _ in self.t.project.query(PROJECT_PARTITION, limit=1, consistent_read=True):
            break
        for _ in self.t.file.scan(limit=1, attributes_to_get=["project", "filename"], consistent_read=True):
            break

    def close(self) -> None:
        """pynamodb keeps one HTTP session per model class; nothing to release."""
