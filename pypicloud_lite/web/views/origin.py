"""Origin control in the JSON API: whether a name is this index's own or served from upstream (admins only)."""

from __future__ import annotations

from typing import Any

from pyramid.request import Request
from pyramid.view import view_config

from pypicloud_lite.errors import InvalidInput
from pypicloud_lite.naming import normalize
from pypicloud_lite.upstream.proxy import read_origin
from pypicloud_lite.web import forms
from pypicloud_lite.web.audit_trail import audit
from pypicloud_lite.web.permissions import require_admin
from pypicloud_lite.web.services import AppServices, services


def _answer(app: AppServices, name: str) -> dict[str, Any]:
    proxy = app.upstream.proxy if app.upstream is not None else None
    return {
        "name": name,
        # local: held (or ever held) here; upstream: cached from an upstream; none: never held here.
        "origin": read_origin(app.index, name),
        "served_from_upstream": proxy is not None and proxy.proxied(name),
    }


@view_config(route_name="api.project.origin", request_method="GET", renderer="json")
def get_origin(request: Request) -> dict[str, Any]:
    require_admin(request)
    return _answer(services(request), normalize(request.matchdict["project"]))


@view_config(route_name="api.project.origin", request_method="PUT", renderer="json")
def put_origin(request: Request) -> dict[str, Any]:
    """`{"origin": "local"}` lets local uploads in (or blocks a name upstream); `"upstream"` serves it from there."""
    require_admin(request)
    origin = forms.json_body(request).get("origin")
    if not isinstance(origin, str):
        raise InvalidInput('Give the origin as {"origin": "local"} or {"origin": "upstream"}.')
    app = services(request)
    name = normalize(request.matchdict["project"])
    state = app.set_origin(name, origin)
    audit(request, "project.origin", name, detail=state.origin)
    return _answer(app, name)
