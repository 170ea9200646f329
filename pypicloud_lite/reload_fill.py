"""The reload's fill, on the reading side: read each object a reload listed bare, and record what it says.

Runs in the reload's threads, or (a large fill of local storage) in a niced process of its own. Files
another tool placed are recorded as first sightings, one object per batch of one project's files
(stored_state.py): a fill of 20,000 files writes about one object per project, not one per file.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace

from pypicloud_lite.errors import NotFound, PypicloudLiteError
from pypicloud_lite.indexing import read_description
from pypicloud_lite.models import PackageFile, ProjectState
from pypicloud_lite.reload_state import record_rewritten, record_sightings
from pypicloud_lite.storage.base import Storage, StoredObject
from pypicloud_lite.stored_state import StateStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ToRead:
    listed: PackageFile
    # Its bytes changed since indexed: its sidecar and record describe old bytes.
    rewritten: bool
    sidecar_listed: bool
    # Without a sidecar the object is read anyway, and the listing has said its size and ETag: a HEAD
    # (one more request per file on S3) would only add a checksum.
    trust_listing: bool
    # The first-uploaded file of a project this reload creates: its metadata names the project.
    names_project: bool = False


@dataclass(frozen=True)
class Read:
    listed: PackageFile
    filled: PackageFile | None = None
    gone: bool = False
    error: str | None = None
    # Whether storage took its record (a first sighting, or the record of rewritten bytes) already.
    recorded: bool = False
    # Whether storage took the state of the new project this file names.
    named: bool = False


def fill_tasks(batches: list[list[ToRead]], files: int) -> list[list[list[ToRead]]]:
    """Whole batches, grouped into tasks of at least `files` files each (the last one: what is left)."""
    tasks: list[list[list[ToRead]]] = []
    count = files
    for batch in batches:
        if count >= files:
            tasks.append([])
            count = 0
        tasks[-1].append(batch)
        count += len(batch)
    return tasks


def read_and_record(storage: Storage, batches: list[list[ToRead]], sightings: bool) -> list[tuple[Read, bytes | None]]:
    """Read each object; record rewritten bytes in a record of their own, and (`sightings`) the new files of each
    batch as one object of first sightings, and the state of each new project a file names. Each read comes with
    the core metadata to record, when it is not yet."""
    store, done = StateStore(storage), list[tuple[Read, bytes | None]]()
    for batch in batches:
        reads = [read_one(storage, todo) for todo in batch]
        new = [
            (read.filled, raw)
            for (read, raw), todo in zip(reads, batch, strict=True)
            if read.filled and not todo.rewritten
        ]
        # Their facts go to storage as they are read: from now on their upload times never change.
        sighted = sightings and bool(new) and record_sightings(store, new)
        for (read, raw_metadata), todo in zip(reads, batch, strict=True):
            if read.filled is None:
                done.append((read, None))
            elif todo.rewritten:
                done.append((replace(read, recorded=record_rewritten(store, read.filled, raw_metadata)), None))
            else:
                named = sighted and todo.names_project and name_project(store, read.filled)
                done.append((replace(read, recorded=sighted, named=named), None if sighted else raw_metadata))
    return done


def name_project(store: StateStore, file: PackageFile) -> bool:
    """Create the state of the new project `file` names, as the reload names it (create-only, no read first)."""
    try:
        store.create_project(ProjectState(file.project, file.upload_name))
    except PypicloudLiteError as exc:
        logger.warning("could not record the state of %s: %s", file.project, exc.message)
        return False
    return True


def read_one(storage: Storage, read: ToRead) -> tuple[Read, bytes | None]:
    listed = read.listed
    try:
        if read.trust_listing and listed.storage_etag:
            obj: StoredObject | None = StoredObject(
                listed.object_key, listed.size, listed.upload_time, etag=listed.storage_etag
            )
        else:
            obj = storage.stat(listed.object_key)
        if obj is None:
            return Read(listed, gone=True), None
        # A new file gets no sidecar: its record keeps the metadata, which the metadata view reads from there.
        # A rewritten object's sidecar (if any) describes the old bytes: it is written again.
        filled, raw_metadata = read_description(
            storage,
            listed,
            obj,
            rewritten=read.rewritten,
            sidecar_exists=read.sidecar_listed,
            write_sidecar=read.rewritten,
        )
    except NotFound:
        return Read(listed, gone=True), None
    except PypicloudLiteError as exc:
        return Read(listed, error=exc.message), None
    return Read(listed, filled), raw_metadata


# The niceness of a fill's reader processes: background work, they take the CPU the server's request threads leave.
FILL_NICE = 19


def lower_priority() -> None:
    os.nice(FILL_NICE)
