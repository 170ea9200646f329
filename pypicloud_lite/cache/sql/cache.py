"""SQLCache: rows in, frozen domain models out; every change bumps the serials in one transaction."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Collection, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    CompoundSelect,
    Connection,
    Engine,
    and_,
    bindparam,
    delete,
    func,
    insert,
    null,
    select,
    true,
    union_all,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from pypicloud_lite.cache.base import Cache
from pypicloud_lite.cache.sql.downloads import SQLDownloads
from pypicloud_lite.cache.sql.leases import SQLLeases, file_by_name, project_by_name
from pypicloud_lite.cache.sql.outbox import SQLOutbox
from pypicloud_lite.cache.sql.rows import (
    chunks,
    file_values,
    insert_ignoring,
    insert_naming,
    naive_utc,
    to_file,
    to_project,
)
from pypicloud_lite.cache.sql.serial_reader import SerialReader
from pypicloud_lite.config import CacheSettings
from pypicloud_lite.db.engine import connection, create_db_engine, transaction, write_engine
from pypicloud_lite.db.tables import (
    Base,
    CdnChangeRow,
    FileRow,
    IndexStateRow,
    ProjectRow,
    table_of,
)
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
    ProjectState,
    ReloadChanges,
    RemoveFile,
    ReplaceFile,
    SetStatus,
    SetYanked,
    SyncProject,
    canonical_version,
    joining_release,
    joining_releases,
)

logger = logging.getLogger(__name__)

_SQLITE_MAGIC = b"SQLite format 3\x00"

# What a reload fills in once it has read an object.
DETAIL_FIELDS = frozenset(
    {"sha256", "requires_python", "summary", "metadata_sha256", "core_metadata", "storage_etag", "size"}
)


# The executemany parameters of a batched fill: the details and the row's key.
FILL_COLUMNS = DETAIL_FIELDS | {"filename"}


# The method that commits each kind of change (in a write session), AddFile apart.
_HANDLERS: dict[type, str] = {
    RemoveFile: "_remove_file",
    ReplaceFile: "_replace_file",
    FillDetails: "_fill_one",
    FillMany: "_fill_batch",
    SetYanked: "_set_yanked",
    SetStatus: "_set_status",
    SyncProject: "_sync_project",
}


@dataclass
class _Stamp:
    """What one change touched, filled in by its writer inside `SQLCache._change`."""

    serial: int
    projects: set[str] = field(default_factory=set)
    purges: list[CdnChange] = field(default_factory=list)
    cdn: bool = False
    # Projects whose row took the serial already (written by the change itself): not stamped again.
    stamped: set[str] = field(default_factory=set)

    def touch(self, project: str, *purges: CdnChange) -> None:
        self.projects.add(project)
        self.purges.extend(purges)

    def applied(self, count: int, file: PackageFile | None = None) -> Applied:
        return Applied(self.serial, count, file, frozenset(self.projects), self.cdn)


# A project as plain columns, in Project's field order.
_PROJECT_COLUMNS = select(
    ProjectRow.name, ProjectRow.display_name, ProjectRow.serial, ProjectRow.status, ProjectRow.status_reason
)
# The projects stamped above a serial, then a row of NULLs but for the count of every project: one statement, so one
# snapshot on every database (PostgreSQL's READ COMMITTED takes one per statement, not per transaction).
_CHANGED_SINCE: CompoundSelect[Any] = union_all(
    _PROJECT_COLUMNS.where(ProjectRow.serial > bindparam("b_serial")),
    select(null(), null(), func.count(), null(), null()).select_from(ProjectRow),
)

# An upload's statements, built once: Core on the tables, run on a plain connection.
_FILES, _PROJECTS, _STATE = table_of(FileRow), table_of(ProjectRow), table_of(IndexStateRow)
_BUMP = update(_STATE).where(_STATE.c.id == 1).values(serial=_STATE.c.serial + 1)
_BUMP_RETURNING = _BUMP.returning(_STATE.c.serial)
_SERIAL = select(_STATE.c.serial).where(_STATE.c.id == 1)
_STAMP_PROJECT = update(_PROJECTS).where(_PROJECTS.c.name == bindparam("b_name")).values(serial=bindparam("b_serial"))
_RELEASE_YANKS = select(_FILES.c.yanked, _FILES.c.yanked_reason).where(
    _FILES.c.project == bindparam("b_project"), _FILES.c.canonical_version == bindparam("b_version")
)
_INSERT_FILE = insert(_FILES)
# A fill's statements: the rows as they are, then each row's details (executemany).
_FILL_CURRENT = select(_FILES.c.filename, _FILES.c.storage_etag, _FILES.c.sha256).where(
    _FILES.c.filename.in_(bindparam("b_names", expanding=True))
)
_FILL = (
    update(_FILES)
    .where(_FILES.c.filename == bindparam("b_filename"))
    .values({name: bindparam(f"b_{name}") for name in sorted(DETAIL_FIELDS)})
)
# A hash that replaces another: the digests of the bytes that are gone go with them.
_FILL_REPLACING = _FILL.values(md5=None, blake2_256=None)


class _NothingApplies(Exception):
    """Raised in a change's transaction when nothing of it applies: the transaction rolls back, serial and all."""


