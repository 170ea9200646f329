"""Project owners: each project nobody keeps gets its earliest known uploader as owner (grant 'rwdo').

Only where one database holds both the cache (ppc_files) and the SQL access backend (ppc_grants, ppc_users):
other setups run `ppc-assign-owners <ini>`, which applies the same rule. Nothing changes in the schema
(ppc_grants.perms is 8 characters wide), so the downgrade leaves the grants alone.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# pypicloud_lite.access.base's OWNER_PERMS and keeper letters (a migration never imports the code it migrates for).
OWNER_PERMS = "rwdo"
KEEPER_LETTERS = ("w", "o")

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    if not {"ppc_files", "ppc_grants", "ppc_users"} <= set(sa.inspect(bind).get_table_names()):
        return
    files = sa.table(
        "ppc_files",
        sa.column("filename", sa.String),
        sa.column("project", sa.String),
        sa.column("upload_time", sa.DateTime),
        sa.column("uploader", sa.String),
    )
    grants = sa.table(
        "ppc_grants",
        sa.column("project", sa.String),
        sa.column("kind", sa.String),
        sa.column("name", sa.String),
        sa.column("perms", sa.String),
    )
    users = sa.table("ppc_users", sa.column("name", sa.String))
    kept = {
        project
        for project, perms in bind.execute(sa.select(grants.c.project, grants.c.perms))
        if any(letter in perms for letter in KEEPER_LETTERS)
    }
    known = set(bind.execute(sa.select(users.c.name)).scalars())
    first: dict[str, str] = {}
    rows = bind.execute(
        sa.select(files.c.project, files.c.uploader)
        .where(files.c.uploader.is_not(None))
        .order_by(files.c.project, files.c.upload_time, files.c.filename)
    )
    for project, uploader in rows:
        first.setdefault(project, uploader)
    owners = [
        {"project": project, "kind": "user", "name": uploader, "perms": OWNER_PERMS}
        for project, uploader in sorted(first.items())
        if project not in kept and uploader in known
    ]
    # A project with a read-only (or delete-only) grant for this user: that row becomes the owner's.
    existing = {
        (project, name)
        for project, kind, name in bind.execute(sa.select(grants.c.project, grants.c.kind, grants.c.name))
        if kind == "user"
    }
    for owner in owners:
        if (owner["project"], owner["name"]) in existing:
            bind.execute(
                grants.update()
                .where(grants.c.project == owner["project"], grants.c.kind == "user", grants.c.name == owner["name"])
                .values(perms=OWNER_PERMS)
            )
    inserts = [o for o in owners if (o["project"], o["name"]) not in existing]
    if inserts:
        op.bulk_insert(grants, inserts)


def downgrade() -> None:
    """The owner grants stay: they are ordinary grants, and 0005's code reads 'rwdo' as 'rwd'."""
