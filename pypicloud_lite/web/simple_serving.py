"""Simple pages on the wire: one response builder, and a WSGI fast path that serves them without routing.

The fast path answers only what it can answer exactly as the Pyramid views would: a GET
or HEAD of `/simple/` or a normalized `/simple/<project>/`, with no query string, by a
caller allowed to read it, when the page exists. Everything else (redirects, 401/404/406,
filtered listings) goes to the Pyramid router, which renders the same pages through
the same cache and the same builder. Domain errors on the way (a missing project, an
unavailable cache, too many failed logins) get the router's own error response.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pypicloud_lite.activity import note_request
from pypicloud_lite.errors import PypicloudLiteError
from pypicloud_lite.naming import normalize
from pypicloud_lite.web.caching import cache_control_for, if_none_match_covers
from pypicloud_lite.web.errors import domain_error_response
from pypicloud_lite.web.headers import secured, with_security_headers
from pypicloud_lite.web.negotiation import Format, accepts_gzip, format_for
from pypicloud_lite.web.observe import ROUTE_KEY
from pypicloud_lite.web.page_cache import Page
from pypicloud_lite.web.security import identify
from pypicloud_lite.web.services import AppServices
from pypicloud_lite.web.session import COOKIE_NAME as SESSION_COOKIE

_PREFIX = "/simple/"


@dataclass(frozen=True)
class PageResponse:
    status: str
    headers: list[tuple[str, str]]
    body: bytes


@dataclass(frozen=True)
class _Prepared:
    """One page's responses for one kind of request, built once: a hit only compares ETags."""

    etags: tuple[str, str]  # identity and gzip, unquoted
    ok: PageResponse
    not_modified: PageResponse


def page_response(
    page: Page,
    fmt: Format,
    *,
    gzip_ok: bool,
    if_none_match: str | None,
    authorized: bool,
    max_age: int,
    s_maxage: int | None,
) -> PageResponse:
    """200 with the page (gzipped when accepted) or 304 when If-None-Match names it in either encoding."""
    if page.shared_max_age is not None:
        max_age = min(max_age, page.shared_max_age)
        s_maxage = page.shared_max_age if s_maxage is None else min(s_maxage, page.shared_max_age)
    key = (fmt.content_type, gzip_ok, authorized, max_age, s_maxage)
    prepared: _Prepared | None = page.responses.get(key)
    if prepared is None:
        cache_control = cache_control_for(authorized, max_age, s_maxage=s_maxage)
        prepared = page.responses[key] = _prepare(page, fmt, gzip_ok=gzip_ok, cache_control=cache_control)
    if if_none_match and if_none_match_covers(if_none_match, prepared.etags):
        return prepared.not_modified
    return prepared.ok


def _prepare(page: Page, fmt: Format, *, gzip_ok: bool, cache_control: str) -> _Prepared:
    media_type = fmt.content_type.split(";")[0]
    identity_etag = f"{page.etag}-{media_type}"
    gzip_etag = f"{identity_etag}-gzip"
    headers = [
        ("ETag", f'"{gzip_etag if gzip_ok else identity_etag}"'),
        ("Vary", "Accept, Accept-Encoding"),
        ("Cache-Control", cache_control),
        ("X-PyPI-Last-Serial", str(page.serial)),
        *page.extra_headers,
    ]
    body = page.gzipped if gzip_ok else page.body
    ok_headers = [*headers, ("Content-Type", fmt.content_type), ("Content-Length", str(len(body)))]
    if gzip_ok:
        ok_headers.append(("Content-Encoding", "gzip"))
    return _Prepared(
        etags=(identity_etag, gzip_etag),
        ok=PageResponse("200 OK", with_security_headers(ok_headers), body),
        not_modified=PageResponse("304 Not Modified", with_security_headers(headers), b""),
    )


class SimpleFastPath:
    """WSGI middleware in front of the Pyramid router for the requests pip and uv make most."""

    def __init__(self, app: Any, services: AppServices) -> None:
        self.app = app
        # Tests and tools reach the Pyramid registry through the app they were given.
        self.registry = app.registry
        self.services = services

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        # Every request the app answers comes through here: a reload's fill rests while they come (activity.py).
        note_request()
        # The prepared pages carry the security headers already; everything else gets them on the way out.
        try:
            response = self._serve(environ)
        except PypicloudLiteError as exc:
            # Answered here, not retried by the router: a hung database must cost one timeout, not two.
            what = f"{environ['REQUEST_METHOD']} {environ.get('PATH_INFO', '')}"
            error: Iterable[bytes] = domain_error_response(exc, self.services.settings.auth.realm, what)(
                environ, secured(start_response)
            )
            return error
        if response is None:
            result: Iterable[bytes] = self.app(environ, secured(start_response))
            return result
        start_response(response.status, list(response.headers))
        return [b"" if environ["REQUEST_METHOD"] == "HEAD" else response.body]

    def _serve(self, environ: dict[str, Any]) -> PageResponse | None:
        """The page for this request, None for the router to answer, or the domain error the router would raise."""
        path: str = environ.get("PATH_INFO", "")
        if (
            environ["REQUEST_METHOD"] not in ("GET", "HEAD")
            or environ.get("QUERY_STRING")
            or not path.startswith(_PREFIX)
            or not path.endswith("/")
            or not path.isascii()  # WSGI paths are bytes as latin-1: the router decodes them properly
            or SESSION_COOKIE in environ.get("HTTP_COOKIE", "")  # a web UI login: the router's policy reads it
        ):
            return None
        name = path[len(_PREFIX) : -1]
        if "/" in name or name != normalize(name):
            return None
        fmt = format_for(environ.get("HTTP_ACCEPT"))
        if fmt is None:
            return None
        page = self._page(environ, name, fmt)
        if page is None:
            return None
        environ[ROUTE_KEY] = "simple.detail" if name else "simple.index"
        return page_response(
            page,
            fmt,
            gzip_ok=accepts_gzip(environ.get("HTTP_ACCEPT_ENCODING")),
            if_none_match=environ.get("HTTP_IF_NONE_MATCH"),
            authorized="HTTP_AUTHORIZATION" in environ,
            max_age=self.services.settings.cdn.max_age,
            s_maxage=self.services.settings.cdn.s_maxage,
        )

    def _page(self, environ: dict[str, Any], name: str, fmt: Format) -> Page | None:
        access = self.services.access
        identity = identify(environ, access)
        if identity is None and "HTTP_AUTHORIZATION" in environ:
            return None  # wrong credentials: the router answers 401
        if not name:
            return self.services.pages.index_page(fmt.kind) if access.reads_everything(identity) else None
        return self.services.project_page(name, fmt.kind) if access.can_read(identity, name) else None
