"""What the API and the UI both list: the projects a caller may see, and a project's releases newest first."""

from __future__ import annotations

from packaging.version import Version

from pypicloud_lite.access.base import Identity
from pypicloud_lite.models import PackageFile, ProjectSummary
from pypicloud_lite.web.services import AppServices


def search_visible(
    app: AppServices, identity: Identity | None, query: str, page: int, per_page: int
) -> tuple[list[ProjectSummary], int]:
    """One page of the projects this caller may read, and how many match in all."""
    only = None
    if not app.access.reads_everything(identity):
        # Filter in the query, so pages and the total count only what the caller may see.
        only = app.access.readable(identity, [p.name for p in app.index.list_projects()])
    return app.index.search_projects(query, page, per_page, only)


def releases_newest_first(files: list[PackageFile]) -> list[tuple[str, list[PackageFile]]]:
    """Files grouped by release, the newest release first in PEP 440 order."""
    releases: dict[str, list[PackageFile]] = {}
    for file in files:
        releases.setdefault(file.version, []).append(file)
    return [(version, releases[version]) for version in sorted(releases, key=Version, reverse=True)]
