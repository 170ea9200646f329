"""Break-glass exceptions to the upstream cooldown in the JSON API (admins only, audited)."""

from __future__ import annotations

from typing import Any

from pyramid.request import Request
from pyramid.view import view_config

from pypicloud_lite.config_values import parse_instant
from pypicloud_lite.errors import InvalidInput, NotFound
from pypicloud_lite.naming import normalize
from pypicloud_lite.upstream.proxy import UpstreamProxy
from pypicloud_lite.web import forms
from pypicloud_lite.web.permissions import require_admin
from pypicloud_lite.web.services import services


def _proxy(request: Request) -> UpstreamProxy:
    app = services(request)
    if app.upstream is None:
        raise NotFound("No upstream index is configured, so there is no cooldown to make an exception to.")
    return app.upstream.proxy


@view_config(route_name="api.project.cooldown_exception", request_method="POST", renderer="json")
def grant(request: Request) -> dict[str, Any]:
    """`{"reason": "...", "until": "2024-05-01T00:00Z"}` (until optional): the project skips the cooldown."""
    identity = require_admin(request)
    body = forms.json_body(request)
    reason, until = body.get("reason"), body.get("until")
    if not isinstance(reason, str) or not isinstance(until, (str, type(None))):
        raise InvalidInput('Give {"reason": "...", "until": "<ISO 8601 date or time>"} (until is optional).')
    try:
        expiry = parse_instant(until or "")
    except ValueError as exc:
        raise InvalidInput(str(exc)) from exc
    name = normalize(request.matchdict["project"])
    exemption = _proxy(request).exemptions.grant(name, reason, identity.username, expiry)
    return exemption.to_json()


@view_config(route_name="api.project.cooldown_exception", request_method="DELETE", renderer="json")
def revoke(request: Request) -> dict[str, Any]:
    identity = require_admin(request)
    name = normalize(request.matchdict["project"])
    _proxy(request).exemptions.revoke(name, identity.username)
    return {"name": name, "revoked": True}
