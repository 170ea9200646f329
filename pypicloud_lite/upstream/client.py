"""HTTP to upstream indexes (stdlib http.client): bounded time and size, credentials only to the index's host."""

from __future__ import annotations

import hashlib
import http.client
import logging
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO
from urllib.parse import quote, urljoin, urlsplit

from pypicloud_lite.errors import ConfigError, InvalidInput, PypicloudLiteError
from pypicloud_lite.metrics import UPSTREAM_FETCHES
from pypicloud_lite.upstream.credentials import UpstreamCredentials
from pypicloud_lite.upstream.parse import UpstreamPage, parse_html, parse_json
from pypicloud_lite.upstream_settings import UpstreamIndex

logger = logging.getLogger(__name__)

ACCEPT = "application/vnd.pypi.simple.v1+json, text/html;q=0.1"
JSON_TYPE = "application/vnd.pypi.simple.v1+json"
MAX_REDIRECTS = 5
CHUNK = 1024 * 1024
USER_AGENT = "pypicloud_lite-upstream"
# For callers that keep no credentials of their own (the proxy keeps its own, with its settings' max age).
DEFAULT_CREDENTIALS = UpstreamCredentials()


class UpstreamError(PypicloudLiteError):
    """An upstream did not answer usefully (unreachable, timed out, 5xx, oversized or unreadable)."""


class UpstreamFileTooLarge(UpstreamError):
    """An upstream file is larger than this index takes (`upload.max_size`): asking again changes nothing."""


@dataclass(frozen=True)
class Fetched:
    page: UpstreamPage
    etag: str | None


@dataclass(frozen=True)
class NotModified:
    """304: the page held is still the upstream's."""


@dataclass(frozen=True)
class Missing:
    """404 (or 410): this upstream does not have the name."""


Answer = Fetched | NotModified | Missing


def _auth(index: UpstreamIndex, url: str, credentials: UpstreamCredentials) -> dict[str, str]:
    # Credentials go to the index's own host only, never to a files host it links to.
    if urlsplit(url).netloc != urlsplit(index.url).netloc:
        return {}
    try:
        value = credentials.authorization(index)
    except ConfigError as exc:
        raise UpstreamError(f"upstream {index.name}: no credentials: {exc.message}") from exc
    return {"Authorization": value} if value else {}


def _connection(scheme: str, host: str, port: int | None, timeout: float) -> http.client.HTTPConnection:
    if scheme == "https":
        return http.client.HTTPSConnection(host, port, timeout=timeout, context=ssl.create_default_context())
    return http.client.HTTPConnection(host, port, timeout=timeout)


@contextmanager
def request(
    index: UpstreamIndex, url: str, headers: dict[str, str], credentials: UpstreamCredentials | None = None
) -> Iterator[http.client.HTTPResponse]:
    """GET `url`, following redirects; the response is open inside the block. UpstreamError on failure.

    A 401 or 403 to credentials read from secrets has them read again and the request made once more (a rotated
    password or token); the second answer stands.
    """
    credentials = credentials or DEFAULT_CREDENTIALS
    retried = False
    for _ in range(MAX_REDIRECTS + 2):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UpstreamError(f"upstream {index.name}: cannot follow {parts.scheme}: URL")
        conn = _connection(parts.scheme, parts.hostname, parts.port, index.connect_timeout)
        try:
            target = parts.path or "/"
            if parts.query:
                target += f"?{parts.query}"
            auth = _auth(index, url, credentials)
            try:
                conn.connect()
                assert conn.sock is not None
                conn.sock.settimeout(index.read_timeout)
                conn.request("GET", target, headers={"User-Agent": USER_AGENT, **headers, **auth})
                response = conn.getresponse()
            except (OSError, http.client.HTTPException) as exc:
                UPSTREAM_FETCHES.labels(index.name, "error").inc()
                raise UpstreamError(f"upstream {index.name} did not answer: {exc.__class__.__name__}") from exc
            UPSTREAM_FETCHES.labels(index.name, str(response.status)).inc()
            if response.status in (401, 403) and auth and not retried and credentials.refetch(index, response.status):
                retried = True
                response.close()
                continue
            if response.status in (301, 302, 303, 307, 308) and response.getheader("Location"):
                url = urljoin(url, response.getheader("Location", ""))
                response.close()
                continue
            yield response
            return
        finally:
            conn.close()
    raise UpstreamError(f"upstream {index.name}: too many redirects")


