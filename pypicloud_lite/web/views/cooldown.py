"""Break-glass exceptions to the upstream cooldown in the JSON API (admins only, audited)."""

from __future__ import annotations

from typing import Any

from pyramid.request import Request
from pyramid.view import view_config

from pypicloud_lite.naming import normalize
from pypicloud_lite.web import forms
from pypicloud_lite.web.audit_trail import audit, exemption_detail
from pypicloud_lite.web.permissions import require_admin
from pypicloud_lite.web.services import services


@view_config(route_name="api.project.cooldown_exception", request_method="POST", renderer="json")
def grant(request: Request) -> dict[str, Any]:
    """`{"reason": "...", "until": "2024-05-01T00:00Z"}` (until optional): the project skips the cooldown."""
    identity = require_admin(request)
    body = forms.json_body(request)
    reason, until = forms.exception_request(body.get("reason"), body.get("until"))
    name = normalize(request.matchdict["project"])
    exemption = services(request).proxy().exemptions.grant(name, reason, identity.username, until)
    audit(request, "cooldown.grant", name, detail=exemption_detail(reason, until), identity=identity)
    return exemption.to_json()


@view_config(route_name="api.project.cooldown_exception", request_method="DELETE", renderer="json")
def revoke(request: Request) -> dict[str, Any]:
    identity = require_admin(request)
    name = normalize(request.matchdict["project"])
    services(request).proxy().exemptions.revoke(name, identity.username)
    audit(request, "cooldown.revoke", name, identity=identity)
    return {"name": name, "revoked": True}
