"""Package files and their PEP 658 metadata at stable URLs, with HEAD, Range and conditional GET."""

from __future__ import annotations

from pyramid.httpexceptions import HTTPFound
from pyramid.request import Request
from pyramid.response import Response
from pyramid.view import view_config
from webob.static import FileIter

from pypicloud_lite.naming import METADATA_SUFFIX
from pypicloud_lite.web.services import services

_CONTENT_TYPES = {".whl": "application/zip", ".zip": "application/zip", ".gz": "application/gzip"}


def _content_type(filename: str) -> str:
    return next((ctype for ext, ctype in _CONTENT_TYPES.items() if filename.endswith(ext)), "application/octet-stream")


@view_config(route_name="files.download", request_method="GET")
def download(request: Request) -> Response:
    app = services(request)
    project, filename = request.matchdict["project"], request.matchdict["filename"]
    is_metadata = filename.endswith(METADATA_SUFFIX)
    file = app.index.get_file(project, filename.removesuffix(METADATA_SUFFIX))
    max_age = app.settings.web.file_max_age
    if is_metadata:
        body = app.index.open_metadata(file)
        etag, content_type = file.metadata_sha256, "text/plain"
        length = None
    else:
        url = app.index.download_url(file)
        if url is not None:
            redirect = HTTPFound(location=url)
            redirect.cache_control.no_store = True
            return redirect
        body = app.index.open_file(file)
        etag, content_type, length = file.sha256, _content_type(file.filename), file.size
    response = Response(
        app_iter=FileIter(body),
        content_type=content_type,
        conditional_response=True,
    )
    if content_type.startswith("text/"):
        response.charset = "utf-8"
    if length is None:
        body.seek(0, 2)
        length = body.tell()
        body.seek(0)
    response.content_length = length
    response.etag = etag
    response.last_modified = file.upload_time
    response.accept_ranges = "bytes"
    response.cache_control.public = True
    response.cache_control.max_age = max_age
    response.cache_control.immutable = True
    return response
