"""The CDN outbox: changes to purge (written with each change) and the batches that purged them.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
EXACT = sa.String(length=255).with_variant(
    mysql.VARCHAR(255, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb"
)

# pypicloud_lite.cdn's WINDOW_LOCK and FLUSH_LOCK (a migration never imports the code it migrates for).
CDN_LOCKS = ("cdn-window", "cdn-flush")
EPOCH = datetime(1970, 1, 1)

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ppc_cdn_changes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("project", EXACT, nullable=False),
        sa.Column("version", sa.String(length=255), nullable=True),
        sa.Column("filename", EXACT, nullable=True),
        sa.Column("created", TIMESTAMP, nullable=False),
        sa.Column("batch_id", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_ppc_cdn_changes_batch_id", "ppc_cdn_changes", ["batch_id"])
    op.create_table(
        "ppc_cdn_batches",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("created", TIMESTAMP, nullable=False),
        sa.Column("sent", TIMESTAMP, nullable=True),
        sa.Column("changes", sa.Integer(), nullable=False),
        sa.Column("paths", sa.Integer(), nullable=False),
        sa.Column("wildcards", sa.Integer(), nullable=False),
        sa.Column("invalidation_id", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_ppc_cdn_batches_sent", "ppc_cdn_batches", ["sent"])
    # The CDN leases exist from the start, expired: racing processes then lock one existing
    # row, where inserting it first would take InnoDB gap locks that deadlock each other.
    locks = sa.table(
        "ppc_locks", sa.column("name", sa.String), sa.column("holder", sa.String), sa.column("expires", TIMESTAMP)
    )
    op.bulk_insert(locks, [{"name": name, "holder": "", "expires": EPOCH} for name in CDN_LOCKS])


def downgrade() -> None:
    op.execute(sa.text("DELETE FROM ppc_locks WHERE name IN ('cdn-window', 'cdn-flush')"))
    op.drop_index("ix_ppc_cdn_batches_sent", table_name="ppc_cdn_batches")
    op.drop_table("ppc_cdn_batches")
    op.drop_index("ix_ppc_cdn_changes_batch_id", table_name="ppc_cdn_changes")
    op.drop_table("ppc_cdn_changes")
