"""SQL rows to domain models and back, and the statements the SQL cache writes them with."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row, case
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from pypicloud_lite.db.tables import Base, FileRow, ProjectRow, table_of
from pypicloud_lite.models import CoreMetadata, PackageFile, Project

_INSERTS: dict[str, Any] = {"sqlite": sqlite_insert, "postgresql": pg_insert}


def conditional_upsert(dialect: str) -> Any | None:
    """The dialect's INSERT that takes ON CONFLICT ... DO UPDATE ... WHERE (SQLite, PostgreSQL); None for MySQL and
    MariaDB, whose ON DUPLICATE KEY UPDATE takes no condition."""
    return _INSERTS.get(dialect)


@functools.cache
def insert_ignoring(dialect: str, table: type[Base]) -> Any:
    """INSERT that skips rows whose key exists, in the dialect's own words; execute it with a list of rows.

    One statement run as executemany: compiled once, however many rows (a multi-row VALUES
    of thousands of rows is compiled anew every time and dominated the reload's apply).
    Built once per dialect and table (statements are immutable).
    """
    core_table = table_of(table)
    if dialect in ("mysql", "mariadb"):
        return mysql_insert(core_table).prefix_with("IGNORE")
    return _INSERTS[dialect](core_table).on_conflict_do_nothing()


@functools.cache
def insert_naming(dialect: str, stamping: bool = False) -> Any:
    """INSERT of a project row that, where the row exists still unnamed, names it: a reload lists projects under their
    normalized name, and the first change that knows the name (an upload, a file's metadata) sets it, as DynamoDB
    sets a name only where there is none. A project once named keeps its name.

    `stamping`: the row, new or not, also takes the given serial (the change's: one statement, not two, for an
    upload's project)."""
    projects = table_of(ProjectRow)
    # Compared by `name`'s binary collation on MySQL (ExactString): `Demo` is a name, not the unnamed `demo`.
    unnamed = projects.c.display_name == projects.c.name
    if dialect in ("mysql", "mariadb"):
        insert = mysql_insert(projects)
        named = case((unnamed, insert.inserted.display_name), else_=projects.c.display_name)
        if stamping:
            return insert.on_duplicate_key_update(display_name=named, serial=insert.inserted.serial)
        return insert.on_duplicate_key_update(display_name=named)
    insert = _INSERTS[dialect](projects)
    if stamping:
        named = case((unnamed, insert.excluded.display_name), else_=projects.c.display_name)
        return insert.on_conflict_do_update(
            index_elements=[projects.c.name], set_={"display_name": named, "serial": insert.excluded.serial}
        )
    return insert.on_conflict_do_update(
        index_elements=[projects.c.name], set_={"display_name": insert.excluded.display_name}, where=unnamed
    )


def naive_utc(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def to_file(row: FileRow | Row[Any]) -> PackageFile:
    """A file from its ORM row or its plain row (every column of the files table)."""
    return PackageFile(
        project=row.project,
        filename=row.filename,
        version=row.version,
        packagetype=row.packagetype,
        python_version=row.python_version,
        size=row.size,
        sha256=row.sha256,
        upload_time=row.upload_time.replace(tzinfo=UTC),
        md5=row.md5,
        blake2_256=row.blake2_256,
        requires_python=row.requires_python,
        summary=row.summary,
        metadata_sha256=row.metadata_sha256,
        yanked=row.yanked,
        yanked_reason=row.yanked_reason,
        uploader=row.uploader,
        core_metadata=CoreMetadata.from_dict(row.core_metadata) if row.core_metadata else None,
        storage_etag=row.storage_etag,
        key=row.object_key,
    )


def file_values(file: PackageFile) -> dict[str, Any]:
    return {
        "filename": file.filename,
        "project": file.project,
        "version": file.version,
        "canonical_version": file.canonical_version,
        "packagetype": file.packagetype,
        "python_version": file.python_version,
        "size": file.size,
        "sha256": file.sha256,
        "md5": file.md5,
        "blake2_256": file.blake2_256,
        "upload_time": naive_utc(file.upload_time),
        "requires_python": file.requires_python,
        "summary": file.summary,
        "metadata_sha256": file.metadata_sha256,
        "yanked": file.yanked,
        "yanked_reason": file.yanked_reason,
        "uploader": file.uploader,
        "core_metadata": file.core_metadata.to_dict() if file.core_metadata else None,
        "storage_etag": file.storage_etag,
        "object_key": file.key,
    }


def to_project(row: ProjectRow) -> Project:
    return Project(
        name=row.name,
        display_name=row.display_name,
        serial=row.serial,
        status=row.status,
        status_reason=row.status_reason,
    )


# IN lists are cut to this many values (every database takes it; SQLite's limit is 32,766).
IN_CHUNK = 1000


def chunks(values: list[Any]) -> list[list[Any]]:
    return [values[start : start + IN_CHUNK] for start in range(0, len(values), IN_CHUNK)]
