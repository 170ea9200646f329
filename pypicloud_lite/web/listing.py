"""What the API and the UI both list: the projects a caller may see, a project's releases newest first and
what a release's metadata says."""

from __future__ import annotations

from collections.abc import Callable

from packaging.requirements import InvalidRequirement, Requirement

from pypicloud_lite.access.base import Identity
from pypicloud_lite.models import CoreMetadata, PackageFile, ProjectSummary, releases_of
from pypicloud_lite.naming import normalize
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


def release_metadata(files: list[PackageFile]) -> CoreMetadata | None:
    """A release's core metadata: the wheel's first (what PEP 658 serves), else any file's."""
    ordered = sorted(files, key=lambda f: (f.core_metadata is None, f.packagetype != "bdist_wheel"))
    return ordered[0].core_metadata if ordered else None


def requirement_links(requires_dist: tuple[str, ...], held: Callable[[str], bool]) -> list[tuple[str, str | None]]:
    """Each Requires-Dist line with the normalized name of the project it needs when this index holds it."""
    links: list[tuple[str, str | None]] = []
    for line in requires_dist:
        try:
            name = normalize(Requirement(line).name)
        except InvalidRequirement:
            links.append((line, None))
            continue
        links.append((line, name if held(name) else None))
    return links
