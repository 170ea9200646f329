"""Helpers that talk to the app the way twine and pip do: legacy uploads, page parsing, storage checks."""

from __future__ import annotations

import hashlib
import re
import zipfile
from html.parser import HTMLParser
from pathlib import Path

import webtest

from pypicloud_lite.config import Settings

JSON_V1 = "application/vnd.pypi.simple.v1+json"
HTML_V1 = "application/vnd.pypi.simple.v1+html"
HTML = "text/html; charset=utf-8"
# What pip sends for index pages (pip/_internal/index/collector.py).
PIP_ACCEPT = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01"

Fields = dict[str, str | None]


def all_digests(data: bytes) -> dict[str, str]:
    return {
        "md5_digest": hashlib.md5(data).hexdigest(),
        "sha256_digest": hashlib.sha256(data).hexdigest(),
        "blake2_256_digest": hashlib.blake2b(data, digest_size=32).hexdigest(),
    }


def twine_fields(name: str, version: str, filename: str, data: bytes) -> dict[str, str]:
    """The form fields twine sends with a file (the subset that matters plus a few it always sends)."""
    wheel = filename.endswith(".whl")
    return {
        ":action": "file_upload",
        "protocol_version": "1",
        "name": name,
        "version": version,
        "filetype": "bdist_wheel" if wheel else "sdist",
        "pyversion": "py3" if wheel else "source",
        "metadata_version": "2.1",
        "summary": "A tiny test package",
        **all_digests(data),
    }


def post_upload(
    testapp: webtest.TestApp,
    headers: dict[str, str] | None,
    *,
    filename: str | None,
    data: bytes,
    name: str,
    version: str,
    url: str = "/legacy/",
    status: int | str = 200,
    overrides: Fields | None = None,
    extra: list[tuple[str, str]] | None = None,
) -> webtest.TestResponse:
    """POST a multipart legacy upload; `overrides` replaces fields (None drops one), `extra` appends some.

    With filename None the `content` file part is left out (the body is still multipart).
    """
    fields: Fields = {**twine_fields(name, version, filename or "x", data), **(overrides or {})}
    params = [(key, value) for key, value in fields.items() if value is not None] + (extra or [])
    files = [("content", filename, data)] if filename is not None else []
    return testapp.post(
        url,
        params=params,
        upload_files=files,
        content_type="multipart/form-data",
        headers=headers or {},
        status=status,
        expect_errors=True,
    )


def upload_dist(
    testapp: webtest.TestApp,
    headers: dict[str, str],
    path: Path,
    name: str,
    version: str,
    **kwargs: object,
) -> webtest.TestResponse:
    """Upload a built wheel or sdist under its own filename."""
    return post_upload(
        testapp,
        headers,
        filename=path.name,
        data=path.read_bytes(),
        name=name,
        version=version,
        **kwargs,  # type: ignore[arg-type]
    )


def wheel_metadata(path: Path) -> bytes:
    """The raw .dist-info/METADATA bytes inside a wheel."""
    with zipfile.ZipFile(path) as zf:
        (member,) = [n for n in zf.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", n)]
        return zf.read(member)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def stored_files(settings: Settings) -> list[Path]:
    """Every file in the local storage folder and the upload spool (temporary files included)."""
    folders = [settings.storage.dir, settings.upload.spool_dir]
    return sorted(
        p for folder in folders if folder is not None and folder.exists() for p in folder.rglob("*") if p.is_file()
    )


class _Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.anchors: list[tuple[dict[str, str | None], str]] = []
        self._open: dict[str, str | None] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._open = dict(attrs)
            self.anchors.append((self._open, ""))

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            attrs, text = self.anchors[-1]
            self.anchors[-1] = (attrs, text + data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a":
            self._open = None


def anchors(html: str) -> dict[str, dict[str, str | None]]:
    """Link text -> the anchor's (unescaped) attributes, as pip's HTML parser sees them."""
    parser = _Anchors()
    parser.feed(html)
    return {text: attrs for attrs, text in parser.anchors}
