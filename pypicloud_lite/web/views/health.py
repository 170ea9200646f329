"""GET /health: whether storage and cache can be reached, for load balancers and monitoring."""

from __future__ import annotations

from pyramid.request import Request
from pyramid.response import Response
from pyramid.view import view_config

from pypicloud_lite.web.admin_tasks import health_checks
from pypicloud_lite.web.services import services


@view_config(route_name="health", request_method="GET")
def health(request: Request) -> Response:
    results = health_checks(services(request).index)
    healthy = all(value == "ok" for value in results.values())
    response = Response(json_body={"status": "ok" if healthy else "unavailable", **results})
    response.status_int = 200 if healthy else 503
    if not healthy:
        response.headers["Retry-After"] = "5"
    response.cache_control.no_store = True
    return response
