"""Trusted publishers in the JSON API (`/api/projects/<p>/publishers`) and the web UI (`/ui/publishers`)."""

from __future__ import annotations

from typing import Any

from pyramid.request import Request
from pyramid.response import Response
from pyramid.view import view_config

from pypicloud_lite.access.publishers import KINDS
from pypicloud_lite.errors import InvalidInput
from pypicloud_lite.web import forms
from pypicloud_lite.web.audit_trail import audit
from pypicloud_lite.web.permissions import require_password_login
from pypicloud_lite.web.publisher_access import (
    project_publishers,
    publisher_json,
    publisher_to_delete,
    register_publisher,
    visible_publishers,
)
from pypicloud_lite.web.services import services
from pypicloud_lite.web.ui_support import back_to, checked_post


@view_config(route_name="api.publishers", request_method="GET", renderer="json")
def list_publishers(request: Request) -> dict[str, Any]:
    identity = require_password_login(request, "Listing publishers")
    app = services(request)
    name = request.matchdict["project"]
    pending = app.index.find_project(name) is None
    return {"publishers": [publisher_json(p, pending) for p in project_publishers(app, identity, name)]}


@view_config(route_name="api.publishers", request_method="POST", renderer="json")
def add_publisher(request: Request) -> dict[str, Any]:
    """`{"kind": "github", "repository": "owner/repo", "workflow": "release.yml", "environment": "pypi"}`,
    `{"kind": "gitlab", ...}` alike, or `{"kind": "oidc", "issuer": "https://...", "claims": {"sub": "..."}}`."""
    identity = require_password_login(request, "Registering a publisher")
    app = services(request)
    name = request.matchdict["project"]
    publisher = register_publisher(app, identity, name, forms.json_body(request))
    audit(request, "publisher.add", publisher.project, publisher.id, publisher.label(), identity=identity)
    request.response.status = 201
    return publisher_json(publisher, app.index.find_project(name) is None)


@view_config(route_name="api.publisher", request_method="DELETE", renderer="json")
def delete_publisher(request: Request) -> dict[str, Any]:
    identity = require_password_login(request, "Removing a publisher")
    app = services(request)
    publisher = publisher_to_delete(app, identity, request.matchdict["project"], request.matchdict["id"])
    app.access.delete_publisher(publisher.id)
    audit(request, "publisher.delete", publisher.project, publisher.id, publisher.label(), identity=identity)
    return {"id": publisher.id, "deleted": True}


# -- the web UI ------------------------------------------------------------------------------


def _form_fields(request: Request) -> dict[str, Any]:
    """The form's fields as the API's JSON: `claims` one `name=value` per line."""
    kind = request.POST.get("kind", "")
    fields: dict[str, Any] = {"kind": kind}
    for name in ("repository", "workflow", "environment", "owner_id", "issuer"):
        fields[name] = str(request.POST.get(f"{kind}_{name}", "") or "").strip()
    claims = {}
    for line in str(request.POST.get("oidc_claims", "")).splitlines():
        if line.strip():
            claim, sep, value = line.partition("=")
            if not sep:
                raise InvalidInput(f"Claim line {line.strip()!r}: write name=value.")
            claims[claim.strip()] = value.strip()
    fields["claims"] = claims
    return fields


@view_config(route_name="ui.publishers", request_method="GET", renderer="publishers.jinja2")
def publishers_page(request: Request) -> dict[str, Any]:
    identity = require_password_login(request, "Listing publishers")
    app = services(request)
    return {
        "publishers": visible_publishers(app, identity),
        "enabled": app.publishing.enabled,
        "kinds": KINDS,
        "issuers": app.settings.publishing.issuers,
        "project": request.GET.get("project", ""),
    }


@view_config(route_name="ui.publishers", request_method="POST")
def add_publisher_form(request: Request) -> Response:
    identity = checked_post(request)
    app = services(request)
    name = str(request.POST.get("project", "")).strip()
    publisher = register_publisher(app, identity, name, _form_fields(request))
    audit(request, "publisher.add", publisher.project, publisher.id, publisher.label(), identity=identity)
    return back_to(request, "ui.publishers", f"Added publisher {publisher.label()} to {publisher.project}.")


@view_config(route_name="ui.publisher.delete", request_method="POST")
def delete_publisher_form(request: Request) -> Response:
    identity = checked_post(request)
    app = services(request)
    publisher = publisher_to_delete(app, identity, request.matchdict["project"], request.matchdict["id"])
    app.access.delete_publisher(publisher.id)
    audit(request, "publisher.delete", publisher.project, publisher.id, publisher.label(), identity=identity)
    return back_to(request, "ui.publishers", f"Removed publisher {publisher.label()} from {publisher.project}.")
