"""The simple repository API: /simple/ and /simple/<project>/ in HTML and JSON."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from pyramid.httpexceptions import HTTPMovedPermanently, HTTPNotModified
from pyramid.request import Request
from pyramid.response import Response
from pyramid.view import view_config

from pypicloud_lite.errors import AuthenticationRequired
from pypicloud_lite.models import Project
from pypicloud_lite.naming import normalize
from pypicloud_lite.web import simple_pages
from pypicloud_lite.web.caching import index_cache_control, not_modified
from pypicloud_lite.web.negotiation import Format, negotiate
from pypicloud_lite.web.security import authenticated, require_read
from pypicloud_lite.web.services import services


def _redirect(request: Request, route: str, **kw: str) -> HTTPMovedPermanently:
    return HTTPMovedPermanently(location=request.route_path(route, _query=request.GET, **kw))


def _respond(request: Request, fmt: Format, etag: str, serial: int, render: Callable[[], bytes]) -> Response:
    headers = {
        "ETag": f'"{etag}-{fmt.content_type.split(";")[0]}"',
        "Vary": "Accept",
        "Cache-Control": index_cache_control(request, services(request).settings),
        "X-PyPI-Last-Serial": str(serial),
    }
    if not_modified(request, headers["ETag"].strip('"')):
        return HTTPNotModified(headers=headers)
    response = Response(body=render(), content_type=fmt.content_type.split(";")[0], charset="utf-8")
    response.headers.update(headers)
    return response


@view_config(route_name="simple.index.noslash", request_method="GET")
def index_noslash(request: Request) -> Response:
    return _redirect(request, "simple.index")


@view_config(route_name="simple.index", request_method="GET")
def index(request: Request) -> Response:
    fmt = negotiate(request)
    app = services(request)
    identity = authenticated(request)
    if identity is None and "everyone" not in app.settings.auth.default_read:
        raise AuthenticationRequired("This index needs credentials to read.")
    serial = app.index.serial()
    if app.access.reads_everything(identity):
        etag = str(serial)
        listed: list[Project] | None = None
    else:
        # Grants change without a serial bump: a filtered listing is tagged by what it shows.
        projects = app.index.list_projects()
        readable = app.access.readable(identity, [p.name for p in projects])
        listed = [p for p in projects if p.name in readable]
        etag = f"{serial}.{hashlib.sha256(' '.join(sorted(readable)).encode()).hexdigest()[:16]}"

    def render() -> bytes:
        projects = app.index.list_projects() if listed is None else listed
        if fmt.kind == "json":
            return simple_pages.index_json(projects, serial)
        return simple_pages.index_html(projects)

    return _respond(request, fmt, etag, serial, render)


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
    package_index = services(request).index
    project = package_index.get_project(name)

    def render() -> bytes:
        files = package_index.offered_files(project)
        if fmt.kind == "json":
            return simple_pages.project_json(project, files)
        return simple_pages.project_html(project, files)

    return _respond(request, fmt, str(project.serial), project.serial, render)
