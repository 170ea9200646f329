"""Upstream pages kept in storage (`_ppc/upstream/pages/<name>.json`), so every server process uses one fetch.

The copy is the parsed page with the upstream's name and ETag: a process that did not fetch it reads it
instead of asking the upstream, revalidates it with its ETag, and serves it stale when the upstream fails.
It is a cache, not part of the index: reload and the S3 sync skip it, and deleting it costs one fetch.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from pypicloud_lite.errors import NotFound, PypicloudLiteError
from pypicloud_lite.naming import INTERNAL_PREFIX
from pypicloud_lite.storage.base import Storage
from pypicloud_lite.upstream.parse import UpstreamFile, UpstreamPage
from pypicloud_lite.upstream_settings import UpstreamIndex

logger = logging.getLogger(__name__)

PAGES_PREFIX = f"{INTERNAL_PREFIX}upstream/pages/"


@dataclass(frozen=True)
class StoredPage:
    page: UpstreamPage
    index: UpstreamIndex
    etag: str | None
    # The sha256 of the stored bytes, by which a fetch's lease names the copy it left (None: not stored).
    digest: str | None


def page_key(name: str) -> str:
    return f"{PAGES_PREFIX}{name}.json"


def dump_page(page: UpstreamPage, index: UpstreamIndex, etag: str | None) -> bytes:
    files = [{**asdict(f), "upload_time": f.upload_time.isoformat() if f.upload_time else None} for f in page.files]
    doc = {"index": index.name, "etag": etag, "name": page.name, "files": files}
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def _load(data: bytes, indexes: tuple[UpstreamIndex, ...]) -> StoredPage | None:
    doc: dict[str, Any] = json.loads(data)
    index = next((i for i in indexes if i.name == doc["index"]), None)
    if index is None or index.mode == "off":
        return None  # that upstream is no longer asked: its page is not served either
    files = tuple(
        UpstreamFile(**{**f, "upload_time": datetime.fromisoformat(f["upload_time"]) if f["upload_time"] else None})
        for f in doc["files"]
    )
    etag = doc["etag"] if isinstance(doc["etag"], str) else None
    return StoredPage(UpstreamPage(str(doc["name"]), files), index, etag, hashlib.sha256(data).hexdigest())


def read_page(storage: Storage, name: str, indexes: tuple[UpstreamIndex, ...], limit: int) -> StoredPage | None:
    """The stored copy of a name's page, or None when there is none usable (absent, unreadable, its upstream gone)."""
    try:
        found = storage.read_versioned(page_key(name), limit)
    except NotFound:
        return None  # larger than any page the proxy takes: not one it wrote
    except PypicloudLiteError as exc:
        logger.warning("stored upstream page of %s unreadable: %s", name, exc)
        return None
    if found is None:
        return None
    try:
        return _load(found.data, indexes)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        logger.warning("stored upstream page of %s is not one: %s", name, exc)
        return None


def write_page(storage: Storage, name: str, data: bytes) -> bool:
    """Store a page's copy; False (logged) when storage refused, the page then serving this process alone."""
    try:
        storage.put_bytes(page_key(name), data)
    except PypicloudLiteError as exc:
        logger.warning("could not store the upstream page of %s: %s", name, exc)
        return False
    return True


def forget_page(storage: Storage, name: str) -> None:
    """Remove a page's copy (its name is gone upstream).

    A failure is logged: the copy then lingers, served (stale) only while the upstreams fail.
    """
    try:
        storage.delete(page_key(name))
    except PypicloudLiteError as exc:
        logger.warning("could not remove the stored upstream page of %s: %s", name, exc)
