"""The simple repository API: /simple/ and /simple/<project>/ in HTML and JSON."""

from __future__ import annotations

from pyramid.httpexceptions import HTTPMovedPermanently
from pyramid.request import Request
from pyramid.response import Response
from pyramid.view import view_config

from pypicloud_lite.naming import normalize
from pypicloud_lite.web.negotiation import Format, accepts_gzip, negotiate
from pypicloud_lite.web.page_cache import Page
from pypicloud_lite.web.permissions import require_index_read, require_read
from pypicloud_lite.web.services import services
from pypicloud_lite.web.session import has_session_cookie
from pypicloud_lite.web.simple_serving import page_response


def _redirect(request: Request, route: str, **kw: str) -> HTTPMovedPermanently:
    return HTTPMovedPermanently(location=request.route_path(route, _query=request.GET, **kw))


def _respond(request: Request, fmt: Format, page: Page) -> Response:
    answer = page_response(
        page,
        fmt,
        gzip_ok=accepts_gzip(request.headers.get("Accept-Encoding")),
        if_none_match=request.headers.get("If-None-Match"),
        authorized=request.authorization is not None or has_session_cookie(request),
        max_age=services(request).settings.cdn.max_age,
        s_maxage=services(request).settings.cdn.s_maxage,
    )
    # webob drops the body of a HEAD response itself, keeping its Content-Length.
    # A copy: webob edits its header list, and the prepared one is shared by every request.
    return Response(status=answer.status, headerlist=list(answer.headers), body=answer.body)


@view_config(route_name="simple.index.noslash", request_method="GET")
def index_noslash(request: Request) -> Response:
    return _redirect(request, "simple.index")


@view_config(route_name="simple.index", request_method="GET")
def index(request: Request) -> Response:
    fmt = negotiate(request)
    app = services(request)
    identity = require_index_read(request)
    if app.access.reads_everything(identity):
        page = app.pages.index_page(fmt.kind)
    else:
        page = app.pages.filtered_index_page(fmt.kind, lambda names: app.access.readable(identity, names))
    return _respond(request, fmt, page)


@view_config(route_name="simple.detail.noslash", request_method="GET")
def detail_noslash(request: Request) -> Response:
    return _redirect(request, "simple.detail", project=normalize(request.matchdict["project"]))


@view_config(route_name="simple.detail", request_method="GET")
def detail(request: Request) -> Response:
    name = request.matchdict["project"]
    if name != normalize(name):
        return _redirect(request, "simple.detail", project=normalize(name))
    fmt = negotiate(request)
    require_read(request, name)
    return _respond(request, fmt, services(request).project_page(name, fmt.kind))