def read_bounded(index: UpstreamIndex, response: http.client.HTTPResponse, limit: int) -> bytes:
    try:
        body = response.read(limit + 1)
    except (OSError, http.client.HTTPException) as exc:
        raise UpstreamError(f"upstream {index.name} broke off its answer: {exc.__class__.__name__}") from exc
    if len(body) > limit:
        raise UpstreamError(f"upstream {index.name} answered more than {limit} bytes")
    return body


def fetch_page(
    index: UpstreamIndex,
    project: str,
    etag: str | None,
    max_size: int,
    *,
    credentials: UpstreamCredentials | None = None,
) -> Answer:
    """The upstream's `/simple/<project>/` (PEP 691 JSON preferred, HTML understood)."""
    url = urljoin(index.url, f"{quote(project)}/")
    headers = {"Accept": ACCEPT}
    if etag:
        headers["If-None-Match"] = etag
    with request(index, url, headers, credentials) as response:
        if response.status == 304 and etag:
            return NotModified()
        if response.status in (404, 410):
            return Missing()
        if response.status != 200:
            raise UpstreamError(f"upstream {index.name} answered {response.status} for {project!r}")
        body = read_bounded(index, response, max_size)
        content_type = (response.getheader("Content-Type") or "").split(";")[0].strip().lower()
        try:
            if content_type in (JSON_TYPE, "application/vnd.pypi.simple.latest+json", "application/json"):
                page = parse_json(body, url, project)
            else:
                page = parse_html(body, url, project)
        except InvalidInput as exc:
            raise UpstreamError(f"upstream {index.name}: {exc.message}") from exc
        return Fetched(page, response.getheader("ETag"))


def fetch_bytes(
    index: UpstreamIndex, url: str, limit: int, sha256: str | None, *, credentials: UpstreamCredentials | None = None
) -> bytes:
    """A small file (PEP 658 metadata), checked against the hash the page gave."""
    with request(index, url, {}, credentials) as response:
        if response.status != 200:
            raise UpstreamError(f"upstream {index.name} answered {response.status} for a metadata file")
        body = read_bounded(index, response, limit)
    if sha256 is not None and hashlib.sha256(body).hexdigest() != sha256:
        raise UpstreamError(f"upstream {index.name}: a metadata file does not match its sha256")
    return body


def download(
    index: UpstreamIndex,
    url: str,
    dest: BinaryIO,
    limit: int,
    sha256: str,
    *,
    credentials: UpstreamCredentials | None = None,
    expected_size: int | None = None,
) -> int:
    """Copy a file into `dest`, refusing more than `limit` bytes (at once when its page's size says so) or other
    bytes than `sha256` names."""
    digest = hashlib.sha256()
    size = 0
    if expected_size is not None and expected_size > limit:
        raise UpstreamFileTooLarge(_too_large(index, limit))
    with request(index, url, {}, credentials) as response:
        if response.status != 200:
            raise UpstreamError(f"upstream {index.name} answered {response.status} for a file")
        try:
            while chunk := response.read(CHUNK):
                size += len(chunk)
                if size > limit:
                    raise UpstreamFileTooLarge(_too_large(index, limit))
                digest.update(chunk)
                dest.write(chunk)
        except (OSError, http.client.HTTPException) as exc:
            raise UpstreamError(f"upstream {index.name} broke off a file: {exc.__class__.__name__}") from exc
    if digest.hexdigest() != sha256:
        raise UpstreamError(f"upstream {index.name}: a file does not match the sha256 its page gives")
    return size


def _too_large(index: UpstreamIndex, limit: int) -> str:
    return f"upstream {index.name}: the file is larger than upload.max_size ({limit} bytes), so it is not cached here"
