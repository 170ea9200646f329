"""Rendering of the simple repository API pages (PEP 503 HTML, API 1.1; PEP 691 JSON, API 1.5).

Links are relative to the page, so a rendered page does not depend on the host
it was requested through and can be cached by serial alone.
"""

from __future__ import annotations

import json
from datetime import UTC
from html import escape
from urllib.parse import quote

from pypicloud_lite.models import PackageFile, Project, releases_of

API_VERSION = "1.1"
# PEP 792 project status needs api-version 1.4; pages that carry it say so.
STATUS_API_VERSION = "1.4"
# PEP 752 (namespaces) changes only the JSON API, to 1.5; every JSON page says so, whether or not it has
# a namespace: the version is how clients learn that the index supports the PEP (PEP 833 keeps HTML apart).
JSON_API_VERSION = "1.5"

# PEP 752's project-detail `namespaces`: None, or [{"name": ..., "owned": ...}] per namespace covering it.
NamespacesField = list[dict[str, object]] | None


def _api_version(project: Project) -> str:
    return STATUS_API_VERSION if project.status != "active" else API_VERSION


def _iso(file: PackageFile) -> str:
    return file.upload_time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def segment(text: str) -> str:
    # Percent-encoded, so no name can end the path early (`#`, `?`, `/`) or break the markup; the
    # files view gets the name back because Pyramid decodes path segments. `+` (local versions) and
    # `!` (epochs) stay readable, as in the CDN purge paths.
    return quote(text, safe="+!")


def _file_href(file: PackageFile) -> str:
    # From /simple/<project>/ up to the site root, then the stable files URL.
    return f"../../packages/{segment(file.project)}/{segment(file.filename)}"


def _sorted_files(files: list[PackageFile]) -> list[PackageFile]:
    return sorted(files, key=lambda f: (f.parsed_version, f.filename))


def versions(files: list[PackageFile]) -> list[str]:
    """PEP 700's list: one entry per release (1.0 and 1.0.0 are one), as the release spells itself."""
    return [release.version for release in releases_of(files)]


def index_html(projects: list[Project]) -> bytes:
    links = "\n".join(f'    <a href="{escape(segment(p.name))}/">{escape(p.display_name)}</a><br />' for p in projects)
    return (
        "<!DOCTYPE html>\n<html>\n  <head>\n"
        f'    <meta name="pypi:repository-version" content="{API_VERSION}">\n'
        "    <title>Simple index</title>\n  </head>\n  <body>\n"
        f"{links}\n  </body>\n</html>\n"
    ).encode()


def index_json(projects: list[Project], serial: int) -> bytes:
    doc = {
        "meta": {"api-version": JSON_API_VERSION, "_last-serial": serial},
        "projects": [{"name": p.display_name, "_last-serial": p.serial} for p in projects],
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def _anchor(file: PackageFile) -> str:
    fragment = f"#sha256={file.sha256}" if file.sha256 else ""
    attrs = [f'href="{escape(_file_href(file))}{fragment}"']
    if file.requires_python:
        attrs.append(f'data-requires-python="{escape(file.requires_python)}"')
    if file.metadata_sha256:
        # PEP 714 renamed the attribute; older pips only read the PEP 658 name.
        attrs.append(f'data-core-metadata="sha256={file.metadata_sha256}"')
        attrs.append(f'data-dist-info-metadata="sha256={file.metadata_sha256}"')
    if file.yanked:
        attrs.append(f'data-yanked="{escape(file.yanked_reason or "")}"')
    return f"    <a {' '.join(attrs)}>{escape(file.filename)}</a><br />"


def _status_meta(project: Project) -> str:
    if project.status == "active":
        return ""
    meta = f'    <meta name="pypi:project-status" content="{escape(project.status)}">\n'
    if project.status_reason:
        meta += f'    <meta name="pypi:project-status-reason" content="{escape(project.status_reason)}">\n'
    return meta


def project_html(project: Project, files: list[PackageFile]) -> bytes:
    title = escape(f"Links for {project.display_name}")
    anchors = "\n".join(_anchor(f) for f in _sorted_files(files))
    return (
        "<!DOCTYPE html>\n<html>\n  <head>\n"
        f'    <meta name="pypi:repository-version" content="{_api_version(project)}">\n'
        f"{_status_meta(project)}"
        f"    <title>{title}</title>\n  </head>\n  <body>\n"
        f"    <h1>{title}</h1>\n{anchors}\n  </body>\n</html>\n"
    ).encode()


def _file_json(file: PackageFile) -> dict[str, object]:
    yanked: bool | str = (file.yanked_reason or True) if file.yanked else False
    return {
        "filename": file.filename,
        "url": _file_href(file),
        "hashes": {"sha256": file.sha256} if file.sha256 else {},
        "requires-python": file.requires_python,
        "core-metadata": {"sha256": file.metadata_sha256} if file.metadata_sha256 else False,
        "yanked": yanked,
        "size": file.size,
        "upload-time": _iso(file),
    }


def project_json(project: Project, files: list[PackageFile], namespaces: NamespacesField = None) -> bytes:
    doc: dict[str, object] = {
        "meta": {"api-version": JSON_API_VERSION, "_last-serial": project.serial},
        "name": project.name,
        "versions": versions(files),
        "files": [_file_json(f) for f in _sorted_files(files)],
        "namespaces": namespaces,
    }
    if project.status != "active":
        status: dict[str, str] = {"status": project.status}
        if project.status_reason:
            status["reason"] = project.status_reason
        doc["project-status"] = status
    return json.dumps(doc, separators=(",", ":")).encode()
