"""The project page's origin panel: where a name's files come from, what the cooldown holds back, its namespaces."""

from __future__ import annotations

from dataclasses import dataclass

from pypicloud_lite.access.base import Identity
from pypicloud_lite.errors import NotFound
from pypicloud_lite.models import PackageFile, Project
from pypicloud_lite.namespaces import Namespace, matching
from pypicloud_lite.upstream.proxy import read_origin
from pypicloud_lite.upstream.report import OriginReport, describe
from pypicloud_lite.web.permissions import is_password_admin
from pypicloud_lite.web.services import AppServices


@dataclass(frozen=True)
class OriginPanel:
    name: str
    # The upstream's report; None when no upstream is configured (every name is this index's own).
    report: OriginReport | None
    # "local" when no upstream is configured (read_origin otherwise).
    origin: str
    namespaces: list[Namespace]
    # Admins get the forms: origin control and cooldown exceptions.
    manage: bool


def origin_panel(app: AppServices, identity: Identity | None, name: str, project: Project | None) -> OriginPanel:
    """The panel of `name` (normalized); NotFound when the page has nothing to show.

    A name never held here has a page while an upstream offers it (as devpi shows a mirrored project), or
    while this index keeps it from the upstream (held here before, or blocked by an admin's origin control), so
    that can be seen and changed here.
    """
    stored: list[PackageFile] = app.index.project_files(project) if project is not None else []
    report = describe(app.upstream.proxy, name, stored) if app.upstream is not None else None
    origin = report.origin if report is not None else read_origin(app.index, name)
    if project is None and (report is None or (origin == "none" and not report.proxied)):
        raise NotFound(f"No project named {name!r} in this index.")
    return OriginPanel(
        name=name,
        report=report,
        origin=origin,
        namespaces=matching(app.namespaces.current(), name),
        manage=is_password_admin(identity),
    )
