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
from typing import IO, TYPE_CHECKING, BinaryIO

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

    @property
    def synced(self) -> bool:
        """Whether the file was fsync'd in the background (presync): true once check_synced() has passed."""
        return self.presync is not None

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


class SpoolWriter:
    """An upload's bytes as they arrive, written to a temporary file and hashed; the size limit enforced on each write.

    `spool_dir` is made when missing (on the first write: a body without a file creates nothing). `presync`: start
    the file's fsync in the background once it is complete, for a storage that makes the spool file the object
    itself (its own fsync then finds nothing left to write): the disk works while the upload's metadata is read
    and checked. Use it as a context manager: the file is removed when it ends, whatever happened.
    """

    def __init__(self, limit: int, spool_dir: Path | None, presync: bool = False) -> None:
        self.limit, self.spool_dir, self.presync = limit, spool_dir, presync
        self.size = 0
        self._hashers: dict[str, _Hash | hashlib.blake2b] = {
            "md5": hashlib.md5(usedforsecurity=False),
            "sha256": hashlib.sha256(),
            "blake2_256": hashlib.blake2b(digest_size=32),
        }
        self._tmp: IO[bytes] | None = None
        self._synced: Future[None] | None = None

    def __enter__(self) -> SpoolWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write(self, chunk: bytes | memoryview) -> None:
        self.size += len(chunk)
        if self.size > self.limit:
            raise too_large(self.limit)
        for hasher in self._hashers.values():
            hasher.update(chunk)
        self._file().write(chunk)

    def _file(self) -> IO[bytes]:
        if self._tmp is None:
            try:
                self._tmp = self._new_file()
            except FileNotFoundError:
                if self.spool_dir is None:
                    raise
                # Made when missing, not before every upload: a mkdir costs about as much as the file here.
                self.spool_dir.mkdir(parents=True, exist_ok=True)
                self._tmp = self._new_file()
        return self._tmp

    def _new_file(self) -> IO[bytes]:
        # Closed (and so removed) by close().
        return tempfile.NamedTemporaryFile(dir=self.spool_dir, prefix=SPOOL_PREFIX, suffix=SPOOL_SUFFIX)

    def finish(self) -> Spooled:
        """The complete upload (InvalidUpload if it is empty); its fsync started in the background with `presync`."""
        if self.size == 0:
            raise InvalidUpload("Invalid distribution file: the uploaded file is empty.")
        tmp = self._file()
        tmp.flush()
        if self.presync and self._synced is None:
            self._synced = _SYNCS.submit(os.fsync, tmp.fileno())
        digests = {name: hasher.hexdigest() for name, hasher in self._hashers.items()}
        return Spooled(Path(tmp.name), self.size, **digests, presync=self._synced)

    def close(self) -> None:
        if self._synced is not None:
            # Done before the descriptor closes; a failure is the storage write's to report (it syncs again).
            wait([self._synced])
        if self._tmp is not None:
            self._tmp.close()


@contextmanager
def spool(content: BinaryIO, writer: SpoolWriter) -> Iterator[Spooled]:
    """Copy the upload to `writer`'s file while hashing it, enforcing the size limit; the file goes at the end.

    Call `check_synced()` on what it yields before storing it.
    """
    with writer:
        while chunk := content.read(CHUNK):
            writer.write(chunk)
        yield writer.finish()


# What an upload's bytes come as: a stream, or a file a SpoolWriter already received.
Received = BinaryIO | Spooled


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
