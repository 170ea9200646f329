"""A filename's lease: an upload and a delete of one filename never interleave, in any process."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from pypicloud_lite.cache.base import Cache
from pypicloud_lite.errors import Conflict
from pypicloud_lite.models import HeldLease, PackageFile, Project

# An upload holds its filename's lease while it writes the object (a large one to S3 takes minutes);
# a lease outlives a process that died holding it by no more than this.
FILE_LEASE_TTL = 900.0
# How long an upload or delete waits for another one of the same filename before answering 409.
FILE_LEASE_WAIT = 30.0


@dataclass
class FileLease:
    """The lease while held, and the rows read when it was taken: the file's, and its project's if asked for."""

    held: HeldLease
    existing: PackageFile | None
    project: Project | None = None
    project_read: bool = False  # whether `project` is the project's row as read (None: it has none), or unread
    ended: bool = False  # set once a change ended it (AddFile, in the row's own transaction on SQL)


@contextmanager
def file_lease(cache: Cache, filename: str, project: str | None = None) -> Iterator[FileLease]:
    """Hold the filename's lease, waiting up to FILE_LEASE_WAIT for another holder (then Conflict).

    Without it a delete that removed the row, racing an identical re-upload that found the object
    still there and indexed it, would then delete that object: an acknowledged upload lost.
    The file's row, and `project`'s row when given, are read as the lease is taken (one transaction on SQL).
    """
    held = HeldLease(f"file:{hashlib.sha256(filename.encode()).hexdigest()[:48]}", uuid.uuid4().hex)
    deadline = time.monotonic() + FILE_LEASE_WAIT
    pause = 0.01
    while True:
        read = cache.lease_file(held, FILE_LEASE_TTL, filename, project)
        if read.taken:
            break
        if time.monotonic() > deadline:
            raise Conflict(f"Another upload or delete of {filename!r} is in progress; try again shortly.")
        time.sleep(pause)
        pause = min(pause * 2, 0.25)
    lease = FileLease(held, read.file, read.project, project_read=project is not None)
    try:
        yield lease
    finally:
        if not lease.ended:
            cache.release_lock(held.name, held.holder, {})
