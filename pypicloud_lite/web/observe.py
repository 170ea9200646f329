"""What each request did, measured once: the access log line (`log.access`) and the request metrics.

`RequestObserver` is a WSGI middleware around everything (the fast path and the router): it gives each request
an id (`X-Request-Id`, a sane one from the client or a new one, echoed in the answer), then on the answer's last
byte logs one line and counts the request by route, method and status.
"""

from __future__ import annotations

import functools
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from pyramid.events import ContextFound, subscriber

from pypicloud_lite.errors import PypicloudLiteError
from pypicloud_lite.metrics import LATENCY, REQUESTS, UPLOAD_REJECTIONS, UPLOADED_BYTES, UPLOADED_FILES
from pypicloud_lite.ops_settings import OpsSettings
from pypicloud_lite.service import UploadResult
from pypicloud_lite.web.audit_trail import client_address
from pypicloud_lite.web.security import known_username

logger = logging.getLogger("pypicloud_lite.access_log")

ROUTE_KEY = "ppc.route"
REQUEST_ID_KEY = "ppc.request_id"
_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}\Z")


@subscriber(ContextFound)
def note_route(event: ContextFound) -> None:
    """The matched route's name, for the metrics' `route` label (a bounded set, unlike paths)."""
    route = event.request.matched_route
    if route is not None:
        event.request.environ[ROUTE_KEY] = route.name


class RequestObserver:
    def __init__(self, app: Any, settings: OpsSettings) -> None:
        self.app = app
        # Tests and tools reach the Pyramid registry through the app they were given.
        self.registry = app.registry
        self.access_log = settings.access_log
        self.metrics = settings.metrics_enabled

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        started = time.perf_counter()
        given = environ.get("HTTP_X_REQUEST_ID", "")
        request_id = given if _SANE_ID.match(given) else uuid.uuid4().hex
        environ[REQUEST_ID_KEY] = request_id
        status = [0]

        def observed(status_line: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            status[0] = int(status_line[:3])
            return start_response(status_line, [*headers, ("X-Request-Id", request_id)], exc_info)

        try:
            body = self.app(environ, observed)
        except Exception:
            self._done(environ, 500, 0, started)
            raise
        return _Measured(body, lambda sent: self._done(environ, status[0], sent, started))

    def _done(self, environ: dict[str, Any], status: int, sent: int, started: float) -> None:
        duration = time.perf_counter() - started
        route = environ.get(ROUTE_KEY, "unmatched")
        method = environ.get("REQUEST_METHOD", "-")
        if self.metrics:
            REQUESTS.labels(route, method, str(status)).inc()
            LATENCY.labels(route).observe(duration)
        if self.access_log != "off":
            self._log(environ, status, sent, duration, method)

    def _log(self, environ: dict[str, Any], status: int, sent: int, duration: float, method: str) -> None:
        path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        query = environ.get("QUERY_STRING", "")
        fields = {
            "request_id": environ[REQUEST_ID_KEY],
            "client": client_address(environ) or "-",
            "user": known_username(environ) or "-",
            "method": method,
            "path": path + (f"?{query}" if query else ""),
            "protocol": environ.get("SERVER_PROTOCOL", "-"),
            "status": status,
            "bytes": sent,
            "duration_ms": round(duration * 1000, 3),
            "user_agent": environ.get("HTTP_USER_AGENT", "-"),
        }
        if self.access_log == "json":
            logger.info("%s %s %s", method, fields["path"], status, extra=fields)
            return
        when = datetime.now(UTC).strftime("%d/%b/%Y:%H:%M:%S +0000")
        request_line = f"{method} {fields['path']} {fields['protocol']}"
        logger.info(
            '%s - %s [%s] "%s" %d %s %.3fms %s',
            fields["client"],
            fields["user"],
            when,
            request_line,
            status,
            sent or "-",
            fields["duration_ms"],
            fields["request_id"],
        )


class _Measured:
    """The answer's body, passed through: counts its bytes and reports when the server closes it."""

    def __init__(self, body: Iterable[bytes], done: Callable[[int], None]) -> None:
        self.body = body
        self.done = done
        self.sent = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.body:
            self.sent += len(chunk)
            yield chunk

    def close(self) -> None:
        try:
            close = getattr(self.body, "close", None)
            if close is not None:
                close()
        finally:
            self.done(self.sent)


def count_upload(result: UploadResult) -> None:
    if result.created:
        UPLOADED_FILES.inc()
        UPLOADED_BYTES.inc(result.file.size)


def counts_rejections(view: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """An upload view whose refusals are counted by reason (the error's kind: FileExists, UploadTooLarge...)."""

    @functools.wraps(view)
    def counted(request: Any) -> Any:
        try:
            return view(request)
        except PypicloudLiteError as exc:
            UPLOAD_REJECTIONS.labels(type(exc).__name__).inc()
            raise

    return counted
