"""Project owners as on PyPI: who first uploaded a project, and giving existing projects their owner."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pypicloud_lite.access.base import OWNER_PERMS, AccessBackend, keeps_project
from pypicloud_lite.cache.base import CacheReader
from pypicloud_lite.models import PackageFile


def first_uploader(files: Iterable[PackageFile]) -> str | None:
    """The uploader of a project's earliest file (None: unknown, such as a file a reload found)."""
    earliest = min(files, key=lambda f: (f.upload_time, f.filename), default=None)
    return earliest.uploader if earliest is not None else None


def earliest_known_uploader(files: Iterable[PackageFile]) -> str | None:
    """The uploader of the earliest file whose uploader is known."""
    return first_uploader(f for f in files if f.uploader is not None)


@dataclass(frozen=True)
class OwnerAssignment:
    project: str
    username: str | None  # None: left without an owner
    reason: str


def assign_owners(cache: CacheReader, access: AccessBackend, dry_run: bool = False) -> list[OwnerAssignment]:
    """Give each project nobody keeps (no grant with 'w' or 'o') its earliest known uploader as owner.

    Idempotent: a project that already has an owner or a maintainer is left alone, and so is one whose
    uploaders are unknown or no longer users. The same rule as the SQL migration 0006, for setups whose
    cache and access database differ (a DynamoDB cache with the SQL access backend).
    """
    kept = {grant.project for grant in access.list_grants() if keeps_project(grant)}
    files_by_project: dict[str, list[PackageFile]] = {}
    for file in cache.all_files():
        files_by_project.setdefault(file.project, []).append(file)
    done = []
    for project in sorted(files_by_project):
        if project in kept:
            continue
        uploader = earliest_known_uploader(files_by_project[project])
        if uploader is None:
            done.append(OwnerAssignment(project, None, "no known uploader"))
        elif access.get_user(uploader) is None:
            done.append(OwnerAssignment(project, None, f"uploader {uploader!r} is no longer a user"))
        else:
            if not dry_run:
                access.set_grant(project, "user", uploader, OWNER_PERMS)
            done.append(OwnerAssignment(project, uploader, "earliest known uploader"))
    return done
