"""The PyPI JSON API: /pypi/<project>/json and /pypi/<project>/<version>/json."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC
from typing import Any

from packaging.version import InvalidVersion, Version
from pyramid.httpexceptions import HTTPMovedPermanently, HTTPNotModified
from pyramid.request import Request
from pyramid.response import Response
from pyramid.view import view_config

from pypicloud_lite.errors import NotFound
from pypicloud_lite.models import PackageFile, Project, latest_release, releases_of
from pypicloud_lite.naming import normalize
from pypicloud_lite.web.caching import index_cache_control, not_modified
from pypicloud_lite.web.listing import release_metadata
from pypicloud_lite.web.permissions import require_read
from pypicloud_lite.web.services import services


def _file_json(request: Request, file: PackageFile) -> dict[str, Any]:
    digests = {}
    if file.sha256:
        digests["sha256"] = file.sha256
    if file.md5:
        digests["md5"] = file.md5
    if file.blake2_256:
        digests["blake2b_256"] = file.blake2_256
    uploaded = file.upload_time.astimezone(UTC)
    return {
        "filename": file.filename,
        "url": request.route_url("files.download", project=file.project, filename=file.filename),
        "digests": digests,
        "md5_digest": file.md5,
        "size": file.size,
        "upload_time": uploaded.strftime("%Y-%m-%dT%H:%M:%S"),
        "upload_time_iso_8601": uploaded.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "packagetype": file.packagetype,
        "python_version": file.python_version,
        "requires_python": file.requires_python,
        "yanked": file.yanked,
        "yanked_reason": file.yanked_reason,
        "has_sig": False,
    }


def _info(request: Request, project: Project, version: str, files: list[PackageFile]) -> dict[str, Any]:
    meta = release_metadata(files)
    yanked = bool(files) and all(f.yanked for f in files)
    return {
        "name": project.display_name,
        "version": version,
        "summary": meta.summary if meta else next((f.summary for f in files if f.summary), None),
        "requires_python": meta.requires_python if meta else next((f.requires_python for f in files), None),
        "requires_dist": list(meta.requires_dist) if meta and meta.requires_dist else None,
        "author": meta.author if meta else None,
        "author_email": meta.author_email if meta else None,
        "license": meta.license if meta else None,
        "home_page": meta.home_page if meta else None,
        "project_urls": dict(meta.project_urls) if meta and meta.project_urls else None,
        "classifiers": list(meta.classifiers) if meta else [],
        # As PyPI: the text as uploaded (here at most metadata.MAX_DESCRIPTION_BYTES of it), "" when there is none.
        "description": (meta.description or "") if meta else "",
        "description_content_type": meta.description_content_type if meta else None,
        "yanked": yanked,
        "yanked_reason": next((f.yanked_reason for f in files if f.yanked_reason), None) if yanked else None,
        "package_url": request.route_url("simple.detail", project=project.name),
        "project_url": request.route_url("simple.detail", project=project.name),
        "release_url": request.route_url("pypi.release", project=project.name, version=version),
    }


def _readable_name(request: Request) -> str | Response:
    """The project's normalized name once the caller may read it, or the redirect to that spelling."""
    raw = request.matchdict["project"]
    name = normalize(raw)
    if raw != name:
        target = request.matched_route.name
        kw = {**request.matchdict, "project": name}
        return HTTPMovedPermanently(location=request.route_path(target, **kw))
    require_read(request, name)
    return name


def _respond(request: Request, body: Callable[[], bytes], serial: int) -> Response:
    headers = {
        "ETag": f'"{serial}-pypi-json"',
        "X-PyPI-Last-Serial": str(serial),
        "Cache-Control": index_cache_control(request, services(request).settings),
    }
    if not_modified(request, f"{serial}-pypi-json"):
        return HTTPNotModified(headers=headers)
    response = Response(body=body(), content_type="application/json", charset=None)
    response.headers.update(headers)
    return response


