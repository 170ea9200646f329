"""Every table of the SQL database (cache, CDN outbox, access backend); alembic/ holds their history."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, ForeignKey, Index, Integer, String, Table, Text
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# MySQL/MariaDB compare strings case-insensitively by default; names and filenames are exact keys.
# MySQL's DATETIME drops fractions of a second unless told otherwise.
Timestamp = DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
ExactString = String(255).with_variant(
    mysql.VARCHAR(255, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb"
)


class Base(DeclarativeBase):
    pass


class IndexStateRow(Base):
    """A single row (id 1) holding the index-wide change serial."""

    __tablename__ = "ppc_index_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    serial: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)


class ProjectRow(Base):
    __tablename__ = "ppc_projects"

    name: Mapped[str] = mapped_column(ExactString, primary_key=True)
    display_name: Mapped[str] = mapped_column(String(255), nullable=False)
    serial: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    created: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
    # PEP 792: active, archived, quarantined or deprecated.
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="active", server_default="active")
    status_reason: Mapped[str | None] = mapped_column(Text)


class FileRow(Base):
    __tablename__ = "ppc_files"
    __table_args__ = (
        Index("ix_ppc_files_project_version", "project", "version"),
        Index("ix_ppc_files_project_canonical_version", "project", "canonical_version"),
    )

    filename: Mapped[str] = mapped_column(ExactString, primary_key=True)
    project: Mapped[str] = mapped_column(
        ExactString, ForeignKey("ppc_projects.name", ondelete="CASCADE"), nullable=False
    )
    # The version as the filename spells it (normalized: `1.00` is `1.0`, `v1.0` is `1.0`).
    version: Mapped[str] = mapped_column(String(255), nullable=False)
    # The release it belongs to (models.canonical_version: `1.0`, `1.0.0` and `1.0.0.0` are all `1`).
    canonical_version: Mapped[str] = mapped_column(String(255), nullable=False)
    packagetype: Mapped[str] = mapped_column(String(32), nullable=False)
    python_version: Mapped[str] = mapped_column(String(64), nullable=False)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    # Null for a file a reload found in storage and has not hashed yet.
    sha256: Mapped[str | None] = mapped_column(String(64))
    md5: Mapped[str | None] = mapped_column(String(32))
    blake2_256: Mapped[str | None] = mapped_column(String(64))
    upload_time: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
    requires_python: Mapped[str | None] = mapped_column(Text)
    summary: Mapped[str | None] = mapped_column(Text)
    metadata_sha256: Mapped[str | None] = mapped_column(String(64))
    yanked: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    yanked_reason: Mapped[str | None] = mapped_column(Text)
    uploader: Mapped[str | None] = mapped_column(String(255))
    core_metadata: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # The storage object's ETag when last seen: a reload skips objects whose size and ETag match.
    storage_etag: Mapped[str | None] = mapped_column(String(128))
    # The object's key when it is not `<project>/<filename>` (stored by another tool).
    object_key: Mapped[str | None] = mapped_column(Text)


class DownloadCountRow(Base):
    """Downloads of one file counted by the servers, added in batches (web/download_counts.py); kept after the
    file is deleted, so a project's total counts every download it ever served."""

    __tablename__ = "ppc_download_counts"

    project: Mapped[str] = mapped_column(ExactString, primary_key=True)
    filename: Mapped[str] = mapped_column(ExactString, primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)


class LockRow(Base):
    """Named leases (the reload lock), with the holder's progress for every process to read."""

    __tablename__ = "ppc_locks"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(64), nullable=False)
    expires: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
    progress: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class CdnChangeRow(Base):
    """The CDN outbox: what a change must purge, written in the change's own transaction."""

    __tablename__ = "ppc_cdn_changes"

    # SQLite only auto-increments an INTEGER PRIMARY KEY.
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    project: Mapped[str] = mapped_column(ExactString, nullable=False)
    version: Mapped[str | None] = mapped_column(String(255))
    filename: Mapped[str | None] = mapped_column(ExactString)
    created: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
    # Null while pending; the claiming batch's id afterwards.
    batch_id: Mapped[str | None] = mapped_column(String(64), index=True)


