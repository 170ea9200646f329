"""The JSON management API: projects, files, releases, status, users, groups, grants and tokens."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from packaging.version import Version
from pyramid.request import Request
from pyramid.response import Response
from pyramid.view import view_config

from pypicloud_lite.access.base import Group, Identity, Permission, Token, User
from pypicloud_lite.errors import InvalidInput, NotFound, PermissionDenied
from pypicloud_lite.models import Grant, PackageFile, ProjectSummary
from pypicloud_lite.naming import normalize
from pypicloud_lite.web.security import authenticated, require, require_admin, require_identity, require_read
from pypicloud_lite.web.services import AppServices, services

MAX_PER_PAGE = 200


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None


def _body(request: Request) -> dict[str, Any]:
    if not request.body:
        return {}
    try:
        body = request.json_body
    except ValueError as exc:
        raise InvalidInput("The request body is not valid JSON.") from exc
    if not isinstance(body, dict):
        raise InvalidInput("The request body must be a JSON object.")
    return body


def _int_param(request: Request, name: str, default: int, maximum: int) -> int:
    try:
        value = int(request.GET.get(name, default))
    except ValueError as exc:
        raise InvalidInput(f"Query parameter {name!r} must be a whole number.") from exc
    if not 1 <= value <= maximum:
        raise InvalidInput(f"Query parameter {name!r} must be between 1 and {maximum}.")
    return value


def _file_json(request: Request, file: PackageFile) -> dict[str, Any]:
    return {
        "filename": file.filename,
        "version": file.version,
        "packagetype": file.packagetype,
        "size": file.size,
        "sha256": file.sha256,
        "upload_time": _iso(file.upload_time),
        "requires_python": file.requires_python,
        "yanked": file.yanked,
        "yanked_reason": file.yanked_reason,
        "uploader": file.uploader,
        "url": request.route_url("files.download", project=file.project, filename=file.filename),
    }


def _summary_json(item: ProjectSummary) -> dict[str, Any]:
    return {
        "name": item.project.name,
        "display_name": item.project.display_name,
        "status": item.project.status,
        "latest_version": item.latest_version,
        "summary": item.summary,
        "last_upload": _iso(item.last_upload),
        "files": item.file_count,
    }


def _user_json(user: User) -> dict[str, Any]:
    return {"name": user.name, "admin": user.is_admin, "groups": sorted(user.groups)}


def _group_json(group: Group) -> dict[str, Any]:
    return {"name": group.name, "members": list(group.members)}


def _grant_json(grant: Grant) -> dict[str, Any]:
    return {"project": grant.project, "kind": grant.kind, "name": grant.name, "perms": grant.perms}


def _token_json(token: Token) -> dict[str, Any]:
    return {
        "id": token.id,
        "user": token.username,
        "description": token.description,
        "projects": sorted(token.projects) if token.projects is not None else None,
        "read_only": token.read_only,
        "created": _iso(token.created),
        "expires": _iso(token.expires),
    }


# -- projects ------------------------------------------------------------------


def search_visible(
    app: AppServices, identity: Identity | None, query: str, page: int, per_page: int
) -> tuple[list[ProjectSummary], int]:
    """One page of the projects this caller may read, and how many match in all (also the UI's list)."""
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


@view_config(route_name="api.projects", request_method="GET", renderer="json")
def list_projects(request: Request) -> dict[str, Any]:
    identity = authenticated(request)
    app = services(request)
    page = _int_param(request, "page", 1, 1_000_000)
    per_page = _int_param(request, "per_page", 50, MAX_PER_PAGE)
    summaries, total = search_visible(app, identity, request.GET.get("q", ""), page, per_page)
    return {
        "projects": [_summary_json(s) for s in summaries],
        "page": page,
        "per_page": per_page,
        "total": total,
    }


@view_config(route_name="api.project", request_method="GET", renderer="json")
def get_project(request: Request) -> dict[str, Any]:
    name = normalize(request.matchdict["project"])
    require_read(request, name)
    app = services(request)
    project = app.index.get_project(name)
    releases = releases_newest_first(app.index.project_files(project))
    return {
        "name": project.name,
        "display_name": project.display_name,
        "status": project.status,
        "status_reason": project.status_reason,
        "serial": project.serial,
        "versions": [
            {
                "version": version,
                "yanked": all(f.yanked for f in files),
                "files": [_file_json(request, f) for f in files],
            }
            for version, files in releases
        ],
    }


@view_config(route_name="api.project.status", request_method="PUT", renderer="json")
def set_status(request: Request) -> dict[str, Any]:
    require_admin(request)
    body = _body(request)
    status, reason = body.get("status"), body.get("reason")
    if not isinstance(status, str) or not (reason is None or isinstance(reason, str)):
        raise InvalidInput("'status' must be a string and 'reason' a string or null.")
    project = services(request).index.set_status(request.matchdict["project"], status, reason)
    return {"name": project.name, "status": project.status, "status_reason": project.status_reason}


@view_config(route_name="api.file", request_method="DELETE", renderer="json")
def delete_file(request: Request) -> dict[str, Any]:
    name = normalize(request.matchdict["project"])
    require_read(request, name)
    require(request, name, Permission.DELETE, "Deleting files")
    services(request).index.delete_file(name, request.matchdict["filename"])
    return {"deleted": [request.matchdict["filename"]]}


@view_config(route_name="api.version", request_method="DELETE", renderer="json")
def delete_version(request: Request) -> dict[str, Any]:
    name = normalize(request.matchdict["project"])
    require_read(request, name)
    require(request, name, Permission.DELETE, "Deleting releases")
    return {"deleted": services(request).index.delete_version(name, request.matchdict["version"])}


@view_config(route_name="api.version.yank", request_method="POST", renderer="json")
def yank(request: Request) -> dict[str, Any]:
    name = normalize(request.matchdict["project"])
    require_read(request, name)
    require(request, name, Permission.DELETE, "Yanking releases")
    reason = _body(request).get("reason")
    if reason is not None and not isinstance(reason, str):
        raise InvalidInput("'reason' must be a string.")
    files = services(request).index.yank(name, request.matchdict["version"], reason)
    return {"yanked": True, "reason": reason or None, "files": files}


@view_config(route_name="api.version.yank", request_method="DELETE", renderer="json")
def unyank(request: Request) -> dict[str, Any]:
    name = normalize(request.matchdict["project"])
    require_read(request, name)
    require(request, name, Permission.DELETE, "Unyanking releases")
    files = services(request).index.unyank(name, request.matchdict["version"])
    return {"yanked": False, "files": files}


# -- per-project grants ----------------------------------------------------------


@view_config(route_name="api.grants", request_method="GET", renderer="json")
def list_project_grants(request: Request) -> dict[str, Any]:
    require_admin(request)
    name = normalize(request.matchdict["project"])
    return {"grants": [_grant_json(g) for g in services(request).access.grants_for(name)]}


@view_config(route_name="api.grant", request_method="PUT", renderer="json")
def set_grant(request: Request) -> dict[str, Any]:
    require_admin(request)
    perms = _body(request).get("perms")
    if not isinstance(perms, str):
        raise InvalidInput("'perms' must be a string of letters from 'rwd'.")
    md = request.matchdict
    return _grant_json(services(request).access.set_grant(md["project"], md["kind"], md["name"], perms))


@view_config(route_name="api.grant", request_method="DELETE", renderer="json")
def delete_grant(request: Request) -> dict[str, Any]:
    require_admin(request)
    md = request.matchdict
    services(request).access.delete_grant(md["project"], md["kind"], md["name"])
    return {"deleted": True}


# -- users and groups ------------------------------------------------------------


@view_config(route_name="api.users", request_method="GET", renderer="json")
def list_users(request: Request) -> dict[str, Any]:
    require_admin(request)
    access = services(request).access
    return {"users": [_user_json(u) for u in access.list_users()], "read_only": access.read_only}


@view_config(route_name="api.users", request_method="POST", renderer="json")
def create_user(request: Request) -> Response:
    require_admin(request)
    body = _body(request)
    name, password = body.get("name"), body.get("password")
    if not isinstance(name, str) or not isinstance(password, str):
        raise InvalidInput("'name' and 'password' are required strings.")
    admin = body.get("admin", False)
    if not isinstance(admin, bool):
        raise InvalidInput("'admin' must be true or false.")
    user = services(request).access.create_user(name, password, is_admin=admin)
    response = Response(json_body=_user_json(user), status=201)
    response.location = request.route_url("api.user", name=user.name)
    return response


@view_config(route_name="api.user", request_method="GET", renderer="json")
def get_user(request: Request) -> dict[str, Any]:
    identity = require_identity(request, "Reading a user")
    name = request.matchdict["name"]
    if not identity.is_admin and identity.username != name:
        raise PermissionDenied("Only admins may read other users.")
    user = services(request).access.get_user(name)
    if user is None:
        raise NotFound(f"No user named {name!r}.")
    return _user_json(user)


@view_config(route_name="api.user", request_method="PUT", renderer="json")
def update_user(request: Request) -> dict[str, Any]:
    identity = require_identity(request, "Changing a user")
    name = request.matchdict["name"]
    body = _body(request)
    admin = body.get("admin")
    password = body.get("password")
    if identity.token is not None:
        raise PermissionDenied("Users are changed with a password login, not an API token.")
    if not identity.is_admin and (identity.username != name or admin is not None):
        raise PermissionDenied("Only admins may change other users or admin rights.")
    if password is not None and not isinstance(password, str):
        raise InvalidInput("'password' must be a string.")
    if admin is not None and not isinstance(admin, bool):
        raise InvalidInput("'admin' must be true or false.")
    user = services(request).access.update_user(name, password=password or None, is_admin=admin)
    return _user_json(user)


@view_config(route_name="api.user", request_method="DELETE", renderer="json")
def delete_user(request: Request) -> dict[str, Any]:
    identity = require_admin(request)
    name = request.matchdict["name"]
    if name == identity.username:
        raise InvalidInput("Admins cannot delete themselves.")
    services(request).access.delete_user(name)
    return {"deleted": True}


@view_config(route_name="api.groups", request_method="GET", renderer="json")
def list_groups(request: Request) -> dict[str, Any]:
    require_admin(request)
    return {"groups": [_group_json(g) for g in services(request).access.list_groups()]}


@view_config(route_name="api.group", request_method="PUT", renderer="json")
def set_group(request: Request) -> dict[str, Any]:
    require_admin(request)
    members = _body(request).get("members", [])
    if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
        raise InvalidInput("'members' must be a list of user names.")
    return _group_json(services(request).access.set_group(request.matchdict["name"], members))


@view_config(route_name="api.group", request_method="DELETE", renderer="json")
def delete_group(request: Request) -> dict[str, Any]:
    require_admin(request)
    services(request).access.delete_group(request.matchdict["name"])
    return {"deleted": True}


# -- tokens ------------------------------------------------------------------------


def password_identity(request: Request, action: str) -> Identity:
    identity = require_identity(request, action)
    if identity.token is not None:
        # A scoped token must not mint a broader one.
        raise PermissionDenied("Tokens are managed with a password login, not with a token.")
    return identity


@view_config(route_name="api.tokens", request_method="GET", renderer="json")
def list_tokens(request: Request) -> dict[str, Any]:
    identity = password_identity(request, "Listing tokens")
    everyone = identity.is_admin and request.GET.get("all") in ("1", "true")
    tokens = services(request).access.list_tokens(None if everyone else identity.username)
    return {"tokens": [_token_json(t) for t in tokens]}


@view_config(route_name="api.tokens", request_method="POST", renderer="json")
def create_token(request: Request) -> Response:
    identity = password_identity(request, "Creating tokens")
    body = _body(request)
    owner = body.get("user", identity.username)
    if owner != identity.username and not identity.is_admin:
        raise PermissionDenied("Only admins may create tokens for other users.")
    projects = body.get("projects")
    if projects is not None and (
        not isinstance(projects, list) or not projects or not all(isinstance(p, str) and p for p in projects)
    ):
        # An empty list must not silently mean "every project".
        raise InvalidInput("'projects' must be a non-empty list of project names, or null for all projects.")
    read_only = body.get("read_only", False)
    if not isinstance(read_only, bool):
        raise InvalidInput("'read_only' must be true or false.")
    expires = body.get("expires")
    try:
        expiry = datetime.fromisoformat(expires.replace("Z", "+00:00")) if expires else None
    except (AttributeError, ValueError) as exc:
        raise InvalidInput("'expires' must be an ISO 8601 date and time.") from exc
    if expiry is not None and expiry.tzinfo is None:
        expiry = expiry.replace(tzinfo=UTC)
    created = services(request).access.create_token(
        str(owner),
        description=str(body.get("description", "")),
        projects=projects,
        read_only=read_only,
        expires=expiry,
    )
    # The only time the secret is shown: it is stored hashed.
    response = Response(json_body={**_token_json(created.token), "token": created.secret}, status=201)
    response.cache_control.no_store = True
    return response


@view_config(route_name="api.token", request_method="DELETE", renderer="json")
def revoke_token(request: Request) -> dict[str, Any]:
    identity = password_identity(request, "Revoking tokens")
    access = services(request).access
    token = access.get_token(request.matchdict["id"])
    if token is None or (token.username != identity.username and not identity.is_admin):
        raise NotFound(f"No token {request.matchdict['id']!r}.")
    access.revoke_token(token.id)
    return {"revoked": token.id}
