"""Receiving an upload's bytes: spooled to a temporary file under the size limit, hashed as they arrive, checked
against the digests the client sent."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import tempfile
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from pypicloud_lite.errors import BackendUnavailable, InvalidUpload, UploadTooLarge

if TYPE_CHECKING:
    from hashlib import _Hash

CHUNK = 1024 * 1024
# The background fsyncs of presync (the GIL is released while the disk works).
_SYNCS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="ppc-spool-sync")
# Upload spool files: `upload.spool_dir`, or the system's temporary folder.
SPOOL_PREFIX, SPOOL_SUFFIX = "ppc-upload-", ".part"
_DIGEST_LENGTH = {"md5": 32, "sha256": 64, "blake2_256": 64}
_HEX_DIGEST = {name: re.compile(f"^[0-9a-f]{{{length}}}\\Z") for name, length in _DIGEST_LENGTH.items()}


@dataclass(frozen=True)
class Spooled:
    path: Path
    size: int
    md5: str
    sha256: str
    blake2_256: str
    presync: Future[None] | None = dataclass_field(default=None, compare=False)

    def check_synced(self) -> None:
        """Wait for the background fsync (presync); its failure is the upload's.

        Only the first fsync after a write-back error reports it (Linux): a later one on a new descriptor
        would succeed over lost bytes, so the background one's outcome must not go unread.
        """
        if self.presync is None:
            return
        try:
            self.presync.result()
        except OSError as exc:
            raise BackendUnavailable(f"Cannot write the upload to disk: {exc.strerror}") from exc


def too_large(limit: int) -> UploadTooLarge:
    return UploadTooLarge(f"File too large. Limit for this index is {limit} bytes ({limit / 1_000_000:.1f} MB).")


@contextmanager
def spool(content: BinaryIO, limit: int, spool_dir: Path | None, presync: bool = False) -> Iterator[Spooled]:
    """Copy the upload to a temporary file while hashing it, enforcing the size limit.

    `presync`: start the file's fsync in the background as soon as it is complete, for a storage that
    makes the spool file the object itself (its own fsync then finds nothing left to write): the disk
    works while the upload's metadata is read and checked. Call `check_synced()` before storing it.
    """
    if spool_dir is not None:
        spool_dir.mkdir(parents=True, exist_ok=True)
    hashers: dict[str, _Hash | hashlib.blake2b] = {
        "md5": hashlib.md5(usedforsecurity=False),
        "sha256": hashlib.sha256(),
        "blake2_256": hashlib.blake2b(digest_size=32),
    }
    size = 0
    with tempfile.NamedTemporaryFile(dir=spool_dir, prefix=SPOOL_PREFIX, suffix=SPOOL_SUFFIX) as tmp:
        while chunk := content.read(CHUNK):
            size += len(chunk)
            if size > limit:
                raise too_large(limit)
            for hasher in hashers.values():
                hasher.update(chunk)
            tmp.write(chunk)
        tmp.flush()
        if size == 0:
            raise InvalidUpload("Invalid distribution file: the uploaded file is empty.")
        synced = _SYNCS.submit(os.fsync, tmp.fileno()) if presync else None
        try:
            yield Spooled(Path(tmp.name), size, **{k: h.hexdigest() for k, h in hashers.items()}, presync=synced)
        finally:
            if synced is not None:
                # Done before the descriptor closes; a failure is the storage write's to report (it syncs again).
                wait([synced])


def check_digests(spooled: Spooled, md5: str | None, sha256: str | None, blake2_256: str | None) -> None:
    """Every digest the client gave must match the bytes received; at least one must be given."""
    fields = {"md5": md5, "sha256": sha256, "blake2_256": blake2_256}
    given = {k: v.strip().lower() for k, v in fields.items() if v is not None and v.strip()}
    if not given:
        raise InvalidUpload("Include at least one message digest (md5_digest, sha256_digest or blake2_256_digest).")
    for field, digest in given.items():
        if not _HEX_DIGEST[field].match(digest):
            raise InvalidUpload(f"Invalid {field}_digest: expected {_DIGEST_LENGTH[field]} hexadecimal characters.")
        if not hmac.compare_digest(digest, getattr(spooled, field)):
            raise InvalidUpload(
                f"The digest supplied does not match a digest calculated from the uploaded file ({field})."
            )
