"""Admin endpoints: start a cache reload and follow its progress."""

from __future__ import annotations

import logging
import time
from typing import Any

from pyramid.request import Request
from pyramid.response import Response
from pyramid.view import view_config

from pypicloud_lite.reload_estimate import estimate
from pypicloud_lite.web.admin_tasks import run_in_background
from pypicloud_lite.web.audit_trail import audit
from pypicloud_lite.web.permissions import require_admin
from pypicloud_lite.web.services import services

logger = logging.getLogger(__name__)


@view_config(route_name="admin.reload", request_method="POST")
def start_reload(request: Request) -> Response:
    """202 and a reload in the background (`?wait=1`: 200 with the result); 409 while one runs anywhere.

    `?verify_sidecars=1`: also read every advertised PEP 658 sidecar and repair corrupt ones.
    """
    identity = require_admin(request)
    app = services(request)
    verify = request.GET.get("verify_sidecars") in ("1", "true")
    run = app.index.begin_reload(app.settings.reload.workers, verify_sidecars=verify)
    audit(request, "reload.start", detail="verifying sidecars" if verify else None, identity=identity)
    if request.GET.get("wait") in ("1", "true"):
        return Response(json_body=run.execute().as_dict())
    run_in_background(run)
    response = Response(json_body={"state": "started", "progress": request.route_url("admin.reload")}, status=202)
    response.location = request.route_url("admin.reload")
    return response


@view_config(route_name="admin.reload", request_method="GET", renderer="json")
def reload_status(request: Request) -> dict[str, Any]:
    require_admin(request)
    running, progress = services(request).index.reload_state()
    # Total, percentage, elapsed and time left, as ppc-reload prints them (reload_estimate.py).
    shown = estimate(progress, time.time()) if progress else None
    return {
        "running": running,
        "progress": progress,
        "estimate": shown and shown.as_dict(),
        "line": shown and shown.line(),
    }
