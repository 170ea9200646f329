"""When each API token was last used (at most once a minute written, so a busy token costs no write per request).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ppc_tokens") as batch:
        batch.add_column(sa.Column("last_used", TIMESTAMP, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ppc_tokens") as batch:
        batch.drop_column("last_used")
