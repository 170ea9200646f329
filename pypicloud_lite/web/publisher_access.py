"""Who may see, register and remove a project's trusted publishers; the API and the UI both decide here.

An existing project's publishers are its owners' (and admins') business, as its grants are. A publisher for
a name no project has yet is "pending": whoever may create that project may register one, and it is theirs
(and admins') to remove, until its first publish creates the project with them as its owner.
"""

from __future__ import annotations

import secrets
from typing import Any

from pypicloud_lite.access.base import Identity
from pypicloud_lite.access.publishers import Publisher, new_publisher
from pypicloud_lite.errors import InvalidInput, NotFound, PermissionDenied, ReadOnlyAccess
from pypicloud_lite.models import utcnow
from pypicloud_lite.naming import is_valid_project_name, normalize
from pypicloud_lite.web.permissions import check_may_create_in_namespace, may_manage_grants
from pypicloud_lite.web.services import AppServices


def _exists(app: AppServices, project: str) -> bool:
    return app.index.find_project(project) is not None


def may_manage_publishers(app: AppServices, identity: Identity, project: str) -> bool:
    if _exists(app, project):
        return may_manage_grants(app.access, identity, project)
    return identity.token is None and app.access.can_create(identity, project)


def _check_enabled(app: AppServices) -> None:
    if not app.publishing.enabled:
        raise ReadOnlyAccess(
            "Trusted publishing needs the SQL access backend (auth.backend = sql) and trusted_publishing.enabled."
        )


def register_publisher(app: AppServices, identity: Identity, name: str, fields: dict[str, Any]) -> Publisher:
    """Check and store the publisher `fields` describe for project `name`, registered by `identity`."""
    _check_enabled(app)
    if not is_valid_project_name(name):
        raise InvalidInput(f"{name!r} is not a valid project name.")
    project = normalize(name)
    if identity.token is not None:
        raise PermissionDenied("Publishers are managed with a password login, not with a token.")
    if not may_manage_publishers(app, identity, project):
        raise PermissionDenied(
            f"Only an owner of project {name!r} (or an admin) manages its publishers; "
            "a pending publisher needs the right to create the project."
        )
    if not _exists(app, project):
        check_may_create_in_namespace(app.access, identity, name)
    publisher = new_publisher(
        publisher_id=secrets.token_hex(8),
        project=project,
        fields=fields,
        added_by=identity.username,
        created=utcnow(),
        settings=app.settings.publishing,
    )
    return app.access.add_publisher(publisher)


def project_publishers(app: AppServices, identity: Identity, name: str) -> list[Publisher]:
    """The publishers of `name` this caller may see: all of them for its managers, else none (403)."""
    project = normalize(name)
    publishers = app.access.list_publishers(project)
    if may_manage_publishers(app, identity, project) or identity.is_admin:
        return publishers
    own = [p for p in publishers if p.added_by == identity.username and not _exists(app, project)]
    if own:
        return own
    raise PermissionDenied(f"Only an owner of project {name!r} (or an admin) sees its publishers.")


def publisher_to_delete(app: AppServices, identity: Identity, name: str, publisher_id: str) -> Publisher:
    """The publisher this caller may remove: a manager of an existing project, a pending one's registrant."""
    if identity.token is not None:
        raise PermissionDenied("Publishers are managed with a password login, not with a token.")
    project = normalize(name)
    publisher = next((p for p in app.access.list_publishers(project) if p.id == publisher_id), None)
    if publisher is None:
        raise NotFound(f"Project {name!r} has no publisher {publisher_id!r}.")
    pending_own = publisher.added_by == identity.username and not _exists(app, project)
    if not (pending_own or identity.is_admin or may_manage_grants(app.access, identity, project)):
        raise PermissionDenied(f"Only an owner of project {name!r} (or an admin) removes its publishers.")
    return publisher


def visible_publishers(app: AppServices, identity: Identity) -> list[tuple[Publisher, bool]]:
    """(publisher, pending) for the UI: an admin's all, else those of owned projects and one's own pending."""
    found = []
    for publisher in app.access.list_publishers():
        pending = not _exists(app, publisher.project)
        mine = publisher.added_by == identity.username and pending
        if identity.is_admin or mine or (not pending and may_manage_grants(app.access, identity, publisher.project)):
            found.append((publisher, pending))
    return found


def publisher_json(publisher: Publisher, pending: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": publisher.id,
        "project": publisher.project,
        "kind": publisher.kind,
        "pending": pending,
        "added_by": publisher.added_by,
        "created": publisher.created.isoformat().replace("+00:00", "Z"),
    }
    if publisher.kind == "oidc":
        return body | {"issuer": publisher.issuer, "claims": dict(publisher.claims)}
    body |= {"repository": publisher.repository, "workflow": publisher.workflow, "environment": publisher.environment}
    return body | ({"owner_id": publisher.owner_id} if publisher.kind == "github" else {})
