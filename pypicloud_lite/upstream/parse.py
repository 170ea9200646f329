"""Upstream project pages read into files: PEP 691 JSON and PEP 503 HTML (PEP 592, 658/714, 700 fields)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any
from urllib.parse import unquote, urldefrag, urljoin

from pypicloud_lite.errors import InvalidInput, InvalidUpload
from pypicloud_lite.naming import parse_filename

_SHA256 = re.compile(r"^[0-9a-f]{64}\Z")


@dataclass(frozen=True)
class UpstreamFile:
    """One file an upstream page lists; `url` is absolute, None fields are what the page did not say."""

    filename: str
    url: str
    sha256: str | None
    requires_python: str | None = None
    yanked: bool = False
    yanked_reason: str | None = None
    upload_time: datetime | None = None
    size: int | None = None
    # PEP 658/714: the upstream serves `<url>.metadata`; its sha256 when the page gives one.
    has_metadata: bool = False
    metadata_sha256: str | None = None


@dataclass(frozen=True)
class UpstreamPage:
    """An upstream's listing of one project, only of files whose names are distributions of it."""

    name: str
    files: tuple[UpstreamFile, ...]


def _sha256(hashes: Any) -> str | None:
    value = hashes.get("sha256") if isinstance(hashes, dict) else None
    return value.lower() if isinstance(value, str) and _SHA256.match(value.lower()) else None


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _metadata(value: Any) -> tuple[bool, str | None]:
    if value is True:
        return True, None
    if isinstance(value, dict):
        return True, _sha256(value)
    return False, None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _belongs(filename: str, project: str) -> bool:
    # A page that lists another project's files (or junk) must not put them under this name.
    try:
        return parse_filename(filename).project == project
    except InvalidUpload:
        return False


def parse_json(body: bytes, base_url: str, project: str) -> UpstreamPage:
    """A PEP 691 project page; InvalidInput when it is not one."""
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise InvalidInput("the upstream page is not JSON") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("files"), list):
        raise InvalidInput("the upstream page is not a PEP 691 project page")
    files = []
    for entry in doc["files"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("filename"), str):
            continue
        if not isinstance(entry.get("url"), str) or not _belongs(entry["filename"], project):
            continue
        yanked = entry.get("yanked", False)
        has_metadata, metadata_sha256 = _metadata(entry.get("core-metadata", entry.get("dist-info-metadata")))
        size = entry.get("size")
        files.append(
            UpstreamFile(
                filename=entry["filename"],
                url=urldefrag(urljoin(base_url, entry["url"])).url,
                sha256=_sha256(entry.get("hashes")),
                requires_python=_text(entry.get("requires-python")),
                yanked=bool(yanked),
                yanked_reason=_text(yanked),
                upload_time=_time(entry.get("upload-time")),
                size=size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None,
                has_metadata=has_metadata,
                metadata_sha256=metadata_sha256,
            )
        )
    name = doc.get("name")
    return UpstreamPage(name if isinstance(name, str) and name else project, tuple(files))


class _Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.anchors: list[tuple[dict[str, str | None], str]] = []
        self._open: dict[str, str | None] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._open, self._text = dict(attrs), []

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._open is not None:
            self.anchors.append((self._open, "".join(self._text).strip()))
            self._open = None


def _html_metadata(value: str | None) -> tuple[bool, str | None]:
    if value is None or value.lower() == "false":
        return False, None
    algorithm, _, digest = value.partition("=")
    return True, digest.lower() if algorithm == "sha256" and _SHA256.match(digest.lower()) else None


def parse_html(body: bytes, base_url: str, project: str) -> UpstreamPage:
    """A PEP 503 project page (with the attributes of PEPs 592, 658 and 714)."""
    parser = _Anchors()
    parser.feed(body.decode("utf-8", "replace"))
    parser.close()
    files = []
    for attrs, text in parser.anchors:
        href = attrs.get("href")
        if not href:
            continue
        url, fragment = urldefrag(urljoin(base_url, href))
        filename = unquote(url.rsplit("/", 1)[-1]) or text
        if not _belongs(filename, project):
            continue
        algorithm, _, digest = fragment.partition("=")
        has_metadata, metadata_sha256 = _html_metadata(
            attrs.get("data-core-metadata", attrs.get("data-dist-info-metadata"))
        )
        yanked = attrs.get("data-yanked")
        files.append(
            UpstreamFile(
                filename=filename,
                url=url,
                sha256=digest.lower() if algorithm == "sha256" and _SHA256.match(digest.lower()) else None,
                requires_python=attrs.get("data-requires-python") or None,
                yanked="data-yanked" in attrs,
                yanked_reason=yanked or None,
                has_metadata=has_metadata,
                metadata_sha256=metadata_sha256,
            )
        )
    return UpstreamPage(project, tuple(files))
