"""PEP 691 content negotiation: HTML and JSON on the same URLs, chosen by Accept or ?format=."""

from __future__ import annotations

from dataclasses import dataclass

from pyramid.httpexceptions import HTTPNotAcceptable
from pyramid.request import Request
from webob.acceptparse import create_accept_encoding_header, create_accept_header

JSON_V1 = "application/vnd.pypi.simple.v1+json"
HTML_V1 = "application/vnd.pypi.simple.v1+html"


@dataclass(frozen=True)
class Format:
    kind: str  # "html" or "json"
    content_type: str


# Server preference for equal q-values: HTML first, as PyPI does for a bare `*/*`.
_OFFERS: dict[str, Format] = {
    "text/html": Format("html", "text/html; charset=utf-8"),
    HTML_V1: Format("html", HTML_V1),
    "application/vnd.pypi.simple.latest+html": Format("html", HTML_V1),
    JSON_V1: Format("json", JSON_V1),
    "application/vnd.pypi.simple.latest+json": Format("json", JSON_V1),
}
_SHORT_FORMATS = {"json": JSON_V1, "html": "text/html"}


# Clients send a handful of distinct Accept headers; parsing each once keeps negotiation off the hot path.
_MEMO_SIZE = 256
_formats: dict[str | None, Format | None] = {}
_gzip: dict[str | None, bool] = {}


def format_for(accept: str | None) -> Format | None:
    """The representation for this Accept header (None: absent), or None when nothing offered is acceptable."""
    try:
        return _formats[accept]
    except KeyError:
        pass
    offers = create_accept_header(accept).acceptable_offers(list(_OFFERS))
    found = _OFFERS[offers[0][0]] if offers else None
    if len(_formats) >= _MEMO_SIZE:
        _formats.clear()
    _formats[accept] = found
    return found


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Does this Accept-Encoding header take gzip (q > 0)? Absent means identity only."""
    try:
        return _gzip[accept_encoding]
    except KeyError:
        pass
    found = accept_encoding is not None and bool(
        create_accept_encoding_header(accept_encoding).acceptable_offers(["gzip"])
    )
    if len(_gzip) >= _MEMO_SIZE:
        _gzip.clear()
    _gzip[accept_encoding] = found
    return found


# JSON-only resources of the JSON API (PEP 752's namespace endpoints): plain JSON is offered too.
_JSON_OFFERS = {
    JSON_V1: JSON_V1,
    "application/vnd.pypi.simple.latest+json": JSON_V1,
    "application/json": "application/json",
}


def negotiate_json(request: Request) -> str:
    """The content type of a JSON-only resource, or 406 when the client takes no JSON."""
    offers = create_accept_header(request.headers.get("Accept")).acceptable_offers(list(_JSON_OFFERS))
    if not offers:
        raise HTTPNotAcceptable("This resource is JSON only; this index offers: " + ", ".join(_JSON_OFFERS))
    return _JSON_OFFERS[offers[0][0]]


def negotiate(request: Request) -> Format:
    """The representation to send, or 406 when nothing the client accepts is offered."""
    requested = request.GET.get("format")
    # ?format= takes the same media types as Accept (PEP 691), plus "json" and "html".
    accept = request.headers.get("Accept") if requested is None else _SHORT_FORMATS.get(requested, requested)
    found = format_for(accept)
    if found is None:
        raise HTTPNotAcceptable(
            "None of the requested representations is available; this index offers: " + ", ".join(_OFFERS)
        )
    return found
