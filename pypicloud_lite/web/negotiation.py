"""PEP 691 content negotiation: HTML and JSON on the same URLs, chosen by Accept or ?format=."""

from __future__ import annotations

from dataclasses import dataclass

from pyramid.httpexceptions import HTTPNotAcceptable
from pyramid.request import Request
from webob.acceptparse import create_accept_header

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


def negotiate(request: Request) -> Format:
    """The representation to send, or 406 when nothing the client accepts is offered."""
    requested = request.GET.get("format")
    # ?format= takes the same media types as Accept (PEP 691), plus "json" and "html".
    accept = request.accept if requested is None else create_accept_header(_SHORT_FORMATS.get(requested, requested))
    offers = accept.acceptable_offers(list(_OFFERS))
    if not offers:
        raise HTTPNotAcceptable(
            "None of the requested representations is available; this index offers: " + ", ".join(_OFFERS)
        )
    return _OFFERS[offers[0][0]]
