"""PEP 752's namespace endpoints of the JSON API: /namespaces and /namespace/<namespace>."""

from __future__ import annotations

from pyramid.httpexceptions import HTTPMovedPermanently
from pyramid.request import Request
from pyramid.response import Response
from pyramid.view import view_config

from pypicloud_lite.naming import normalize
from pypicloud_lite.web.negotiation import negotiate_json
from pypicloud_lite.web.permissions import require_index_read
from pypicloud_lite.web.services import services


def _json(request: Request, body: object) -> Response:
    response = Response(json_body=body, content_type=negotiate_json(request), charset=None)
    response.vary = ("Accept",)
    # Namespaces change without a serial bump or a CDN purge: caches revalidate every time.
    response.cache_control.no_cache = True
    return response


@view_config(route_name="simple.namespace.list", request_method="GET")
@view_config(route_name="namespace.list", request_method="GET")
def namespace_list(request: Request) -> Response:
    negotiate_json(request)
    require_index_read(request)
    return _json(request, services(request).namespaces.listing())


@view_config(route_name="simple.namespace.detail", request_method="GET")
@view_config(route_name="namespace.detail", request_method="GET")
def namespace_detail(request: Request) -> Response:
    name = request.matchdict["namespace"]
    if name != normalize(name):
        route = request.matched_route.name
        return HTTPMovedPermanently(location=request.route_path(route, namespace=normalize(name), _query=request.GET))
    negotiate_json(request)
    require_index_read(request)
    return _json(request, services(request).namespaces.detail(name))