class CdnBatchRow(Base):
    """A claimed batch (sent is null) or, once sent, the history ppc-cdn-report reads."""

    __tablename__ = "ppc_cdn_batches"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
    sent: Mapped[datetime | None] = mapped_column(Timestamp, index=True)
    changes: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    paths: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    wildcards: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    invalidation_id: Mapped[str | None] = mapped_column(String(128))


# -- the SQL access backend -------------------------------------------------------

NAME = String(100).with_variant(mysql.VARCHAR(255, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb")


class UserRow(Base):
    __tablename__ = "ppc_users"

    name: Mapped[str] = mapped_column(NAME, primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    is_admin: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    created: Mapped[datetime] = mapped_column(Timestamp, nullable=False)


class GroupRow(Base):
    __tablename__ = "ppc_groups"

    name: Mapped[str] = mapped_column(NAME, primary_key=True)


class GroupMemberRow(Base):
    __tablename__ = "ppc_group_members"

    group_name: Mapped[str] = mapped_column(NAME, ForeignKey("ppc_groups.name", ondelete="CASCADE"), primary_key=True)
    username: Mapped[str] = mapped_column(NAME, ForeignKey("ppc_users.name", ondelete="CASCADE"), primary_key=True)


class GrantRow(Base):
    __tablename__ = "ppc_grants"

    project: Mapped[str] = mapped_column(ExactString, primary_key=True)
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    name: Mapped[str] = mapped_column(NAME, primary_key=True)
    perms: Mapped[str] = mapped_column(String(8), nullable=False)


class NamespaceRow(Base):
    """A PEP 752 namespace: a reserved project-name prefix owned by a user or a group."""

    __tablename__ = "ppc_namespaces"

    name: Mapped[str] = mapped_column(ExactString, primary_key=True)  # normalized
    display_name: Mapped[str] = mapped_column(String(255), nullable=False)
    kind: Mapped[str] = mapped_column(String(8), nullable=False)
    owner: Mapped[str] = mapped_column(NAME, nullable=False)
    created: Mapped[datetime] = mapped_column(Timestamp, nullable=False)


class TokenRow(Base):
    __tablename__ = "ppc_tokens"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    username: Mapped[str] = mapped_column(
        NAME, ForeignKey("ppc_users.name", ondelete="CASCADE"), nullable=False, index=True
    )
    secret_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    description: Mapped[str] = mapped_column(String(255), nullable=False, default="")
    projects: Mapped[list[str] | None] = mapped_column(JSON)
    read_only: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    created: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
    expires: Mapped[datetime | None] = mapped_column(Timestamp)
    # The trusted publisher that minted it (ppc_publishers.id; no foreign key: the token outlives nothing).
    publisher: Mapped[str | None] = mapped_column(String(16))
    # Written at most once a minute per token (AccessBackend.TOKEN_USE_RESOLUTION).
    last_used: Mapped[datetime | None] = mapped_column(Timestamp)


class PublisherRow(Base):
    """A trusted publisher: the CI identity (kind + config) that may mint upload tokens for `project`."""

    __tablename__ = "ppc_publishers"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    project: Mapped[str] = mapped_column(ExactString, nullable=False, index=True)
    kind: Mapped[str] = mapped_column(String(8), nullable=False)
    config: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    added_by: Mapped[str] = mapped_column(
        NAME, ForeignKey("ppc_users.name", ondelete="CASCADE"), nullable=False, index=True
    )
    created: Mapped[datetime] = mapped_column(Timestamp, nullable=False)


class AuditRow(Base):
    """One audit record: who (actor, address) did what (action, project, target, detail) when."""

    __tablename__ = "ppc_audit"
    __table_args__ = (
        Index("ix_ppc_audit_at", "at"),
        Index("ix_ppc_audit_actor", "actor"),
        Index("ix_ppc_audit_project", "project"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(Timestamp, nullable=False)
    actor: Mapped[str | None] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(32), nullable=False)
    project: Mapped[str | None] = mapped_column(ExactString)
    target: Mapped[str | None] = mapped_column(String(255))
    detail: Mapped[str | None] = mapped_column(Text)
    address: Mapped[str | None] = mapped_column(String(64))


def table_of(row: type[Base]) -> Table:
    """The Core table of a mapped row class, for statements run without an ORM session."""
    return Base.metadata.tables[row.__tablename__]
