"""SQL access backend (users, groups, grants, tokens) and PEP 792 project status.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
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

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ppc_projects") as batch:
        batch.add_column(sa.Column("status", sa.String(length=16), server_default="active", nullable=False))
        batch.add_column(sa.Column("status_reason", sa.Text(), nullable=True))
    op.create_table(
        "ppc_users",
        sa.Column("name", NAME, nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("is_admin", sa.Boolean(), nullable=False),
        sa.Column("created", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table("ppc_groups", sa.Column("name", NAME, nullable=False), sa.PrimaryKeyConstraint("name"))
    op.create_table(
        "ppc_group_members",
        sa.Column("group_name", NAME, nullable=False),
        sa.Column("username", NAME, nullable=False),
        sa.ForeignKeyConstraint(["group_name"], ["ppc_groups.name"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["username"], ["ppc_users.name"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("group_name", "username"),
    )
    op.create_table(
        "ppc_grants",
        sa.Column("project", EXACT, nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("name", NAME, nullable=False),
        sa.Column("perms", sa.String(length=8), nullable=False),
        sa.PrimaryKeyConstraint("project", "kind", "name"),
    )
    op.create_table(
        "ppc_tokens",
        sa.Column("id", sa.String(length=16), nullable=False),
        sa.Column("username", NAME, nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("description", sa.String(length=255), nullable=False),
        sa.Column("projects", sa.JSON(), nullable=True),
        sa.Column("read_only", sa.Boolean(), nullable=False),
        sa.Column("created", TIMESTAMP, nullable=False),
        sa.Column("expires", TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(["username"], ["ppc_users.name"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_ppc_tokens_username", "ppc_tokens", ["username"])


def downgrade() -> None:
    op.drop_table("ppc_tokens")
    op.drop_table("ppc_grants")
    op.drop_table("ppc_group_members")
    op.drop_table("ppc_groups")
    op.drop_table("ppc_users")
    with op.batch_alter_table("ppc_projects") as batch:
        batch.drop_column("status_reason")
        batch.drop_column("status")