def _dumps(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


def _project_document(request: Request, project: Project, files: list[PackageFile]) -> bytes:
    # One entry per release, under the release's own spelling, whatever spellings its files carry.
    releases = releases_of(files)
    latest = latest_release(files)
    current = list(latest.files) if latest else []
    return _dumps(
        {
            "info": _info(request, project, latest.version if latest else "", current),
            "last_serial": project.serial,
            "releases": {r.version: [_file_json(request, f) for f in r.files] for r in releases},
            "urls": [_file_json(request, f) for f in current],
            "vulnerabilities": [],
        }
    )


def _proxied_document(request: Request, name: str) -> dict[str, Any] | None:
    """The upstream's project as a PyPI JSON document, for a name served from upstream (else None)."""
    upstream = services(request).upstream
    if upstream is None or not upstream.proxy.proxied(name):
        return None
    return upstream.pypi_json(name, lambda f: request.route_url("files.download", project=name, filename=f))


def _proxied_response(doc: dict[str, Any]) -> Response:
    response = Response(body=_dumps(doc), content_type="application/json", charset=None)
    response.headers["Cache-Control"] = "no-cache"
    return response


@view_config(route_name="pypi.project", request_method="GET")
def project_json(request: Request) -> Response:
    name = _readable_name(request)
    if isinstance(name, Response):
        return name
    proxied = _proxied_document(request, name)
    if proxied is not None:
        return _proxied_response(proxied)
    # Kept in the page cache by the project's serial, like /simple/<name>/; its links are absolute URLs,
    # so the key names the address they were made for.
    page = services(request).pages.project_document(
        ("pypi-json", name, request.application_url),
        name,
        lambda project, files: _project_document(request, project, files),
    )
    return _respond(request, lambda: page.body, page.serial)


def _proxied_release(doc: dict[str, Any], name: str, requested: str) -> dict[str, Any]:
    try:
        wanted = Version(requested)
    except InvalidVersion as exc:
        raise NotFound(f"No version {requested!r} of project {name!r}.") from exc
    version = next((v for v in doc["releases"] if Version(v) == wanted), None)
    if version is None:
        raise NotFound(f"No version {requested!r} of project {name!r}.")
    files = doc["releases"][version]
    info = {**doc["info"], "version": version, "requires_python": next((f["requires_python"] for f in files), None)}
    info["yanked"] = bool(files) and all(f["yanked"] for f in files)
    return {"info": info, "last_serial": 0, "urls": files, "vulnerabilities": []}


@view_config(route_name="pypi.release", request_method="GET")
def release_json(request: Request) -> Response:
    name = _readable_name(request)
    if isinstance(name, Response):
        return name
    proxied = _proxied_document(request, name)
    if proxied is not None:
        return _proxied_response(_proxied_release(proxied, name, request.matchdict["version"]))
    index = services(request).index
    project = index.get_project(name)
    files = index.offered_files(project)
    requested = request.matchdict["version"]
    try:
        Version(requested)
    except InvalidVersion as exc:
        raise NotFound(f"No version {requested!r} of project {project.name!r}.") from exc
    release = index.release_in(files, project.name, requested)
    if requested not in release.spellings:
        # Only the spellings its files carry are served, as on PyPI: a page under another one (1.000 for 1.0)
        # would be a copy that the CDN purge, which sends the spellings the files carry, never reaches.
        redirect = HTTPMovedPermanently(
            location=request.route_path("pypi.release", project=project.name, version=release.version)
        )
        redirect.headers["Cache-Control"] = index_cache_control(request, services(request).settings)
        return redirect
    matching = list(release.files)
    return _respond(
        request,
        lambda: _dumps(
            {
                "info": _info(request, project, release.version, matching),
                "last_serial": project.serial,
                "urls": [_file_json(request, f) for f in matching],
                "vulnerabilities": [],
            }
        ),
        project.serial,
    )
