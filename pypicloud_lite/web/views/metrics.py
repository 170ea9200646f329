"""`GET /metrics`: the Prometheus exposition, for clients `metrics.allow` names or holding `metrics.token`."""

from __future__ import annotations

import hmac
import ipaddress
import os
from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric
from pyramid.request import Request
from pyramid.response import Response
from pyramid.view import view_config

from pypicloud_lite.errors import NotFound, PermissionDenied
from pypicloud_lite.ops_settings import OpsSettings
from pypicloud_lite.web.audit_trail import client_address
from pypicloud_lite.web.services import AppServices, services

# The CDN outbox is counted up to this many pending changes (a flush takes a few thousand at most).
OUTBOX_COUNT_LIMIT = 10_000
RELOAD_COUNTS = ("listed", "added", "removed", "changed", "unchanged", "hashed", "repaired", "failed")


class _ThisProcess:
    """The default registry's metrics (this process's counters, and its CPU, memory and GC)."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


class _SharedState:
    """What every process shares, read at scrape time: the reload's progress and the CDN outbox's depth."""

    def __init__(self, app: AppServices) -> None:
        self.app = app

    def collect(self) -> Iterator[Metric]:
        running, progress = self.app.index.reload_state()
        yield GaugeMetricFamily("ppc_reload_running", "1 while a reload runs on any process.", value=int(running))
        counts = GaugeMetricFamily("ppc_reload_objects", "The last or running reload's counts.", labels=["count"])
        for key in RELOAD_COUNTS:
            value = (progress or {}).get(key)
            if isinstance(value, int):
                counts.add_metric([key], value)
        yield counts
        yield GaugeMetricFamily("ppc_index_serial", "The index's change serial.", value=self.app.index.serial())
        if self.app.index.cache.cdn_outbox:  # the ini's cdn.*, or the index's CDN (cdn.settle_cdn)
            pending = len(self.app.index.cache.outbox_pending(OUTBOX_COUNT_LIMIT))
            yield GaugeMetricFamily("ppc_cdn_outbox_pending", "Changes waiting for a CDN purge.", value=pending)


def exposition(app: AppServices) -> bytes:
    """Every worker's metrics summed (multiprocess mode, with PROMETHEUS_MULTIPROC_DIR), or this process's."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry.register(_ThisProcess())
    registry.register(_SharedState(app))
    return generate_latest(registry)


def check_scraper(request: Request, settings: OpsSettings) -> None:
    if not settings.metrics_enabled:
        raise NotFound("Metrics are off: set metrics.enabled = true (see README, Metrics).")
    header = request.headers.get("Authorization", "")
    if settings.metrics_token and header.startswith("Bearer "):
        if hmac.compare_digest(header[len("Bearer ") :].encode(), settings.metrics_token.encode()):
            return
        raise PermissionDenied("Wrong metrics token.")
    try:
        address = ipaddress.ip_address(client_address(request.environ) or "")
    except ValueError:
        address = None
    if address is None or not any(address in network for network in settings.metrics_allow):
        raise PermissionDenied(
            "Metrics are not served to this address: add it to metrics.allow, "
            "or send the metrics.token as a Bearer token."
        )


@view_config(route_name="metrics", request_method="GET")
def metrics(request: Request) -> Response:
    app = services(request)
    check_scraper(request, app.settings.ops)
    response = Response(body=exposition(app))
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    response.cache_control.no_store = True
    return response
