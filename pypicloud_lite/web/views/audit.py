"""The audit trail for admins: `GET /api/audit` (JSON, filtered, paged) and its page in the web UI."""

from __future__ import annotations

from typing import Any

from pyramid.request import Request
from pyramid.view import view_config

from pypicloud_lite.access.audit import ACTIONS, MAX_PAGE, AuditEvent, AuditQuery
from pypicloud_lite.config_values import parse_instant
from pypicloud_lite.errors import InvalidInput
from pypicloud_lite.naming import normalize
from pypicloud_lite.web.forms import int_param
from pypicloud_lite.web.permissions import require_admin
from pypicloud_lite.web.services import services

FILTERS = ("actor", "action", "project", "since", "until")


def _query(request: Request, default_limit: int) -> AuditQuery:
    """The filters of `?actor=&action=&project=&since=&until=&before=&limit=`; empty values filter nothing."""
    given = {name: str(request.GET.get(name, "")).strip() or None for name in FILTERS}
    instants = {}
    for name in ("since", "until"):
        try:
            instants[name] = parse_instant(given[name] or "")
        except ValueError as exc:
            raise InvalidInput(f"Query parameter {name!r}: {exc}.") from None
    before = int_param(request, "before", 2**62, 2**62) if request.GET.get("before") else None
    return AuditQuery(
        actor=given["actor"],
        action=given["action"],
        project=normalize(given["project"]) if given["project"] else None,
        since=instants["since"],
        until=instants["until"],
        before=before,
        limit=int_param(request, "limit", default_limit, MAX_PAGE),
    )


def _page(request: Request, route: str, default_limit: int) -> tuple[list[AuditEvent], str | None]:
    """One page of records, newest first, and the URL of the next (older) one when this page is full."""
    query = _query(request, default_limit)
    records = services(request).access.audit.find(query)
    following = None
    if len(records) == query.limit and records[-1].id is not None:
        kept = {name: value for name, value in request.GET.items() if name in (*FILTERS, "limit") and value}
        following = request.route_url(route, _query={**kept, "before": str(records[-1].id)})
    return records, following


@view_config(route_name="api.audit", request_method="GET", renderer="json")
def audit_records(request: Request) -> dict[str, Any]:
    require_admin(request)
    records, following = _page(request, "api.audit", 100)
    return {"records": [record.to_json() for record in records], "next": following}


@view_config(route_name="ui.audit", request_method="GET", renderer="audit.jinja2")
def audit_page(request: Request) -> dict[str, Any]:
    require_admin(request)
    records, following = _page(request, "ui.audit", 50)
    return {
        "records": records,
        "next_url": following,
        "filters": {name: request.GET.get(name, "") for name in FILTERS},
        "actions": ACTIONS,
    }
