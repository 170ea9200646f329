"""Pages of names served from an upstream index: simple HTML/JSON and PyPI JSON, linked through our own URLs."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from html import escape
from typing import Any

from packaging.version import InvalidVersion, Version

from pypicloud_lite.errors import InvalidUpload, NotFound, UpstreamUnavailable
from pypicloud_lite.models import PackageFile, Project
from pypicloud_lite.naming import parse_filename
from pypicloud_lite.upstream.parse import UpstreamFile
from pypicloud_lite.upstream.proxy import Listing, UpstreamProxy
from pypicloud_lite.web import simple_pages
from pypicloud_lite.web.page_cache import Page, PageCache
from pypicloud_lite.web.simple_pages import API_VERSION, segment

# Said of a page shown from a held copy while the upstream fails (RFC 9111's Warning 110 is obsolete
# but still what tools print; the X- header is for scripts).
STALE_HEADERS = (("X-PPC-Upstream", "stale"), ("Warning", '110 - "Response is Stale"'))
FRESH_HEADERS = (("X-PPC-Upstream", "fresh"),)
# A project cached from upstream that every upstream now answers 404 for.
GONE_HEADERS = (("X-PPC-Upstream", "gone"),)


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _href(project: str, file: UpstreamFile) -> str:
    return f"../../packages/{segment(project)}/{segment(file.filename)}"


def _version(file: UpstreamFile) -> Version | None:
    try:
        return parse_filename(file.filename).version
    except InvalidUpload:
        return None


def _sorted(files: list[UpstreamFile]) -> list[UpstreamFile]:
    return sorted(files, key=lambda f: (_version(f) or Version("0"), f.filename))


def _versions(files: list[UpstreamFile]) -> list[str]:
    found: dict[Version, str] = {}
    for file in files:
        version = _version(file)
        if version is not None:
            found.setdefault(version, str(version))
    return [found[v] for v in sorted(found)]


def _metadata_attr(file: UpstreamFile) -> str | None:
    if not file.has_metadata:
        return None
    return f"sha256={file.metadata_sha256}" if file.metadata_sha256 else "true"


def project_html(project: str, display_name: str, files: list[UpstreamFile]) -> bytes:
    anchors = []
    for file in _sorted(files):
        fragment = f"#sha256={file.sha256}" if file.sha256 else ""
        attrs = [f'href="{escape(_href(project, file))}{fragment}"']
        if file.requires_python:
            attrs.append(f'data-requires-python="{escape(file.requires_python)}"')
        metadata = _metadata_attr(file)
        if metadata:
            attrs.append(f'data-core-metadata="{metadata}"')
            attrs.append(f'data-dist-info-metadata="{metadata}"')
        if file.yanked:
            attrs.append(f'data-yanked="{escape(file.yanked_reason or "")}"')
        anchors.append(f"    <a {' '.join(attrs)}>{escape(file.filename)}</a><br />")
    title = escape(f"Links for {display_name}")
    return (
        "<!DOCTYPE html>\n<html>\n  <head>\n"
        f'    <meta name="pypi:repository-version" content="{API_VERSION}">\n'
        f"    <title>{title}</title>\n  </head>\n  <body>\n"
        f"    <h1>{title}</h1>\n" + "\n".join(anchors) + "\n  </body>\n</html>\n"
    ).encode()


def _file_json(project: str, file: UpstreamFile, sized: bool) -> dict[str, Any]:
    metadata: bool | dict[str, str] = file.has_metadata
    if file.metadata_sha256:
        metadata = {"sha256": file.metadata_sha256}
    doc: dict[str, Any] = {
        "filename": file.filename,
        "url": _href(project, file),
        "hashes": {"sha256": file.sha256} if file.sha256 else {},
        "requires-python": file.requires_python,
        "core-metadata": metadata,
        "dist-info-metadata": metadata,
        "yanked": (file.yanked_reason or True) if file.yanked else False,
    }
    if sized:
        doc["size"] = file.size
    if file.upload_time is not None:
        doc["upload-time"] = _iso(file.upload_time)
    return doc


def project_json(project: str, files: list[UpstreamFile]) -> bytes:
    # API 1.1 makes `size` mandatory: an HTML upstream gives none, and a page without it says 1.0.
    sized = all(file.size is not None for file in files)
    doc: dict[str, Any] = {
        "meta": {"api-version": API_VERSION if sized else "1.0"},
        "name": project,
        "files": [_file_json(project, f, sized) for f in _sorted(files)],
    }
    if sized:
        doc["versions"] = _versions(files)
    return json.dumps(doc, separators=(",", ":")).encode()


class UpstreamPages:
    """Renders proxied pages once per fetched listing; falls back to the cached files when the upstream fails."""

    def __init__(self, proxy: UpstreamProxy, pages: PageCache) -> None:
        self.proxy = proxy
        self.pages = pages

    def project_page(self, name: str, kind: str) -> Page:
        """`/simple/<name>/`: this index's page for its own names, the upstream's listing for the others."""
        if not self.proxy.proxied(name):
            return self.pages.project_page(name, kind)
        try:
            listing = self.proxy.listing(name)
        except (UpstreamUnavailable, NotFound) as exc:
            if self.pages.index.find_project(name) is None:
                raise
            # Unreachable and never fetched by this process, or gone upstream: the files cached from it,
            # which stay installable (lock files name them), said to be all this index has.
            headers = STALE_HEADERS if isinstance(exc, UpstreamUnavailable) else GONE_HEADERS
            page, ttl = self._cached_files_page(name, kind), int(self.proxy.settings.page_ttl)
            return self.pages.kept(
                ("upstream-held", name, kind, page.etag, headers[0][1]),
                lambda: Page(page.body, f"{page.etag}-{headers[0][1]}", page.serial, page.checked_at, headers, ttl),
            )
        return self._render(name, kind, listing)

    def _cached_files_page(self, name: str, kind: str) -> Page:
        """This index's page of the files cached from upstream, without those the cooldown holds back now."""
        bucket = self.proxy.cooldown_for(name).bucket()

        def render(project: Project, files: list[PackageFile]) -> bytes:
            shown = [file for file in files if self.proxy.cached_refusal(file) is None]
            return (
                simple_pages.project_json(project, shown)
                if kind == "json"
                else simple_pages.project_html(project, shown)
            )

        return self.pages.project_document(("upstream-cached", name, kind, bucket), name, render, tag=bucket)

    def _render(self, name: str, kind: str, listing: Listing) -> Page:
        # Kept in the page cache's LRU by the listing's version and the cooldown's time bucket: a new fetch or
        # bucket makes a new key, the old one ages out.
        freshness = "stale" if listing.stale else "fresh"
        key = ("upstream", name, kind, str(listing.version), freshness, self.proxy.cooldown_for(name).bucket())
        return self.pages.kept(key, lambda: self._page(name, kind, listing))

    def _page(self, name: str, kind: str, listing: Listing) -> Page:
        files = self.proxy.visible_files(listing)
        body = project_json(name, files) if kind == "json" else project_html(name, listing.page.name, files)
        etag = "u" + hashlib.sha256(body).hexdigest()[:24]
        headers = STALE_HEADERS if listing.stale else FRESH_HEADERS
        return Page(body, etag, 0, 0, extra_headers=headers, shared_max_age=int(self.proxy.settings.page_ttl))

    def pypi_json(self, name: str, file_url: Any) -> dict[str, Any]:
        """A minimal PyPI JSON document (`file_url(filename)` makes a file's absolute URL)."""
        listing = self.proxy.listing(name)
        files = _sorted(self.proxy.visible_files(listing))
        releases: dict[str, list[dict[str, Any]]] = {v: [] for v in _versions(files)}
        for file in files:
            version = _version(file)
            if version is None:
                continue
            uploaded = file.upload_time.astimezone(UTC) if file.upload_time else None
            releases[str(version)].append(
                {
                    "filename": file.filename,
                    "url": file_url(file.filename),
                    "digests": {"sha256": file.sha256} if file.sha256 else {},
                    "size": file.size,
                    "upload_time": uploaded.strftime("%Y-%m-%dT%H:%M:%S") if uploaded else None,
                    "upload_time_iso_8601": _iso(uploaded) if uploaded else None,
                    "packagetype": "bdist_wheel" if file.filename.endswith(".whl") else "sdist",
                    "requires_python": file.requires_python,
                    "yanked": file.yanked,
                    "yanked_reason": file.yanked_reason,
                }
            )
        latest = _latest(releases)
        return {
            "info": {
                "name": listing.page.name,
                "version": latest,
                "requires_python": next((f["requires_python"] for f in releases.get(latest, [])), None),
                "yanked": False,
            },
            "last_serial": 0,
            "releases": releases,
            "urls": releases.get(latest, []),
            "vulnerabilities": [],
        }


def _latest(releases: dict[str, list[dict[str, Any]]]) -> str:
    # The newest release that is not a pre-release and not wholly yanked, as PyPI's `info.version` picks.
    candidates = []
    for version, files in releases.items():
        try:
            parsed = Version(version)
        except InvalidVersion:
            continue
        if files and not all(f["yanked"] for f in files):
            candidates.append((not parsed.is_prerelease, parsed, version))
    return max(candidates)[2] if candidates else ""
