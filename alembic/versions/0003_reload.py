"""Reload support: storage ETag per file, files listed before they are hashed, and a lock table.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ppc_files") as batch:
        batch.alter_column("sha256", existing_type=sa.String(length=64), nullable=True)
        batch.add_column(sa.Column("storage_etag", sa.String(length=128), nullable=True))
    op.create_table(
        "ppc_locks",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=64), nullable=False),
        sa.Column("expires", TIMESTAMP, nullable=False),
        sa.Column("progress", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("ppc_locks")
    with op.batch_alter_table("ppc_files") as batch:
        batch.drop_column("storage_etag")
        batch.alter_column("sha256", existing_type=sa.String(length=64), nullable=False)
