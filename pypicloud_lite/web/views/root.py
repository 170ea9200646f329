"""The landing page at /: where the index is and how to point clients at it, in the web UI's look."""

from __future__ import annotations

from pyramid.request import Request
from pyramid.view import view_config


@view_config(route_name="root", request_method="GET", renderer="root.jinja2")
def root(request: Request) -> dict[str, str]:
    return {
        "simple": request.route_url("simple.index"),
        "upload": request.route_url("upload.legacy"),
        "ui": request.route_url("ui.projects"),
    }
