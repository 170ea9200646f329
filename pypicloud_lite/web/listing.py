"""What the API and the UI both list: the projects a caller may see, and a project's releases newest first."""

from __future__ import annotations

from pypicloud_lite.access.base import Identity
from pypicloud_lite.models import PackageFile, ProjectSummary, releases_of
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
    """(the release's version, its files) newest release first: one per PEP 440 version, whatever its files spell."""
    return [(release.version, list(release.files)) for release in reversed(releases_of(files))]
