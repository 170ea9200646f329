"""Download counts: one row per file, added to in batches by the servers.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

EXACT = sa.String(length=255).with_variant(
    mysql.VARCHAR(255, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb"
)

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ppc_download_counts",
        sa.Column("project", EXACT, nullable=False),
        sa.Column("filename", EXACT, nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("project", "filename"),
    )


def downgrade() -> None:
    op.drop_table("ppc_download_counts")
