"""Initial SQL cache schema: projects, files and the index-wide change serial.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

# Exact (binary) comparison on MySQL/MariaDB, whose default collation ignores case.
TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
EXACT = sa.String(length=255).with_variant(
    mysql.VARCHAR(255, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb"
)

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    state = op.create_table(
        "ppc_index_state",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("serial", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.bulk_insert(state, [{"id": 1, "serial": 0}])
    op.create_table(
        "ppc_projects",
        sa.Column("name", EXACT, nullable=False),
        sa.Column("display_name", sa.String(length=255), nullable=False),
        sa.Column("serial", sa.BigInteger(), nullable=False),
        sa.Column("created", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "ppc_files",
        sa.Column("filename", EXACT, nullable=False),
        sa.Column("project", EXACT, nullable=False),
        sa.Column("version", sa.String(length=255), nullable=False),
        sa.Column("packagetype", sa.String(length=32), nullable=False),
        sa.Column("python_version", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("md5", sa.String(length=32), nullable=True),
        sa.Column("blake2_256", sa.String(length=64), nullable=True),
        sa.Column("upload_time", TIMESTAMP, nullable=False),
        sa.Column("requires_python", sa.Text(), nullable=True),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("metadata_sha256", sa.String(length=64), nullable=True),
        sa.Column("yanked", sa.Boolean(), nullable=False),
        sa.Column("yanked_reason", sa.Text(), nullable=True),
        sa.Column("uploader", sa.String(length=255), nullable=True),
        sa.Column("core_metadata", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(["project"], ["ppc_projects.name"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("filename"),
    )
    op.create_index("ix_ppc_files_project_version", "ppc_files", ["project", "version"])


def downgrade() -> None:
    # Dropping the table drops its index (MySQL refuses to drop an index a foreign key uses).
    op.drop_table("ppc_files")
    op.drop_table("ppc_projects")
    op.drop_table("ppc_index_state")
