"""The web UI's admin pages: status panel and cache reload, users, groups, per-project grants and namespaces."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from pyramid.request import Request
from pyramid.response import Response
from pyramid.view import view_config

from pypicloud_lite.access.base import MAINTAINER_PERMS, OWNER_PERMS
from pypicloud_lite.errors import Conflict, InvalidInput
from pypicloud_lite.naming import normalize
from pypicloud_lite.reload_estimate import estimate
from pypicloud_lite.web.admin_tasks import health_checks, run_in_background
from pypicloud_lite.web.audit_trail import audit, members_detail, user_change_detail
from pypicloud_lite.web.forms import (
    form_flag,
    form_names,
    form_namespace,
    form_password,
    form_text,
    require_confirmed,
)
from pypicloud_lite.web.permissions import (
    check_keeps_an_owner,
    check_may_delete_user,
    check_new_password,
    require_admin,
    require_grant_manager,
)
from pypicloud_lite.web.services import services
from pypicloud_lite.web.ui_support import back_to, checked_post, wants_json

logger = logging.getLogger(__name__)

# The grant form's roles (PyPI's two); "custom" takes the permission checkboxes instead.
ROLE_PERMS = {"owner": OWNER_PERMS, "maintainer": MAINTAINER_PERMS}


@view_config(route_name="ui.admin", request_method="GET", renderer="admin.jinja2")
def admin_page(request: Request) -> dict[str, Any]:
    require_admin(request)
    index = services(request).index
    running, progress = index.reload_state()
    projects, files = index.counts()
    return {
        "health": health_checks(index),
        "serial": index.serial(),
        "project_count": projects,
        "file_count": files,
        "reload_running": running,
        "reload": progress or {},
        "reload_line": estimate(progress, time.time()).line() if progress else "",
        "reload_status_url": request.route_url("admin.reload"),
    }


@view_config(route_name="ui.admin.reload", request_method="POST")
def start_reload(request: Request) -> Response:
    """Start a reload in the background; the page (script or refresh) follows GET /admin/reload."""
    checked_post(request)
    identity = require_admin(request)
    app = services(request)
    try:
        run = app.index.begin_reload(app.settings.reload.workers)
    except Conflict as exc:
        if wants_json(request):
            return Response(json_body={"state": "refused", "message": exc.message}, status=409)
        return back_to(request, "ui.admin", f"Error: {exc.message}")
    audit(request, "reload.start", detail="from the web UI", identity=identity)
    run_in_background(run)
    if wants_json(request):
        return Response(json_body={"state": "started"}, status=202)
    return back_to(request, "ui.admin", "Reload started.")


# -- users, groups and grants -----------------------------------------------------------


@view_config(route_name="ui.access", request_method="GET", renderer="access.jinja2")
def access_page(request: Request) -> dict[str, Any]:
    require_admin(request)
    access = services(request).access
    return {
        "users": access.list_users(),
        "groups": access.list_groups(),
        "grants": access.list_grants(),
        "namespaces": access.list_namespaces(),
        "read_only": access.read_only,
    }


def _apply(request: Request, actions: dict[str, Callable[[], str]]) -> Response:
    """Run the form's `action` (after the CSRF and admin checks) and go back to the access page."""
    checked_post(request)
    require_admin(request)
    action = actions.get(form_text(request, "action"))
    if action is None:
        raise InvalidInput(f"Unknown action {form_text(request, 'action')!r}.")
    return back_to(request, "ui.access", action())


@view_config(route_name="ui.access.user", request_method="POST")
def change_user(request: Request) -> Response:
    access = services(request).access
    name = form_text(request, "name")
    password = form_password(request)
    admin = form_flag(request, "admin")

    def create() -> str:
        if not name or not password:
            raise InvalidInput("A new user needs a name and a password.")
        check_new_password(services(request), name, password, creating=True)
        user = access.create_user(name, password, is_admin=admin)
        audit(request, "user.create", target=user.name, detail="admin" if user.is_admin else None)
        return f"Created user {name}."

    def update() -> str:
        check_new_password(services(request), name, password, creating=False)
        access.update_user(name, password=password or None, is_admin=admin)
        audit(request, "user.update", target=name, detail=user_change_detail(password or None, admin))
        return f"Updated user {name}."

    def delete() -> str:
        require_confirmed(request)
        check_may_delete_user(request.identity, name)
        access.delete_user(name)
        audit(request, "user.delete", target=name)
        return f"Deleted user {name}."

    return _apply(request, {"create": create, "update": update, "delete": delete})


@view_config(route_name="ui.access.group", request_method="POST")
def change_group(request: Request) -> Response:
    access = services(request).access
    name = form_text(request, "name")

    def set_members() -> str:
        group = access.set_group(name, form_names(request, "members"))
        audit(request, "group.set", target=group.name, detail=members_detail(group.members))
        return f"Group {group.name} has {len(group.members)} member(s)."

    def delete() -> str:
        require_confirmed(request)
        access.delete_group(name)
        audit(request, "group.delete", target=name)
        return f"Deleted group {name}."

    return _apply(request, {"set": set_members, "delete": delete})


@view_config(route_name="ui.access.namespace", request_method="POST")
def change_namespace(request: Request) -> Response:
    app = services(request)

    def create() -> str:
        name, kind, owner = form_namespace(request)
        namespace = app.access.add_namespace(name, kind, owner)
        app.namespaces.forget()
        audit(request, "namespace.add", target=namespace.name, detail=f"owned by {namespace.kind} {namespace.owner}")
        return f"Reserved namespace {namespace.display_name} for {namespace.principal}."

    def delete() -> str:
        require_confirmed(request)
        name = form_text(request, "name")
        app.access.delete_namespace(name)
        app.namespaces.forget()
        audit(request, "namespace.delete", target=name)
        return f"Removed namespace {name}."

    return _apply(request, {"create": create, "delete": delete})


@view_config(route_name="ui.access.grant", request_method="POST")
def change_grant(request: Request) -> Response:
    """Set or remove one grant: from the access page (admins) or a project's page (its owners too)."""
    checked_post(request)
    access = services(request).access
    project, kind, name = form_text(request, "project"), form_text(request, "kind"), form_text(request, "name")
    identity = require_grant_manager(request, project)

    def grant() -> str:
        role = form_text(request, "role")
        if role in ROLE_PERMS:
            perms = ROLE_PERMS[role]
        else:
            perms = "".join(letter for letter in "rwdo" if form_flag(request, f"perm_{letter}"))
        check_keeps_an_owner(access, identity, project, kind, name, perms=perms)
        granted = access.set_grant(project, kind, name, perms)
        audit(request, "grant.set", granted.project, f"{granted.kind}:{granted.name}", granted.perms, identity=identity)
        return f"{granted.kind} {granted.name} has {granted.perms!r} on {granted.project}."

    def revoke() -> str:
        check_keeps_an_owner(access, identity, project, kind, name, perms=None)
        access.delete_grant(project, kind, name)
        audit(request, "grant.delete", normalize(project), f"{kind}:{name}", identity=identity)
        return f"Removed the grant of {kind} {name} on {project}."

    action = {"set": grant, "delete": revoke}.get(form_text(request, "action"))
    if action is None:
        raise InvalidInput(f"Unknown action {form_text(request, 'action')!r}.")
    message = action()
    if form_text(request, "back") == "project":
        return back_to(request, "ui.project", message, project=normalize(project))
    return back_to(request, "ui.access", message)