class SQLCache(SQLLeases, SQLOutbox, SQLDownloads, Cache):
    def __init__(self, engine: Engine, cdn_outbox: bool = False) -> None:
        super().__init__()
        self.engine = engine
        self.cdn_outbox = cdn_outbox
        self.writes_on_the_cpu = engine.dialect.name == "sqlite"
        self._read = sessionmaker(engine, expire_on_commit=False)
        self._write_engine = write_engine(engine)
        self._write = sessionmaker(self._write_engine, expire_on_commit=False)
        self._serial = SerialReader(engine)
        self._header_fd: int | None = None

    @classmethod
    def from_settings(cls, settings: CacheSettings) -> SQLCache:
        engine = create_db_engine(settings)
        if settings.migrate_on_start or settings.check_schema:
            # Here, not at the top: alembic and the schema's history are only for this check (0.1 s to import).
            from pypicloud_lite.db import migrate

            migrate.prepare(engine, settings.migrate_on_start, "package cache database")
        return cls(engine, cdn_outbox=settings.cdn_outbox)

    def _session(self, write: bool = False) -> AbstractContextManager[Session]:
        return transaction(self._write if write else self._read, "package cache database")

    def _connection(self, write: bool = False) -> AbstractContextManager[Connection]:
        return connection(self._write_engine if write else self.engine, "package cache database")

    # -- the one change path -------------------------------------------------------

    @contextmanager
    def _change(self, session: Session | Connection) -> Iterator[_Stamp]:
        """Bump the serial first, let the caller write, then stamp its projects and record its purges.

        Taking the serial's row lock before any other makes every writer lock in the
        same order (no deadlocks on InnoDB) and serializes changes cheaply. Everything
        happens in the caller's transaction: a change, its serial and its purges commit together.
        """
        if self.engine.dialect.update_returning:  # SQLite and PostgreSQL: one statement, not two
            serial = session.scalar(_BUMP_RETURNING)
        else:
            session.execute(_BUMP)
            serial = session.scalar(_SERIAL)
        assert serial is not None, "ppc_index_state row 1 missing: run the migrations"
        stamp = _Stamp(serial)
        yield stamp
        projects = stamp.projects - stamp.stamped
        if len(projects) == 1:  # one statement built once
            session.execute(_STAMP_PROJECT, {"b_name": next(iter(projects)), "b_serial": serial})
        elif projects:
            for batch in chunks(sorted(projects)):
                session.execute(update(ProjectRow).where(ProjectRow.name.in_(batch)).values(serial=serial))
        if self.cdn_outbox and stamp.purges:
            now = naive_utc(datetime.now(UTC))
            rows = [
                {"project": c.project, "version": c.version, "filename": c.filename, "created": now, "batch_id": None}
                for c in dict.fromkeys(stamp.purges)
            ]
            session.execute(insert(CdnChangeRow), rows)
            stamp.cdn = True

    def _commit(self, change: Change) -> Applied:
        if isinstance(change, AddFile):
            return self._add_file(change)
        handler = _HANDLERS.get(type(change))
        if handler is None:
            raise TypeError(f"not a change: {change!r}")
        try:
            with self._session(write=True) as session:
                applied: Applied = getattr(self, handler)(session, change)
                return applied
        except _NothingApplies:
            return Applied(None)  # rolled back whole: the serial stays

    def _add_file(self, change: AddFile) -> Applied:
        """One transaction of Core statements built once (no ORM session: it cost more than the statements)."""
        file = change.file
        try:
            with self._connection(write=True) as conn:
                if change.lease is not None:
                    self._release(conn, change.lease, {})  # the upload's lease ends as its row commits
                # No SELECT first: an existing row fails the INSERT (below), and is answered from there.
                with self._change(conn) as stamp:
                    # Read under the serial's lock: a yank of the release commits wholly before or after.
                    file = self._joining_release(conn, file)
                    self._ensure_projects(conn, {file.project: change.display_name}, stamp)
                    conn.execute(_INSERT_FILE, file_values(file))
                    stamp.touch(file.project, CdnChange(file.project, file.version))
        except IntegrityError:
            # A row exists under the filename (a racing writer's): the whole change rolled back, serial included.
            stored = self.get_file(file.filename)
            if stored is None:
                raise
            if change.lease is not None:
                self.release_lock(change.lease.name, change.lease.holder, {})
            return Applied(None, 1, stored)
        return stamp.applied(1, file)

    @staticmethod
    def _joining_release(conn: Connection, file: PackageFile) -> PackageFile:
        """The file as its release takes it: yanked, with the release's reason, when every file of it is."""
        # Only what the release's files say of yanks: a release of many wheels holds as many core metadata.
        rows = conn.execute(_RELEASE_YANKS, {"b_project": file.project, "b_version": file.canonical_version})
        return joining_release(file, [(yanked, reason) for yanked, reason in rows])

    def _remove_file(self, session: Session, change: RemoveFile) -> Applied:
        row = session.get(FileRow, change.filename)
        if row is None:
            return Applied(None)
        with self._change(session) as stamp:
            session.execute(delete(FileRow).where(FileRow.filename == change.filename))
            stamp.touch(row.project, CdnChange(row.project, row.version, change.filename))
            self._drop_if_empty(session, [row.project])
        return stamp.applied(1)

    @staticmethod
    def _drop_if_empty(session: Session, projects: list[str]) -> None:
        """Projects left without files leave the index (a 404, as for any unknown name), unless an admin gave
        them a status: that decision stays. Under the serial's lock, so no upload adds a file meanwhile."""
        for batch in chunks(sorted(set(projects))):
            has_files = select(FileRow.filename).where(FileRow.project == ProjectRow.name).exists()
            session.execute(
                delete(ProjectRow).where(ProjectRow.name.in_(batch), ProjectRow.status == "active", ~has_files)
            )

    def _replace_file(self, session: Session, change: ReplaceFile) -> Applied:
        file = change.file
        with self._change(session) as stamp:
            self._ensure_projects(session, {file.project: file.upload_name})
            session.execute(delete(FileRow).where(FileRow.filename == file.filename))
            session.add(FileRow(**file_values(file)))
            stamp.touch(file.project, CdnChange(file.project, file.version, file.filename))
        return stamp.applied(1, file)

    def _fill_one(self, session: Session, change: FillDetails) -> Applied:
        return self._fill_many(session, [change])

    def _fill_batch(self, session: Session, change: FillMany) -> Applied:
        return self._fill_many(session, change.fills)

    def _fill_many(self, session: Session, fills: Sequence[FillDetails]) -> Applied:
        """Fill in the rows that still have the fill's ETag, in one transaction: two executemany UPDATEs.

        A hash that replaces another drops the row's other digests (of bytes that are gone).
        """
        conn = session.connection()
        with self._change(conn) as stamp:
            # Read under the serial's lock, once: every change that committed before is seen, none commits meanwhile.
            fillable = self._fillable(conn, fills)
            if not fillable:
                raise _NothingApplies  # the serial's move is rolled back with it
            for replaced in (False, True):
                rows = [
                    {f"b_{name}": value for name, value in file_values(fill.file).items() if name in FILL_COLUMNS}
                    for fill, was_replaced in fillable
                    if was_replaced is replaced
                ]
                if rows:
                    conn.execute(_FILL_REPLACING if replaced else _FILL, rows)
            # A project the listing made is named by the first of its fills that read a name.
            names: dict[str, str] = {}
            for fill, _ in fillable:
                if fill.display_name:
                    names.setdefault(fill.file.project, fill.display_name)
            self._ensure_projects(conn, names)
            for fill, replaced in fillable:
                file = fill.file
                stamp.touch(file.project, CdnChange(file.project, file.version, file.filename if replaced else None))
        return stamp.applied(len(fillable))

    @staticmethod
    def _fillable(conn: Connection, fills: Sequence[FillDetails]) -> list[tuple[FillDetails, bool]]:
        """The fills whose row still has their ETag, each with whether it replaces another hash."""
        current: dict[str, tuple[str | None, str | None]] = {}
        for batch in chunks([fill.file.filename for fill in fills]):
            current.update((name, (etag, sha)) for name, etag, sha in conn.execute(_FILL_CURRENT, {"b_names": batch}))
        fillable = []
        for fill in fills:
            etag, sha = current.get(fill.file.filename, (None, None))
            if fill.file.filename in current and etag == fill.file.storage_etag:
                fillable.append((fill, sha is not None and sha != fill.file.sha256))
        return fillable

    def _set_yanked(self, session: Session, change: SetYanked) -> Applied:
        reason = change.reason if change.yanked else None
        release = (FileRow.project == change.project, FileRow.canonical_version == canonical_version(change.version))
        # Change only what differs: unchanged rows keep the serial (and ETags) as they are.
        differs = (FileRow.yanked != change.yanked) | (func.coalesce(FileRow.yanked_reason, "") != (reason or ""))
        count = int(session.scalar(select(func.count()).select_from(FileRow).where(*release)) or 0)
        if not session.scalar(select(func.count()).select_from(FileRow).where(*release, differs)):
            return Applied(None, count)
        with self._change(session) as stamp:
            session.execute(update(FileRow).where(*release).values(yanked=change.yanked, yanked_reason=reason))
            # Every spelling its files carry is a per-version JSON page that shows the change.
            spellings = session.scalars(select(FileRow.version).where(*release).distinct())
            stamp.touch(change.project, *(CdnChange(change.project, v) for v in sorted(spellings)))
        return stamp.applied(count)

    def _set_status(self, session: Session, change: SetStatus) -> Applied:
        row = session.get(ProjectRow, change.project)
        if row is None:
            return Applied(None)
        if (row.status, row.status_reason) == (change.status, change.reason):
            return Applied(None, 1)
        with self._change(session) as stamp:
            session.execute(
                update(ProjectRow)
                .where(ProjectRow.name == change.project)
                .values(status=change.status, status_reason=change.reason)
            )
            # A status shows on every page of the project (quarantine hides every file).
            versions = session.scalars(select(FileRow.version).where(FileRow.project == change.project).distinct())
            stamp.touch(
                change.project, CdnChange(change.project), *(CdnChange(change.project, v) for v in sorted(versions))
            )
            # Back to active without files: only the status kept the project listed (as after a project delete).
            self._drop_if_empty(session, [change.project])
        return stamp.applied(1)

    def _sync_project(self, session: Session, change: SyncProject) -> Applied:
        return self._sync_state(session, change.state)

    def _sync_state(self, session: Session, state: ProjectState, stamp: _Stamp | None = None) -> Applied:
        """The project's name, status and yanks as storage records them (in `stamp`'s change, or a new one)."""
        project = session.get(ProjectRow, state.name)
        files = session.scalars(select(FileRow).where(FileRow.project == state.name)).all()
        if project is None and not files and state.status == "active":
            return Applied(None)  # a project without files is not in the index
        wrong = [f for f in files if state.yank_of(f.filename) != (f.yanked, f.yanked_reason if f.yanked else None)]
        shown = (project.display_name, project.status, project.status_reason) if project else None
        # Compared here: MySQL's default collation would call `Demo` and `demo` equal.
        if not wrong and shown == (state.display_name, state.status, state.status_reason):
            return Applied(None, 1)
        with contextlib.nullcontext(stamp) if stamp else self._change(session) as stamped:
            self._ensure_projects(session, {state.name: state.display_name})
            session.execute(
                update(ProjectRow)
                .where(ProjectRow.name == state.name)
                .values(display_name=state.display_name, status=state.status, status_reason=state.status_reason)
            )
            for file in wrong:
                yanked, reason = state.yank_of(file.filename)
                session.execute(
                    update(FileRow).where(FileRow.filename == file.filename).values(yanked=yanked, yanked_reason=reason)
                )
            versions = sorted({f.version for f in files})
            stamped.touch(state.name, CdnChange(state.name), *(CdnChange(state.name, v) for v in versions))
        return stamped.applied(1)

    def _ensure_projects(
        self, session: Session | Connection, names: dict[str, str], stamp: _Stamp | None = None
    ) -> None:
        """Each project's row (name -> display name), made where missing; a row a reload listed and nothing has
        named yet takes the name (insert_naming). In name order, as every writer locks rows. With the change's
        `stamp`, every one of those rows takes its serial in the same statement (the change stamps them no more)."""
        now = naive_utc(datetime.now(UTC))
        serial = stamp.serial if stamp is not None else 0
        rows = [
            {"name": name, "display_name": display, "serial": serial, "created": now, "status": "active"}
            for name, display in sorted(names.items())
        ]
        if rows:
            session.execute(insert_naming(self.engine.dialect.name, stamp is not None), rows)
        if stamp is not None:
            stamp.stamped.update(names)

    # -- reads -------------------------------------------------------------------

    def get_file(self, filename: str) -> PackageFile | None:
        with self._connection() as conn:
            return file_by_name(conn, filename)

    def get_project(self, name: str) -> Project | None:
        with self._connection() as conn:
            return project_by_name(conn, name)

    def list_projects(self) -> list[Project]:
        # Plain rows, not ORM objects: every process reads them again after each change (pages, /simple/).
        with self._session() as session:
            return [Project(*row) for row in session.execute(_PROJECT_COLUMNS.order_by(ProjectRow.name))]

    def projects_changed_since(self, serial: int) -> tuple[list[Project], int]:
        with self._connection() as conn:
            rows = conn.execute(_CHANGED_SINCE, {"b_serial": serial}).all()
        changed = [Project(*row) for row in rows if row[0] is not None]
        return changed, next(int(row[2]) for row in rows if row[0] is None)

    def counts(self) -> tuple[int, int]:
        with self._session() as session:
            projects = session.scalar(select(func.count()).select_from(ProjectRow))
            files = session.scalar(select(func.count()).select_from(FileRow))
        return projects or 0, files or 0

    def search_projects(
        self, query: str, offset: int, limit: int, only: Collection[str] | None = None
    ) -> tuple[list[Project], int]:
        condition = ProjectRow.name.contains(query, autoescape=True) if query else true()
        if only is not None:
            condition = and_(condition, ProjectRow.name.in_(list(only)))
        with self._session() as session:
            total = session.scalar(select(func.count()).select_from(ProjectRow).where(condition)) or 0
            rows = session.scalars(
                select(ProjectRow).where(condition).order_by(ProjectRow.name).offset(offset).limit(limit)
            )
            return [to_project(row) for row in rows], total

    def files_of_projects(self, names: list[str]) -> list[PackageFile]:
        if not names:
            return []
        with self._session() as session:
            return self._files_of(session, names)

    @staticmethod
    def _files_of(session: Session, names: list[str]) -> list[PackageFile]:
        files: list[PackageFile] = []
        for batch in chunks(names):
            rows = session.scalars(select(FileRow).where(FileRow.project.in_(batch)).order_by(FileRow.filename))
            files.extend(to_file(row) for row in rows)
        return sorted(files, key=lambda f: f.filename)

    def project_files(self, name: str) -> list[PackageFile]:
        with self._session() as session:
            rows = session.scalars(select(FileRow).where(FileRow.project == name).order_by(FileRow.filename))
            return [to_file(row) for row in rows]

    # -- reload ----------------------------------------------------------------

    def all_files(self) -> list[PackageFile]:
        with self._session() as session:
            return [to_file(row) for row in session.scalars(select(FileRow))]

    def _commit_reload(self, changes: ReloadChanges) -> Applied:
        with self._session(write=True) as session, self._change(session) as stamp:
            # Under the serial's lock, which every upload, delete and yank takes first: the rows read
            # here stay as they are until the commit.
            current = {
                f.filename: f for f in self._rows(session, [*(f.filename for f in changes.changed), *changes.removed])
            }
            changed = [f for f in changes.changed if changes.applies_to(f.filename, current.get(f.filename))]
            # Read before this reload creates projects: a project changed since the reload read it is left alone.
            serials: dict[str, int] = {}
            for batch in chunks([s.name for s in changes.projects]):
                query = select(ProjectRow.name, ProjectRow.serial).where(ProjectRow.name.in_(batch))
                serials.update((name, serial) for name, serial in session.execute(query))
            states = [s for s in changes.projects if changes.state_applies(s.name, serials.get(s.name))]
            removed = [name for name in changes.removed if changes.applies_to(name, current.get(name))]
            added = list(changes.added)
            now = naive_utc(datetime.now(UTC))
            projects = sorted({file.project for file in added})
            if projects:
                project_rows = [
                    {"name": p, "display_name": p, "serial": 0, "created": now, "status": "active"} for p in projects
                ]
                session.execute(insert_ignoring(self.engine.dialect.name, ProjectRow), project_rows)
            if changed:
                session.execute(delete(FileRow).where(FileRow.filename.in_([f.filename for f in changed])))
            if added:
                # A file a reload finds joins its release as an upload does: yanked if the release is.
                added = joining_releases(added, self._files_of(session, projects))
            rows = [file_values(f) for f in added + changed]
            if rows:
                session.execute(insert_ignoring(self.engine.dialect.name, FileRow), rows)
            for f in added:
                stamp.touch(f.project, CdnChange(f.project, f.version))
            for f in changed:
                stamp.touch(f.project, CdnChange(f.project, f.version, f.filename))
            for batch in chunks(removed):
                gone = session.execute(
                    select(FileRow.project, FileRow.version, FileRow.filename).where(FileRow.filename.in_(batch))
                ).all()
                for project, version, filename in gone:
                    stamp.touch(project, CdnChange(project, version, filename))
                session.execute(delete(FileRow).where(FileRow.filename.in_(batch)))
                self._drop_if_empty(session, [project for project, _, _ in gone])
            for state in states:
                self._sync_state(session, state, stamp)
            if changes.etags:
                # ETags alone change nothing a page shows: no project stamp, no purge.
                files = Base.metadata.tables[FileRow.__tablename__]
                session.execute(
                    update(files)
                    .where(files.c.filename == bindparam("b_filename"), files.c.storage_etag.is_(None))
                    .values(storage_etag=bindparam("b_etag")),
                    [{"b_filename": name, "b_etag": etag} for name, etag in changes.etags.items()],
                )
        return stamp.applied(len(added) + len(changed) + len(removed))

    @staticmethod
    def _rows(session: Session, filenames: list[str]) -> list[PackageFile]:
        rows: list[PackageFile] = []
        for batch in chunks(filenames):
            rows.extend(to_file(row) for row in session.scalars(select(FileRow).where(FileRow.filename.in_(batch))))
        return rows

    def serial(self) -> int:
        return self._serial.read()

    def check_health(self) -> None:
        # Through the pool, as every other query goes: health is about the pool too. The serial alone
        # can come from a page SQLite keeps cached; a row of the biggest table is a real read.
        with self._session() as session:
            session.scalar(select(func.coalesce(func.max(IndexStateRow.serial), 0)))
            session.scalar(select(FileRow.filename).limit(1))
        self._check_sqlite_header()

    def _check_sqlite_header(self) -> None:
        """A SQLite file's first bytes, read from disk: connections with the pages cached do not see damage.

        Read through one descriptor kept open until close(): closing any descriptor of the file would drop
        every POSIX lock this process holds on it, SQLite's included (sqlite.org/howtocorrupt.html).
        """
        url = self.engine.url
        if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
            return
        try:
            if self._header_fd is None:
                self._header_fd = os.open(url.database, os.O_RDONLY)
            header = os.pread(self._header_fd, len(_SQLITE_MAGIC), 0)
        except OSError as exc:
            raise BackendUnavailable(f"The package cache database cannot be read: {exc.strerror}") from exc
        if header != _SQLITE_MAGIC:
            raise BackendUnavailable("The package cache database file is damaged (not a SQLite database header).")

    def close(self) -> None:
        self._serial.close()
        self.engine.dispose()
        if self._header_fd is not None:
            # After the engine's connections: closing it releases this process's locks on the file.
            os.close(self._header_fd)
            self._header_fd = None
