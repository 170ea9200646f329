"""Trusted publishers (the SQL access backend), and the publisher that minted a token.

A publisher's identity (repository, workflow, environment, or an issuer and required claims) is one JSON
column: the kinds differ in what they name, and the exchange matches it in Python.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
EXACT = sa.String(length=255).with_variant(
    mysql.VARCHAR(255, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb"
)
NAME = sa.String(length=100).with_variant(
    mysql.VARCHAR(255, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb"
)

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ppc_publishers",
        sa.Column("id", sa.String(length=16), nullable=False),
        sa.Column("project", EXACT, nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("added_by", NAME, nullable=False),
        sa.Column("created", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(["added_by"], ["ppc_users.name"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_ppc_publishers_project", "ppc_publishers", ["project"])
    op.create_index("ix_ppc_publishers_added_by", "ppc_publishers", ["added_by"])
    with op.batch_alter_table("ppc_tokens") as batch:
        batch.add_column(sa.Column("publisher", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ppc_tokens") as batch:
        batch.drop_column("publisher")
    # Dropping the table drops its indexes (MariaDB refuses to drop one a foreign key needs first).
    op.drop_table("ppc_publishers")
