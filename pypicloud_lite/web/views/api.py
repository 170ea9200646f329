"""The JSON management API: projects, files, releases, status, users, groups, grants, namespaces and tokens."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pyramid.request import Request
from pyramid.response import Response
from pyramid.view import view_config

from pypicloud_lite.access.base import Group, Permission, Token, User
from pypicloud_lite.errors import NotFound
from pypicloud_lite.models import Grant, PackageFile, ProjectSummary
from pypicloud_lite.namespaces import Namespace
from pypicloud_lite.naming import normalize
from pypicloud_lite.web import forms
from pypicloud_lite.web.audit_trail import audit, members_detail, status_detail, token_detail, user_change_detail
from pypicloud_lite.web.listing import releases_newest_first, search_visible
from pypicloud_lite.web.permissions import (
    check_keeps_an_owner,
    check_may_change_user,
    check_may_delete_user,
    check_may_read_user,
    check_new_password,
    create_token_for,
    delete_project_for,
    require,
    require_admin,
    require_grant_manager,
    require_password_login,
    require_read,
    require_status_change,
    token_to_revoke,
    tokens_owner_filter,
)
from pypicloud_lite.web.security import authenticated, require_identity
from pypicloud_lite.web.services import services

MAX_PER_PAGE = 200


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None


def _file_json(request: Request, file: PackageFile, downloads: dict[str, int]) -> dict[str, Any]:
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
        "downloads": downloads.get(file.filename, 0),
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


def _created(body: dict[str, Any], location: str) -> Response:
    response = Response(json_body=body, status=201)
    response.location = location
    return response


def _user_json(user: User) -> dict[str, Any]:
    return {"name": user.name, "admin": user.is_admin, "groups": sorted(user.groups)}


def _group_json(group: Group) -> dict[str, Any]:
    return {"name": group.name, "members": list(group.members)}


def _grant_json(grant: Grant) -> dict[str, Any]:
    return {"project": grant.project, "kind": grant.kind, "name": grant.name, "perms": grant.perms}


def _namespace_json(namespace: Namespace) -> dict[str, Any]:
    return {
        "name": namespace.name,
        "display_name": namespace.display_name,
        "kind": namespace.kind,
        "owner": namespace.owner,
        "created": _iso(namespace.created),
    }


def _token_json(token: Token) -> dict[str, Any]:
    return {
        "id": token.id,
        "user": token.username,
        "description": token.description,
        "projects": sorted(token.projects) if token.projects is not None else None,
        "read_only": token.read_only,
        "created": _iso(token.created),
        "expires": _iso(token.expires),
        "last_used": _iso(token.last_used),
        # Minted by this trusted publisher's exchange (see /api/projects/<p>/publishers), or null.
        "publisher": token.publisher,
    }


# -- projects ------------------------------------------------------------------


@view_config(route_name="api.projects", request_method="GET", renderer="json")
def list_projects(request: Request) -> dict[str, Any]:
    identity = authenticated(request)
    app = services(request)
    page = forms.int_param(request, "page", 1, 1_000_000)
    per_page = forms.int_param(request, "per_page", 50, MAX_PER_PAGE)
    summaries, total = search_visible(app, identity, request.GET.get("q", ""), page, per_page)
    return {
        "projects": [_summary_json(s) for s in summaries],
        "page": page,
        "per_page": per_page,
        "total": total,
    }


@view_config(route_name="api.project", request_method="DELETE", renderer="json")
def delete_project(request: Request) -> dict[str, Any]:
    display_name, deleted = delete_project_for(request, request.matchdict["project"])
    return {"deleted": display_name, "files": deleted}


@view_config(route_name="api.project", request_method="GET", renderer="json")
def get_project(request: Request) -> dict[str, Any]:
    name = normalize(request.matchdict["project"])
    require_read(request, name)
    app = services(request)
    project = app.index.get_project(name)
    releases = releases_newest_first(app.index.project_files(project))
    downloads = app.downloads.counts(project.name)
    return {
        "name": project.name,
        "display_name": project.display_name,
        "status": project.status,
        "status_reason": project.status_reason,
        "serial": project.serial,
        # Every download this index served (deleted files' too); README "Download counts" says which count.
        "downloads": sum(downloads.values()),
        "versions": [
            {
                "version": version,
                "yanked": all(f.yanked for f in files),
                "files": [_file_json(request, f, downloads) for f in files],
            }
            for version, files in releases
        ],
    }


@view_config(route_name="api.project.status", request_method="PUT", renderer="json")
def set_status(request: Request) -> dict[str, Any]:
    require_status_change(request)
    change = forms.json_status_change(request)
    project = services(request).index.set_status(request.matchdict["project"], change.status, change.reason)
    audit(request, "project.status", project.name, detail=status_detail(project.status, project.status_reason))
    return {"name": project.name, "status": project.status, "status_reason": project.status_reason}


@view_config(route_name="api.file", request_method="DELETE", renderer="json")
def delete_file(request: Request) -> dict[str, Any]:
    name = normalize(request.matchdict["project"])
    require_read(request, name)
    require(request, name, Permission.DELETE, "Deleting files")
    services(request).index.delete_file(name, request.matchdict["filename"])
    audit(request, "file.delete", name, request.matchdict["filename"])
    return {"deleted": [request.matchdict["filename"]]}


@view_config(route_name="api.version", request_method="DELETE", renderer="json")
def delete_version(request: Request) -> dict[str, Any]:
    name = normalize(request.matchdict["project"])
    require_read(request, name)
    require(request, name, Permission.DELETE, "Deleting releases")
    deleted = services(request).index.delete_version(name, request.matchdict["version"])
    audit(request, "version.delete", name, request.matchdict["version"], ", ".join(deleted))
    return {"deleted": deleted}


@view_config(route_name="api.version.yank", request_method="POST", renderer="json")
def yank(request: Request) -> dict[str, Any]:
    name = normalize(request.matchdict["project"])
    require_read(request, name)
    require(request, name, Permission.DELETE, "Yanking releases")
    reason = forms.json_reason(forms.json_body(request))
    files = services(request).index.yank(name, request.matchdict["version"], reason)
    audit(request, "version.yank", name, request.matchdict["version"], reason or None)
    return {"yanked": True, "reason": reason or None, "files": files}


@view_config(route_name="api.version.yank", request_method="DELETE", renderer="json")
def unyank(request: Request) -> dict[str, Any]:
    name = normalize(request.matchdict["project"])
    require_read(request, name)
    require(request, name, Permission.DELETE, "Unyanking releases")
    files = services(request).index.unyank(name, request.matchdict["version"])
    audit(request, "version.unyank", name, request.matchdict["version"])
    return {"yanked": False, "files": files}


# -- per-project grants ----------------------------------------------------------


@view_config(route_name="api.grants", request_method="GET", renderer="json")
def list_project_grants(request: Request) -> dict[str, Any]:
    name = normalize(request.matchdict["project"])
    require_grant_manager(request, name)
    return {"grants": [_grant_json(g) for g in services(request).access.grants_for(name)]}


@view_config(route_name="api.grant", request_method="PUT", renderer="json")
def set_grant(request: Request) -> dict[str, Any]:
    md = request.matchdict
    identity = require_grant_manager(request, md["project"])
    perms = forms.json_perms(request)
    access = services(request).access
    check_keeps_an_owner(access, identity, md["project"], md["kind"], md["name"], perms=perms)
    grant = access.set_grant(md["project"], md["kind"], md["name"], perms)
    audit(request, "grant.set", grant.project, f"{grant.kind}:{grant.name}", grant.perms, identity=identity)
    return _grant_json(grant)


@view_config(route_name="api.grant", request_method="DELETE", renderer="json")
def delete_grant(request: Request) -> dict[str, Any]:
    md = request.matchdict
    identity = require_grant_manager(request, md["project"])
    access = services(request).access
    check_keeps_an_owner(access, identity, md["project"], md["kind"], md["name"], perms=None)
    access.delete_grant(md["project"], md["kind"], md["name"])
    audit(request, "grant.delete", normalize(md["project"]), f"{md['kind']}:{md['name']}", identity=identity)
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
    name, password, admin = forms.json_new_user(request)
    check_new_password(services(request), name, password, creating=True)
    user = services(request).access.create_user(name, password, is_admin=admin)
    audit(request, "user.create", target=user.name, detail="admin" if user.is_admin else None)
    return _created(_user_json(user), request.route_url("api.user", name=user.name))


@view_config(route_name="api.user", request_method="GET", renderer="json")
def get_user(request: Request) -> dict[str, Any]:
    identity = require_identity(request, "Reading a user")
    name = request.matchdict["name"]
    check_may_read_user(identity, name)
    user = services(request).access.get_user(name)
    if user is None:
        raise NotFound(f"No user named {name!r}.")
    return _user_json(user)


@view_config(route_name="api.user", request_method="PUT", renderer="json")
def update_user(request: Request) -> dict[str, Any]:
    identity = require_identity(request, "Changing a user")
    name = request.matchdict["name"]
    body = forms.json_body(request)
    check_may_change_user(identity, name, changes_admin=body.get("admin") is not None)
    password, admin = forms.json_user_change(body)
    check_new_password(services(request), name, password, creating=False)
    user = services(request).access.update_user(name, password=password, is_admin=admin)
    audit(request, "user.update", target=user.name, detail=user_change_detail(password, admin), identity=identity)
    return _user_json(user)


@view_config(route_name="api.user", request_method="DELETE", renderer="json")
def delete_user(request: Request) -> dict[str, Any]:
    identity = require_admin(request)
    name = request.matchdict["name"]
    check_may_delete_user(identity, name)
    services(request).access.delete_user(name)
    audit(request, "user.delete", target=name, identity=identity)
    return {"deleted": True}


@view_config(route_name="api.groups", request_method="GET", renderer="json")
def list_groups(request: Request) -> dict[str, Any]:
    require_admin(request)
    return {"groups": [_group_json(g) for g in services(request).access.list_groups()]}


@view_config(route_name="api.group", request_method="PUT", renderer="json")
def set_group(request: Request) -> dict[str, Any]:
    require_admin(request)
    members = forms.json_members(request)
    group = services(request).access.set_group(request.matchdict["name"], members)
    audit(request, "group.set", target=group.name, detail=members_detail(group.members))
    return _group_json(group)


@view_config(route_name="api.group", request_method="DELETE", renderer="json")
def delete_group(request: Request) -> dict[str, Any]:
    require_admin(request)
    services(request).access.delete_group(request.matchdict["name"])
    audit(request, "group.delete", target=request.matchdict["name"])
    return {"deleted": True}


# -- namespaces (PEP 752) ------------------------------------------------------------


@view_config(route_name="api.namespaces", request_method="GET", renderer="json")
def list_namespaces(request: Request) -> dict[str, Any]:
    require_admin(request)
    access = services(request).access
    return {"namespaces": [_namespace_json(n) for n in access.list_namespaces()], "read_only": access.read_only}


@view_config(route_name="api.namespaces", request_method="POST", renderer="json")
def add_namespace(request: Request) -> Response:
    require_admin(request)
    name, kind, owner = forms.json_namespace(request)
    app = services(request)
    namespace = app.access.add_namespace(name, kind, owner)
    app.namespaces.forget()
    audit(request, "namespace.add", target=namespace.name, detail=f"owned by {namespace.kind} {namespace.owner}")
    return _created(_namespace_json(namespace), request.route_url("api.namespace", name=namespace.name))


@view_config(route_name="api.namespace", request_method="GET", renderer="json")
def get_namespace(request: Request) -> dict[str, Any]:
    require_admin(request)
    name = request.matchdict["name"]
    namespace = services(request).access.get_namespace(name)
    if namespace is None:
        raise NotFound(f"No namespace {name!r}.")
    return _namespace_json(namespace)


@view_config(route_name="api.namespace", request_method="DELETE", renderer="json")
def delete_namespace(request: Request) -> dict[str, Any]:
    require_admin(request)
    app = services(request)
    app.access.delete_namespace(request.matchdict["name"])
    app.namespaces.forget()
    audit(request, "namespace.delete", target=request.matchdict["name"])
    return {"deleted": True}


# -- tokens ------------------------------------------------------------------------


@view_config(route_name="api.tokens", request_method="GET", renderer="json")
def list_tokens(request: Request) -> dict[str, Any]:
    identity = require_password_login(request, "Listing tokens")
    owner = tokens_owner_filter(identity, request.GET.get("user"), request.GET.get("all") in ("1", "true"))
    tokens = services(request).access.list_tokens(owner)
    return {"tokens": [_token_json(t) for t in tokens]}


@view_config(route_name="api.tokens", request_method="POST", renderer="json")
def create_token(request: Request) -> Response:
    identity = require_password_login(request, "Creating tokens")
    wanted = forms.json_token_request(request, identity)
    created = create_token_for(services(request).access, identity, wanted)
    audit(request, "token.create", target=created.token.id, detail=token_detail(created.token), identity=identity)
    # The only time the secret is shown: it is stored hashed.
    response = Response(json_body={**_token_json(created.token), "token": created.secret}, status=201)
    response.cache_control.no_store = True
    return response


@view_config(route_name="api.token", request_method="DELETE", renderer="json")
def revoke_token(request: Request) -> dict[str, Any]:
    identity = require_password_login(request, "Revoking tokens")
    access = services(request).access
    token = token_to_revoke(access, identity, request.matchdict["id"])
    access.revoke_token(token.id)
    audit(request, "token.revoke", target=token.id, detail=f"of {token.username}", identity=identity)
    return {"revoked": token.id}
