"""The web UI's account page: change one's own password (the current one required; other sessions end)."""

from __future__ import annotations

import logging

from pyramid.renderers import render_to_response
from pyramid.request import Request
from pyramid.response import Response
from pyramid.security import remember
from pyramid.view import view_config

from pypicloud_lite.errors import InvalidInput
from pypicloud_lite.web.forms import form_password
from pypicloud_lite.web.permissions import check_new_password, require_password_login
from pypicloud_lite.web.services import services
from pypicloud_lite.web.ui_support import back_to, checked_post

logger = logging.getLogger(__name__)


def _page(request: Request, error: str | None = None) -> Response:
    access = services(request).access
    values = {"read_only": access.read_only, "error": error, "policy": services(request).settings.passwords}
    response = render_to_response("account.jinja2", values, request)
    response.cache_control.no_store = True
    if error:
        response.status_int = 400
    return response


@view_config(route_name="ui.account", request_method="GET")
def account(request: Request) -> Response:
    require_password_login(request, "Changing your password")
    return _page(request)


@view_config(route_name="ui.account", request_method="POST")
def change_password(request: Request) -> Response:
    checked_post(request)
    identity = require_password_login(request, "Changing your password")
    app = services(request)
    current, new = form_password(request, "current_password"), form_password(request, "new_password")
    if app.access.read_only:
        return _page(request, "Passwords are set in the configuration file on this server.")
    # Through authenticate, so failed attempts count against the login limits like any other.
    if not current or app.access.authenticate(identity.username, current, request.remote_addr) is None:
        return _page(request, "The current password is wrong.")
    if new != form_password(request, "repeat_password"):
        return _page(request, "The new passwords differ.")
    try:
        check_new_password(app, identity.username, new or None, creating=False)
        if not new:
            raise InvalidInput("Give a new password.")
    except InvalidInput as exc:
        return _page(request, exc.message)
    app.access.update_user(identity.username, password=new)
    logger.info("%s changed their password in the web UI", identity.username)
    # Every session of this user ends with the old password hash (web/session.py); this one starts afresh.
    remember(request, identity.username)
    return back_to(request, "ui.account", "Your password was changed; your other sessions have ended.")
