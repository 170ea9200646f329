"""The project page's admin forms: the origin control (upstream allowed or blocked) and cooldown exceptions.

They call what the JSON API calls (AppServices.set_origin, the proxy's exemptions), after the UI's checks.
"""

from __future__ import annotations

from pyramid.request import Request
from pyramid.response import Response
from pyramid.view import view_config

from pypicloud_lite.errors import InvalidInput
from pypicloud_lite.naming import normalize
from pypicloud_lite.web import forms
from pypicloud_lite.web.audit_trail import audit, exemption_detail
from pypicloud_lite.web.permissions import require_admin
from pypicloud_lite.web.services import services
from pypicloud_lite.web.ui_support import back_to, checked_post


@view_config(route_name="ui.project.origin", request_method="POST")
def change_origin(request: Request) -> Response:
    checked_post(request)
    require_admin(request)
    name = normalize(request.matchdict["project"])
    state = services(request).set_origin(name, forms.form_text(request, "origin"))
    audit(request, "project.origin", name, detail=state.origin)
    if state.origin == "upstream":
        message = f"Upstream allowed for {name}: it is served from upstream and takes no local upload."
    else:
        message = f"Upstream blocked for {name}: the upstream is never asked for it; local uploads are taken."
    return back_to(request, "ui.project", message, project=name)


@view_config(route_name="ui.project.cooldown_exception", request_method="POST")
def change_exception(request: Request) -> Response:
    checked_post(request)
    identity = require_admin(request)
    name = normalize(request.matchdict["project"])
    exemptions = services(request).proxy().exemptions
    action = forms.form_text(request, "action")
    if action == "grant":
        reason, until = forms.exception_request(request.POST.get("reason"), request.POST.get("until"))
        exemptions.grant(name, reason, identity.username, until)
        audit(request, "cooldown.grant", name, detail=exemption_detail(reason, until), identity=identity)
        message = f"Cooldown exception granted for {name}" + (f" until {until.isoformat()}." if until else ".")
    elif action == "revoke":
        exemptions.revoke(name, identity.username)
        audit(request, "cooldown.revoke", name, identity=identity)
        message = f"Cooldown exception for {name} revoked: the cooldown holds its upstream files again."
    else:
        raise InvalidInput(f"Unknown action {action!r}: grant or revoke.")
    return back_to(request, "ui.project", message, project=name)
