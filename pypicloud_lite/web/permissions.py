"""What a caller may do to a project, a token or a user: one function per rule, called by the API and the UI alike."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pyramid.request import Request

from pypicloud_lite.access.base import (
    OWNER_PERMS,
    AccessBackend,
    Identity,
    NewToken,
    Permission,
    Token,
    check_perms,
)
from pypicloud_lite.errors import AuthenticationRequired, Conflict, InvalidInput, NotFound, PermissionDenied
from pypicloud_lite.models import Project
from pypicloud_lite.namespaces import Namespace, governing
from pypicloud_lite.naming import normalize
from pypicloud_lite.owners import first_uploader
from pypicloud_lite.web.forms import TokenRequest
from pypicloud_lite.web.security import authenticated, require_identity
from pypicloud_lite.web.services import AppServices, services

logger = logging.getLogger(__name__)

# -- projects ----------------------------------------------------------------------------


def require_read(request: Request, project: str) -> Identity | None:
    """401 for an anonymous caller (so clients retry with credentials), 404 for a known one.

    Never 403: uv only falls through to its next index on 404.
    """
    identity = authenticated(request)
    if services(request).access.can_read(identity, project):
        return identity
    if identity is None:
        raise AuthenticationRequired("This index needs credentials to read.")
    raise NotFound(f"No project named {project!r} in this index.")


def require_index_read(request: Request) -> Identity | None:
    """What lists the index (its projects, its namespaces): anyone when everyone reads, else a known caller (401)."""
    identity = authenticated(request)
    if identity is None and "everyone" not in services(request).settings.auth.default_read:
        raise AuthenticationRequired("This index needs credentials to read.")
    return identity


def require(request: Request, project: str, permission: Permission, action: str) -> Identity:
    """The caller, if it may do `action` on `project`: 401 when anonymous, 403 when not allowed."""
    identity = require_identity(request, action)
    access = services(request).access
    if not access.allowed(identity, project, permission):
        raise PermissionDenied(
            token_refusal(identity, project, permission, action)
            or f"{action} on project {project!r} needs the {permission.name.lower()} permission, "
            f"which {identity.username!r} does not have."
        )
    return identity


def token_refusal(identity: Identity, project: str, permission: Permission, action: str) -> str | None:
    """Why the token a caller uses refuses `action` (its scope, named), or None when the token is not the reason."""
    scope = identity.token
    if scope is None or scope.allows(project, permission):
        return None
    if scope.read_only and permission is not Permission.READ:
        reach = "every project" if scope.projects is None else "projects " + ", ".join(sorted(scope.projects))
        return f"{action} on project {project!r} is refused: token {scope.token_id} is read-only (scope: {reach})."
    scoped = ", ".join(sorted(scope.projects or ())) or "no project"
    return f"{action} on project {project!r} is refused: token {scope.token_id} is scoped to {scoped} only."


@dataclass(frozen=True)
class NewProject:
    """An upload that would create its project, as its check found it: the namespace it is made in (PEP 752)."""

    namespace: Namespace | None


def check_may_upload(app: AppServices, identity: Identity, name: str, existing: Project | None) -> NewProject | None:
    """403 unless this caller may upload to `name` (or create it, when it does not exist yet: `existing` is None;
    PackageIndex.upload reads its row under the upload's lease and calls this with it).

    A NewProject when the upload would create the project: pass it to `record_first_owner` once the upload succeeds.
    """
    project = normalize(name)
    exists = existing is not None
    if not (app.access.can_write(identity, project) if exists else app.access.can_create(identity, project)):
        # One message whether or not the project exists: a refusal must not reveal that.
        raise PermissionDenied(
            token_refusal(identity, project, Permission.WRITE, "Uploading")
            or f"User {identity.username!r} may not upload to project {name!r}."
        )
    return None if exists else NewProject(check_may_create_in_namespace(app.access, identity, name))


def may_use_namespace(identity: Identity, namespace: Namespace) -> bool:
    """Its owner, a member of its owning group, or an admin."""
    if identity.is_admin:
        return True
    if namespace.kind == "user":
        return identity.username == namespace.owner
    return namespace.owner in identity.groups


def check_may_create_in_namespace(access: AccessBackend, identity: Identity, name: str) -> Namespace | None:
    """PEP 752: 409 for a new project in a namespace the caller may not use (the deepest one covering it decides).

    Projects that exist already keep their grants (the PEP's exception for projects older than the namespace).
    Returns the namespace that decided (None: the name is in none).
    """
    namespace = governing(access.list_namespaces(), name)
    if namespace is not None and not may_use_namespace(identity, namespace):
        raise Conflict(
            f"Project name {name!r} is in namespace {namespace.name!r} (PEP 752), reserved for "
            f"{namespace.principal}: only its owners or an admin may create projects in it."
        )
    return namespace


def check_may_delete_project(request: Request, project: str) -> str:
    """The normalized name, if the caller may delete the project: its owners and admins (404 if unreadable)."""
    name = normalize(project)
    require_read(request, name)
    services(request).index.get_project(name)  # 404 for a name this index does not hold
    require(request, name, Permission.OWN, "Deleting projects")
    return name


def delete_project_for(request: Request, project: str) -> tuple[str, list[str]]:
    """Delete a whole project (its owners and admins may): every file, then its roles, so the name is free again
    as on PyPI, while its filenames stay used. Returns (its display name, the filenames deleted)."""
    name = check_may_delete_project(request, project)
    app = services(request)
    display_name = app.index.get_project(name).display_name
    deleted = app.index.delete_project(name)
    if not app.access.read_only:
        for grant in app.access.grants_for(name):
            app.access.delete_grant(grant.project, grant.kind, grant.name)
    logger.info("project %s deleted by %s (%d files)", name, request.identity.username, len(deleted))
    return display_name, deleted


def record_first_owner(app: AppServices, identity: Identity, name: str, new: NewProject | None) -> None:
    """After a successful upload that created `name` (`new`, from check_may_upload): its uploader becomes the
    project's owner, as on PyPI.

    Granted only after the file is indexed (a failed upload leaves no grant), only when the project has
    no owner yet, and only to the uploader of its earliest file: of two racing first uploads, the one
    that lost is not made a co-owner. An upload into an existing ownerless project (one a reload found)
    makes nobody its owner. A project created in a namespace gets the namespace's owner as an owner too.
    Static grants (the ini) cannot record owners.
    """
    if new is None or app.access.read_only:
        return
    project = normalize(name)
    if first_uploader(app.index.files_of(project)) != identity.username:
        return  # deleted since, or another upload made it first
    if app.access.claim_first_owner(project, identity.username):
        logger.info("%s owns the new project %s", identity.username, project)
        # A project made in a namespace is its owner's too (PEP 752's `owned`), whoever uploaded it first.
        namespace = new.namespace
        if namespace is not None and (namespace.kind, namespace.owner) != ("user", identity.username):
            app.access.set_grant(project, namespace.kind, namespace.owner, OWNER_PERMS)


def may_set_status(identity: Identity | None) -> bool:
    """Whether to offer the status form: the same rule `require_status_change` enforces."""
    return is_password_admin(identity)


def require_status_change(request: Request) -> Identity:
    """A project's status (PEP 792) is the index operator's call, as on PyPI: admins only."""
    return require_admin(request)


# -- per-project grants -------------------------------------------------------------------


def may_manage_grants(access: AccessBackend, identity: Identity | None, project: str) -> bool:
    """Admins and the project's owners ('o'), logged in with a password: a token never changes roles."""
    if identity is None or identity.token is not None:
        return False
    return identity.is_admin or access.allowed(identity, project, Permission.OWN)


def require_grant_manager(request: Request, project: str) -> Identity:
    """The caller, if it may list and change the grants on `project`: 401 when anonymous, else 403."""
    identity = require_identity(request, "Managing grants")
    if not may_manage_grants(services(request).access, identity, normalize(project)):
        raise PermissionDenied(
            f"Only an owner of project {project!r} (or an admin), logged in with a password, manages its grants."
        )
    return identity


def check_keeps_an_owner(
    access: AccessBackend, identity: Identity, project: str, kind: str, name: str, *, perms: str | None
) -> None:
    """PyPI's rule: only an admin may take away a project's last owner (`perms` None: the grant goes)."""
    if identity.is_admin or (perms is not None and Permission.OWN in check_perms(perms)):
        return
    owners = access.owners(normalize(project))
    if owners and all((grant.kind, grant.name) == (kind, name) for grant in owners):
        raise PermissionDenied(
            f"{kind} {name!r} is the last owner of project {project!r}: add another owner first "
            "(only an admin may leave a project without owners)."
        )


# -- the index as a whole -----------------------------------------------------------------


def is_password_admin(identity: Identity | None) -> bool:
    return identity is not None and identity.is_admin and identity.token is None


def require_admin(request: Request) -> Identity:
    """An admin logged in with a password: tokens (even an admin's) never administer the index."""
    identity = require_identity(request, "This")
    if not identity.is_admin:
        raise PermissionDenied(f"Only admins may do this; {identity.username!r} is not one.")
    if identity.token is not None:
        raise PermissionDenied("Admin actions need a password login, not an API token.")
    return identity


# -- tokens ------------------------------------------------------------------------------


def require_password_login(request: Request, action: str) -> Identity:
    """The caller, logged in with a password (or a session): a scoped token must not mint a broader one."""
    identity = require_identity(request, action)
    if identity.token is not None:
        raise PermissionDenied("Tokens are managed with a password login, not with a token.")
    return identity


def tokens_owner_filter(identity: Identity, user: str | None, everyone: bool) -> str | None:
    """Whose tokens a listing shows (None: everyone's): the caller's own, or, for an admin, `user`'s or all.

    Asking for someone else's is a 403, never a quiet answer with the caller's own tokens.
    """
    if (user or everyone) and not identity.is_admin and user != identity.username:
        raise PermissionDenied("Only admins may list other users' tokens.")
    if user:
        return user
    return None if everyone else identity.username


def check_may_create_token(identity: Identity, owner: str) -> None:
    if owner != identity.username and not identity.is_admin:
        raise PermissionDenied("Only admins may create tokens for other users.")


def create_token_for(access: AccessBackend, identity: Identity, wanted: TokenRequest) -> NewToken:
    """Create the token `wanted` asks for, if `identity` may: the API and the UI both create through here."""
    check_may_create_token(identity, wanted.owner)
    return access.create_token(
        wanted.owner,
        description=wanted.description,
        projects=list(wanted.projects) if wanted.projects is not None else None,
        read_only=wanted.read_only,
        expires=wanted.expires,
    )


def may_revoke_token(identity: Identity, token: Token) -> bool:
    """Its owner may revoke a token, and an admin may revoke anyone's (a leaked token must die fast)."""
    return token.username == identity.username or identity.is_admin


def token_to_revoke(access: AccessBackend, identity: Identity, token_id: str) -> Token:
    """The token `identity` may revoke; someone else's is as unknown as one that does not exist (404)."""
    token = access.get_token(token_id)
    if token is None or not may_revoke_token(identity, token):
        raise NotFound(f"No token {token_id!r}.")
    return token


# -- users -------------------------------------------------------------------------------


def check_may_read_user(identity: Identity, name: str) -> None:
    if not identity.is_admin and identity.username != name:
        raise PermissionDenied("Only admins may read other users.")


def check_may_change_user(identity: Identity, name: str, changes_admin: bool) -> None:
    if identity.token is not None:
        raise PermissionDenied("Users are changed with a password login, not an API token.")
    if not identity.is_admin and (identity.username != name or changes_admin):
        raise PermissionDenied("Only admins may change other users or admin rights.")


def check_new_password(app: AppServices, name: str, password: str | None, creating: bool) -> None:
    """The password policy (settings.passwords) for `name`'s new password, once the request's other faults are
    out of the way: a read-only backend (409), a user that exists already (create: 409) or does not (404)."""
    if not password or app.access.read_only or (app.access.get_user(name) is not None) == creating:
        return
    app.settings.passwords.check(password, name)


def check_may_delete_user(identity: Identity, name: str) -> None:
    """On top of `require_admin`: an admin deleting themselves could leave the index with none."""
    if name == identity.username:
        raise InvalidInput("Admins cannot delete themselves.")
