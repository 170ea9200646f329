"""What a stored object says about itself: the index row of a file found in storage.

Shared by the reload and the S3 sync: name, version and filename come from the key,
size and time from the listing or HeadObject, and the rest from the object's
SHA-256 checksum and metadata sidecar, or by reading the object once when another
tool wrote it without them.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

from pypicloud_lite.errors import InvalidUpload, NotFound
from pypicloud_lite.metadata import parse_core_metadata, read_metadata_file
from pypicloud_lite.models import PackageFile
from pypicloud_lite.naming import DistFilename, parse_filename, storage_key
from pypicloud_lite.storage.base import Storage, StoredObject

logger = logging.getLogger(__name__)

CHUNK = 1024 * 1024
# Objects up to this size are read into memory to be hashed and have their metadata read; larger ones
# are spooled to a temporary file (creating one cost more than the whole read of a small object).
IN_MEMORY_MAX = 4 * 1024 * 1024


def listed_file(dist: DistFilename, obj: StoredObject) -> PackageFile:
    """What the key and the listing tell about a file, before anything reads it."""
    return PackageFile.of(
        dist,
        size=obj.size,
        sha256=None,
        upload_time=obj.last_modified,
        storage_etag=obj.etag,
        key=None if obj.key == storage_key(dist.project, dist.filename) else obj.key,
    )


class Description(NamedTuple):
    file: PackageFile
    # The core metadata's bytes (None: none readable), which `metadata_sha256` hashes for a wheel.
    raw_metadata: bytes | None


def describe_object(
    storage: Storage,
    listed: PackageFile,
    obj: StoredObject,
    *,
    rewritten: bool = False,
    sidecar_exists: bool | None = None,
) -> PackageFile:
    """`listed` with its sha256 and core metadata filled in, its sidecar written; NotFound if the object went away.

    `rewritten`: the object's bytes changed since it was indexed, so its sidecar describes
    old bytes. `sidecar_exists`: known from a listing (None: try to read it).
    """
    return read_description(storage, listed, obj, rewritten=rewritten, sidecar_exists=sidecar_exists).file


def read_description(
    storage: Storage,
    listed: PackageFile,
    obj: StoredObject,
    *,
    rewritten: bool = False,
    sidecar_exists: bool | None = None,
    write_sidecar: bool = True,
) -> Description:
    """describe_object, with the metadata's bytes; `write_sidecar=False` leaves a missing sidecar missing
    (the reload keeps a wheel's metadata in its file record instead: one new object per file, not two)."""
    key, sidecar = listed.object_key, listed.sidecar_key
    dist = parse_filename(listed.filename)
    raw_metadata: bytes | None = None
    # Only wheels have a PEP 658 sidecar: an sdist's metadata is read from its bytes, then kept in its record.
    if listed.packagetype == "bdist_wheel" and sidecar_exists is not False and not rewritten:
        try:
            with storage.open(sidecar) as fh:
                raw_metadata = fh.read()
        except NotFound:
            raw_metadata = None
    sha256 = obj.sha256
    if sha256 is None or raw_metadata is None:
        # Read anyway: then the bytes themselves say what their metadata is (a sidecar
        # left by an earlier object under this key would describe other bytes).
        known, (sha256, raw_metadata) = raw_metadata, _read_once(storage, key, dist, size=obj.size)
        if write_sidecar and raw_metadata not in (None, known) and dist.packagetype == "bdist_wheel":
            storage.put_bytes(sidecar, raw_metadata)
    metadata = None
    if raw_metadata:
        try:
            metadata = parse_core_metadata(raw_metadata, dist)
        except InvalidUpload as exc:
            # The bytes are what they are: index their hash, without metadata that contradicts the name.
            logger.warning("%s has metadata that does not match it: %s", key, exc.message)
            raw_metadata = None
    found = replace(listed, sha256=obj.sha256 or sha256, size=obj.size, storage_etag=obj.etag or listed.storage_etag)
    return Description(found.described(raw_metadata or None, metadata), raw_metadata or None)


def _read_once(storage: Storage, key: str, dist: DistFilename, *, size: int) -> tuple[str, bytes | None]:
    """Read the object once: its sha256 and its metadata."""
    data = b""
    if size <= IN_MEMORY_MAX:
        with storage.open(key) as fh:
            # The listed size and one byte more (more only if it grew): a read of IN_MEMORY_MAX would allocate,
            # and give back, 4 MiB for each small file, which costs more than reading it.
            data = fh.read(size + 1)
            if len(data) > size:
                data += fh.read(IN_MEMORY_MAX + 1 - len(data))
    if data and len(data) <= IN_MEMORY_MAX:
        sha256, raw_metadata = hashlib.sha256(data).hexdigest(), _metadata(key, data, dist)
    else:  # large, or grown since it was listed
        digest = hashlib.sha256()
        with tempfile.NamedTemporaryFile(prefix="ppc-index-", suffix=".part") as tmp:
            with storage.open(key) as fh:
                while chunk := fh.read(CHUNK):
                    digest.update(chunk)
                    tmp.write(chunk)
            tmp.flush()
            sha256, raw_metadata = digest.hexdigest(), _metadata(key, Path(tmp.name), dist)
    return sha256, raw_metadata


def _metadata(key: str, source: Path | bytes, dist: DistFilename) -> bytes | None:
    try:
        return read_metadata_file(source, dist)
    except InvalidUpload as exc:
        logger.warning("%s has no readable metadata: %s", key, exc.message)
        return None
