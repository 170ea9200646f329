"""HTTP caching rules shared by pages and files: Cache-Control scope and If-None-Match."""

from __future__ import annotations

from pyramid.request import Request
from webob.etag import AnyETag

from pypicloud_lite.config import Settings


def cache_control(request: Request, max_age: int, immutable: bool = False, s_maxage: int | None = None) -> str:
    """`public` only for anonymous requests: a shared cache must never keep what credentials unlocked."""
    if request.authorization is not None:
        return f"private, max-age={max_age}" + (", immutable" if immutable else "")
    shared = f", s-maxage={s_maxage}" if s_maxage is not None else ""
    return f"public, max-age={max_age}{shared}" + (", immutable" if immutable else "")


def index_cache_control(request: Request, settings: Settings) -> str:
    """Index pages: the CDN keeps them s-maxage (long while it is purged on change), clients max-age."""
    return cache_control(request, settings.cdn.max_age, s_maxage=settings.cdn.s_maxage)


def not_modified(request: Request, etag: str) -> bool:
    """Does If-None-Match cover this (unquoted) ETag? `*` covers any existing representation."""
    # webob's AnyETag is falsy, so its own conditional-response logic never answers `*` with 304.
    return request.if_none_match is AnyETag or etag in request.if_none_match
