"""The one place domain errors become HTTP: status, ISO-8859-1 reason, and a JSON body with the message."""

from __future__ import annotations

import logging

from pyramid.exceptions import PredicateMismatch, URLDecodeError
from pyramid.httpexceptions import HTTPException
from pyramid.request import Request
from pyramid.response import Response
from pyramid.view import exception_view_config

from pypicloud_lite.errors import (
    AuthenticationRequired,
    BackendCredentialsError,
    BackendUnavailable,
    Conflict,
    InvalidInput,
    NotFound,
    PermissionDenied,
    PypicloudLiteError,
    TooManyAttempts,
    UploadTooLarge,
    UpstreamBusy,
    UpstreamUnavailable,
)
from pypicloud_lite.web.services import services

logger = logging.getLogger(__name__)

ALLOWED_METHODS_KEY = "ppc.allowed_methods"

_STATUS: list[tuple[type[PypicloudLiteError], int]] = [
    (UploadTooLarge, 413),
    (InvalidInput, 400),
    (AuthenticationRequired, 401),
    (PermissionDenied, 403),
    (NotFound, 404),
    (Conflict, 409),
    (TooManyAttempts, 429),
    # Not an outage: the server's own configuration is wrong, and clients retrying will not mend it.
    (BackendCredentialsError, 500),
    (BackendUnavailable, 503),
    (UpstreamBusy, 503),
    (UpstreamUnavailable, 502),
]


def status_reason(message: str) -> str:
    """A status reason phrase: one line, ISO-8859-1 only (HTTP/1.1 cannot carry more)."""
    line = " ".join(message.split())
    return line.encode("latin-1", "replace").decode("latin-1")[:300]


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    response = Response(json_body={"status": status, "message": message}, status=f"{status} {status_reason(message)}")
    response.headers.update(headers or {})
    response.cache_control.no_store = True
    return response


@exception_view_config(PypicloudLiteError)
def domain_error(exc: PypicloudLiteError, request: Request) -> Response:
    return domain_error_response(exc, services(request).settings.auth.realm, f"{request.method} {request.path}")


def domain_error_response(exc: PypicloudLiteError, realm: str, what: str) -> Response:
    """The response for a domain error (`what` names the request in the log of server errors)."""
    status = next((code for kind, code in _STATUS if isinstance(exc, kind)), 500)
    headers = {}
    if isinstance(exc, BackendUnavailable | TooManyAttempts) and exc.retry_after is not None:
        headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, AuthenticationRequired):
        headers["WWW-Authenticate"] = f'Basic realm="{realm}"'
    if status >= 500:
        logger.error("%s failed: %s", what, exc.message)
    return error_response(status, exc.message, headers)


@exception_view_config(PredicateMismatch)
def method_not_allowed(exc: PredicateMismatch, request: Request) -> Response:
    # Our views only predicate on the method: a matched route with no view is a wrong method.
    route = request.matched_route.name if request.matched_route else None
    allowed = request.registry.get(ALLOWED_METHODS_KEY, {}).get(route)
    if not allowed:
        return http_error(exc, request)
    message = f"Method {request.method} is not allowed here; use {allowed}."
    return error_response(405, message, {"Allow": allowed})


@exception_view_config(HTTPException)
def http_error(exc: HTTPException, request: Request) -> Response:
    if exc.code is None or exc.code < 400:
        return exc
    message = exc.detail or exc.explanation or exc.title
    if message == request.path:
        message = f"{exc.title}: {request.path}"
    kept = {k: v for k, v in exc.headers.items() if k.lower() not in ("content-type", "content-length")}
    return error_response(exc.code, str(message), headers=kept)


@exception_view_config(URLDecodeError)
def undecodable_path(exc: URLDecodeError, request: Request) -> Response:
    # Raised while routing, before any view: the path's %-escapes are not UTF-8.
    return error_response(400, "The URL path is not valid UTF-8.")
