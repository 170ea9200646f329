"""HTTP caching rules shared by pages and files: Cache-Control scope and If-None-Match."""

from __future__ import annotations

from pyramid.request import Request
from webob.etag import AnyETag

from pypicloud_lite.config import Settings
from pypicloud_lite.web.session import has_session_cookie


def cache_control(request: Request, max_age: int, immutable: bool = False, s_maxage: int | None = None) -> str:
    """`public` only for anonymous requests: a shared cache must never keep what credentials unlocked.

    A web UI login cookie is a credential too: the security policy reads it on every route.
    """
    authorized = request.authorization is not None or has_session_cookie(request)
    return cache_control_for(authorized, max_age, immutable, s_maxage)


def cache_control_for(authorized: bool, max_age: int, immutable: bool = False, s_maxage: int | None = None) -> str:
    if authorized:
        return f"private, max-age={max_age}" + (", immutable" if immutable else "")
    shared = f", s-maxage={s_maxage}" if s_maxage is not None else ""
    return f"public, max-age={max_age}{shared}" + (", immutable" if immutable else "")


def index_cache_control(request: Request, settings: Settings) -> str:
    """Index pages: the CDN keeps them s-maxage (long while it is purged on change), clients max-age."""
    return cache_control(request, settings.cdn.max_age, s_maxage=settings.cdn.s_maxage)


def if_none_match_covers(header: str | None, etags: tuple[str, ...]) -> bool:
    """Does this If-None-Match header name one of these (unquoted) ETags? Weak comparison, as for GET."""
    if not header:
        return False
    for listed in header.split(","):
        candidate = listed.strip()
        if candidate == "*" or candidate.removeprefix("W/").strip('"') in etags:
            return True
    return False


def not_modified(request: Request, etag: str) -> bool:
    """Does If-None-Match cover this (unquoted) ETag? `*` covers any existing representation."""
    # webob's AnyETag is falsy, so its own conditional-response logic never answers `*` with 304.
    return request.if_none_match is AnyETag or etag in request.if_none_match
