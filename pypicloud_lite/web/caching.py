"""HTTP caching rules shared by pages and files: Cache-Control scope and If-None-Match."""

from __future__ import annotations

from pyramid.request import Request
from webob.etag import AnyETag

from pypicloud_lite.web.session import has_session_cookie


def cache_control(request: Request, max_age: int, immutable: bool = False) -> str:
    """`public` only for anonymous requests: a shared cache must never keep what credentials unlocked.

    A web UI login cookie is a credential too: the security policy reads it on every route.
    """
    return cache_control_for(request.authorization is not None or has_session_cookie(request), max_age, immutable)


def cache_control_for(authorized: bool, max_age: int, immutable: bool = False) -> str:
    scope = "private" if authorized else "public"
    return f"{scope}, max-age={max_age}" + (", immutable" if immutable else "")


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
