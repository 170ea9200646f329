"""Package files and their PEP 658 metadata at stable URLs, with HEAD, Range and conditional GET."""

from __future__ import annotations

from pyramid.httpexceptions import HTTPFound
from pyramid.request import Request
from pyramid.response import Response
from pyramid.view import view_config
from webob.static import FileIter

from pypicloud_lite.models import PackageFile
from pypicloud_lite.naming import METADATA_SUFFIX
from pypicloud_lite.web.services import services

_CONTENT_TYPES = {".whl": "application/zip", ".zip": "application/zip", ".gz": "application/gzip"}


def _content_type(filename: str) -> str:
    return next((ctype for ext, ctype in _CONTENT_TYPES.items() if filename.endswith(ext)), "application/octet-stream")


def _immutable(response: Response, file: PackageFile, etag: str, max_age: int) -> Response:
    # webob answers Range, If-Range, If-None-Match and HEAD from these headers.
    response.conditional_response = True
    response.etag = etag
    response.last_modified = file.upload_time
    response.accept_ranges = "bytes"
    # Set as text: webob's cache_control object has no `immutable` directive.
    response.headers["Cache-Control"] = f"public, max-age={max_age}, immutable"
    return response


@view_config(route_name="files.download", request_method="GET")
def download(request: Request) -> Response:
    app = services(request)
    project, filename = request.matchdict["project"], request.matchdict["filename"]
    max_age = app.settings.web.file_max_age
    if filename.endswith(METADATA_SUFFIX):
        file = app.index.get_file(project, filename.removesuffix(METADATA_SUFFIX))
        body = app.index.read_metadata(file)
        response = Response(body=body, content_type="text/plain", charset="utf-8")
        assert file.metadata_sha256 is not None
        return _immutable(response, file, file.metadata_sha256, max_age)
    file = app.index.get_file(project, filename)
    url = app.index.download_url(file)
    if url is not None:
        redirect = HTTPFound(location=url)
        redirect.cache_control.no_store = True
        return redirect
    response = Response(app_iter=FileIter(app.index.open_file(file)), content_type=_content_type(file.filename))
    response.content_length = file.size
    return _immutable(response, file, file.sha256, max_age)
