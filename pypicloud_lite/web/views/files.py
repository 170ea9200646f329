"""Package files and their PEP 658 metadata at stable URLs, with HEAD, Range and conditional GET."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Generator, Iterator
from typing import BinaryIO

from pyramid.httpexceptions import HTTPFound
from pyramid.request import Request
from pyramid.response import Response
from pyramid.view import view_config
from webob.static import FileIter

from pypicloud_lite.errors import NotFound
from pypicloud_lite.models import PackageFile
from pypicloud_lite.naming import METADATA_SUFFIX, normalize
from pypicloud_lite.web.caching import cache_control, not_modified
from pypicloud_lite.web.permissions import require_read
from pypicloud_lite.web.services import AppServices, services

_CONTENT_TYPES = {".whl": "application/zip", ".zip": "application/zip", ".gz": "application/gzip"}


class LazyObjectIter:
    """A WSGI body that opens the stored object only for a response that sends it.

    HEAD, 304 and 416 answers never read the body; an object opened for them
    would stay open (with S3 streaming, holding a pooled connection). A GET that
    will send bytes has them opened by the view (`prefetch`), so a missing
    object or a storage failure still becomes a proper error response.
    """

    def __init__(self, opener: Callable[[int, int | None], BinaryIO]) -> None:
        self._opener = opener
        self._running: Generator[bytes] | None = None
        self._prefetched: tuple[int, int | None, BinaryIO] | None = None

    def prefetch(self, start: int, end: int | None) -> None:
        self._prefetched = (start, end, self._opener(start, end))

    def app_iter_range(
        self, seek: int | None = None, limit: int | None = None, block_size: int | None = None
    ) -> Generator[bytes]:
        self._running = self._chunks(seek, limit, block_size)
        return self._running

    def __iter__(self) -> Iterator[bytes]:
        return self.app_iter_range()

    def _chunks(self, seek: int | None, limit: int | None, block_size: int | None) -> Generator[bytes]:
        # webob's `limit` is an exclusive end; storage ranges are inclusive, as in HTTP.
        wanted = (seek or 0, None if limit is None else limit - 1)
        prefetched, self._prefetched = self._prefetched, None
        if prefetched is not None and prefetched[:2] == wanted:
            stream = prefetched[2]
        else:
            if prefetched is not None:
                prefetched[2].close()
            stream = self._opener(*wanted)
        yield from FileIter(stream).app_iter_range(block_size=block_size)

    def close(self) -> None:
        if self._running is not None:
            self._running.close()
        if self._prefetched is not None:
            self._prefetched[2].close()
            self._prefetched = None


def _content_type(filename: str) -> str:
    return next((ctype for ext, ctype in _CONTENT_TYPES.items() if filename.endswith(ext)), "application/octet-stream")


def _immutable(request: Request, response: Response, file: PackageFile, etag: str, max_age: int) -> Response:
    # webob answers Range, If-Range, If-None-Match and HEAD from these headers.
    response.conditional_response = True
    response.etag = etag
    response.last_modified = file.upload_time
    response.accept_ranges = "bytes"
    # Set as text: webob's cache_control object has no `immutable` directive.
    response.headers["Cache-Control"] = cache_control(request, max_age, immutable=True)
    if not_modified(request, etag):
        response.app_iter = []
        response.status = 304
        del response.content_length
        del response.content_type
    return response


def _local_file(app: AppServices, project: str, filename: str) -> PackageFile | None:
    """The file as this index holds it; None when it is an upstream's file not cached (yet).

    A file cached from upstream is refused while the cooldown holds it back (as the upstream's listing does).
    """
    try:
        found = app.index.downloadable_file(project, filename)
    except NotFound:
        if not _proxied(app, project):
            raise
        return None
    if app.upstream is not None and _proxied(app, project):
        app.upstream.proxy.check_cached(found)
    return found


def _proxied(app: AppServices, project: str) -> bool:
    return app.upstream is not None and app.upstream.proxy.proxied(project)


def _upstream_file(app: AppServices, project: str, filename: str) -> PackageFile | str:
    """An upstream's file: cached into storage (then served as any file), or its URL to redirect to."""
    assert app.upstream is not None
    proxy = app.upstream.proxy
    upstream, file = proxy.find_file(project, filename)
    if upstream.mode == "redirect":
        return file.url
    return proxy.cache_file(project, filename)


def _upstream_metadata(request: Request, app: AppServices, project: str, filename: str) -> Response:
    assert app.upstream is not None
    body = app.upstream.proxy.metadata(project, filename)
    response = Response(body=body, content_type="text/plain", charset="utf-8")
    response.conditional_response = True
    response.etag = hashlib.sha256(body).hexdigest()
    response.headers["Cache-Control"] = cache_control(request, app.settings.web.file_max_age, immutable=True)
    return response


@view_config(route_name="files.download", request_method="GET")
def download(request: Request) -> Response:
    app = services(request)
    project, filename = normalize(request.matchdict["project"]), request.matchdict["filename"]
    require_read(request, project)
    max_age = app.settings.web.file_max_age
    if filename.endswith(METADATA_SUFFIX):
        found = _local_file(app, project, filename.removesuffix(METADATA_SUFFIX))
        if found is None or (found.metadata_sha256 is None and _proxied(app, project)):
            return _upstream_metadata(request, app, project, filename.removesuffix(METADATA_SUFFIX))
        response = Response(body=app.index.read_metadata(found), content_type="text/plain", charset="utf-8")
        assert found.metadata_sha256 is not None
        return _immutable(request, response, found, found.metadata_sha256, max_age)
    file = _local_file(app, project, filename) or _upstream_file(app, project, filename)
    if isinstance(file, str):
        redirect = HTTPFound(location=file)
        redirect.cache_control.no_store = True
        return redirect
    # HEAD is answered here: a URL presigned for GET is refused for HEAD by S3 (the method is signed).
    link = app.index.download_url(file) if request.method == "GET" else None
    if link is not None:
        # Counted here: the bytes go from S3 (or a CDN) straight to the client, which this server never sees.
        app.downloads.count(file.project, file.filename)
        redirect = HTTPFound(location=link.url)
        if link.max_age:
            # The same URL until its window ends: client caches (and a CDN) keep the redirect that long.
            redirect.headers["Cache-Control"] = cache_control(request, link.max_age)
        else:
            redirect.cache_control.no_store = True
        return redirect
    body = LazyObjectIter(lambda start, end: app.index.open_file(file, start, end))
    response = Response(app_iter=body, content_type=_content_type(file.filename))
    response.content_length = file.size
    response = _immutable(request, response, file, file.sha256 or file.storage_etag or f"{file.size}", max_age)
    if request.method == "GET" and response.status_int == 200:
        # The bytes webob will send (the whole file, or the one satisfiable range).
        start, end = 0, None
        if request.range and response in request.if_range:
            served = request.range.content_range(file.size)
            if served is None:
                return response  # 416: nothing to open
            start, end = served.start, served.stop - 1
        body.prefetch(start, end)
        if start == 0:
            # A download is a GET from the first byte; resuming a partial one (Range from later on) is not another.
            app.downloads.count(file.project, file.filename)
    elif request.method == "HEAD" and response.status_int in (200, 206):
        # The status GET would answer: 404 when the object is gone, though HEAD sends no bytes.
        app.index.require_stored(file)
    return response
