"""GET /health: whether storage and cache can be reached, for load balancers and monitoring."""

from __future__ import annotations

import logging

from pyramid.request import Request
from pyramid.response import Response
from pyramid.view import view_config

from pypicloud_lite.errors import PypicloudLiteError
from pypicloud_lite.service import PackageIndex
from pypicloud_lite.web.services import services

logger = logging.getLogger(__name__)


def health_checks(index: PackageIndex) -> dict[str, str]:
    """ "ok" or the failure's message, for storage and for the cache (also the UI's status panel)."""
    checks = {"storage": index.storage.check_health, "cache": index.cache.check_health}
    results: dict[str, str] = {}
    for name, check in checks.items():
        try:
            check()
            results[name] = "ok"
        except PypicloudLiteError as exc:
            logger.warning("health check of %s failed: %s", name, exc.message)
            results[name] = exc.message
    return results


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
