"""GET /favicon.ico: the icon browsers ask for at the root on every page that names none (simple pages, /)."""

from __future__ import annotations

from importlib.resources import files

from pyramid.request import Request
from pyramid.response import Response
from pyramid.view import view_config

_ICON = files("pypicloud_lite.web").joinpath("static/favicon.ico").read_bytes()


@view_config(route_name="favicon", request_method="GET")
def favicon(request: Request) -> Response:
    response = Response(body=_ICON, content_type="image/vnd.microsoft.icon")
    response.cache_control.public = True
    response.cache_control.max_age = 86400
    return response
