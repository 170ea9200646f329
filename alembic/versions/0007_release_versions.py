"""The release each file belongs to: its PEP 440 canonical version, beside the version its filename spells.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from packaging.utils import canonicalize_version

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# Rows read and written per round trip while filling the column in.
BATCH = 1000


def _fill(connection: sa.Connection) -> None:
    """Compute every existing row's canonical version in Python (as the index computes it), a page at a time."""
    files = sa.table(
        "ppc_files",
        sa.column("filename", sa.String),
        sa.column("version", sa.String),
        sa.column("canonical_version", sa.String),
    )
    update = (
        sa.update(files)
        .where(files.c.filename == sa.bindparam("b_filename"))
        .values(canonical_version=sa.bindparam("b_canonical"))
    )
    after = None
    while True:
        page = sa.select(files.c.filename, files.c.version).order_by(files.c.filename).limit(BATCH)
        if after is not None:
            page = page.where(files.c.filename > after)
        rows = connection.execute(page).all()
        if not rows:
            return
        # canonicalize_version leaves text that is no version as it is: such a row is its own release.
        connection.execute(
            update, [{"b_filename": name, "b_canonical": canonicalize_version(version)} for name, version in rows]
        )
        after = rows[-1][0]


def upgrade() -> None:
    with op.batch_alter_table("ppc_files") as batch:
        batch.add_column(sa.Column("canonical_version", sa.String(length=255), nullable=True))
    _fill(op.get_bind())
    with op.batch_alter_table("ppc_files") as batch:
        batch.alter_column("canonical_version", existing_type=sa.String(length=255), nullable=False)
    op.create_index("ix_ppc_files_project_canonical_version", "ppc_files", ["project", "canonical_version"])


def downgrade() -> None:
    op.drop_index("ix_ppc_files_project_canonical_version", table_name="ppc_files")
    with op.batch_alter_table("ppc_files") as batch:
        batch.drop_column("canonical_version")
