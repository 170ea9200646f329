"""Apply S3 object events to the cache: each record is a hint that key K may have changed.

The event says *which* key to look at, never *what* is true: the truth comes from
HeadObject and the file's record and project's state in storage (stored_state.py), and
the cache is made equal to them. An event about a record or a state is a hint about its
file or project. Duplicates, reordering, late deliveries and deletes of non-current
versions therefore change nothing: whichever event comes last reads the final truth.
Pure library code: the Lambda handler (pypicloud_lite/s3_sync_handler.py) only wires it up.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import unquote_plus

from pypicloud_lite.cache.base import Cache
from pypicloud_lite.cdn import is_flush_message
from pypicloud_lite.errors import InvalidInput
from pypicloud_lite.indexing import describe_object, listed_file
from pypicloud_lite.models import AddFile, PackageFile, RemoveFile, ReplaceFile, SyncProject
from pypicloud_lite.naming import parse_key, parse_record_key, parse_sighting_key, parse_state_key, storage_key
from pypicloud_lite.reload_state import as_stored, record_sightings
from pypicloud_lite.storage.base import Storage, StoredObject
from pypicloud_lite.storage.s3 import S3Storage
from pypicloud_lite.stored_state import StateStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Hint:
    """Key K of bucket B may have changed (the event name and sequencer are hints too)."""

    bucket: str
    key: str
    event_name: str
    sequencer: str | None = None


@dataclass(frozen=True)
class Message:
    """One delivery unit: an SQS message (with its id, for batchItemFailures) or the whole event."""

    message_id: str | None
    hints: list[Hint]
    error: str | None = None  # the message could not be read (a poison message)
    cdn_flush: bool = False  # the delayed message of a CDN window (pypicloud_lite.cdn)


# -- decoding every delivery path ------------------------------------------------------


def _from_notification(doc: Any) -> list[Hint]:
    """Hints of an S3 notification document (the `Records` form, or the s3:TestEvent)."""
    if not isinstance(doc, dict):
        raise InvalidInput("not an S3 notification")
    if doc.get("Event") == "s3:TestEvent":
        return []
    if "Records" not in doc:
        raise InvalidInput("an S3 notification without Records")
    hints = []
    for record in doc["Records"]:
        if record.get("eventSource") != "aws:s3":
            raise InvalidInput(f"not an S3 record: {record.get('eventSource')!r}")
        obj = record["s3"]["object"]
        # Keys are form-URL-encoded: a space arrives as '+', a literal '+' as '%2B'.
        hints.append(
            Hint(record["s3"]["bucket"]["name"], unquote_plus(obj["key"]), record["eventName"], obj.get("sequencer"))
        )
    return hints


def _from_eventbridge(event: dict[str, Any]) -> list[Hint]:
    detail = event["detail"]
    raw = detail["object"]["key"]
    name = f"{event['detail-type']}:{detail.get('deletion-type') or detail.get('reason', '')}"
    bucket, sequencer = detail["bucket"]["name"], detail["object"].get("sequencer")
    # Whether EventBridge encodes keys is not something to bet a package on: look at both
    # spellings when they differ; a hint about a key that does not exist changes nothing.
    keys = dict.fromkeys([unquote_plus(raw), raw])
    return [Hint(bucket, key, name, sequencer) for key in keys]


def _from_sns_envelope(message: str) -> list[Hint]:
    return _from_notification(json.loads(message))


def messages(event: dict[str, Any]) -> list[Message]:
    """Every delivery path, unwrapped: S3, SQS, SNS, SNS in SQS, EventBridge."""
    if event.get("source") == "aws.s3" and "detail" in event:
        return [Message(None, _from_eventbridge(event))]
    records = event.get("Records")
    if not isinstance(records, list):
        if event.get("Event") == "s3:TestEvent":
            return [Message(None, [])]
        raise InvalidInput("unrecognised event: no Records, and not an EventBridge S3 event")
    if records and all(r.get("eventSource") == "aws:sqs" for r in records):
        return [_sqs_message(r) for r in records]
    if records and all(r.get("EventSource") == "aws:sns" for r in records):
        return [Message(None, [h for r in records for h in _from_sns_envelope(r["Sns"]["Message"])])]
    return [Message(None, _from_notification(event))]


def _sqs_message(record: dict[str, Any]) -> Message:
    message_id = record.get("messageId")
    try:
        body = json.loads(record["body"])
        if is_flush_message(body):
            return Message(message_id, [], cdn_flush=True)
        if isinstance(body, dict) and body.get("Type") == "Notification" and "Message" in body:
            return Message(message_id, _from_sns_envelope(body["Message"]))
        return Message(message_id, _from_notification(body))
    except (ValueError, KeyError, TypeError, InvalidInput) as exc:
        return Message(message_id, [], error=f"unreadable message: {exc}")


# -- the per-key truth -----------------------------------------------------------------


class SequencerMemory:
    """The newest sequencer applied per key in this process (a warm Lambda container).

    Only an optimisation: a record older than one already applied is skipped without
    a HeadObject. Correctness never depends on it, since every applied record reads the truth.
    """

    def __init__(self, max_keys: int = 50_000) -> None:
        self.max_keys = max_keys
        self._seen: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def _order(sequencer: str) -> str:
        # Sequencers compare as hex strings once padded to equal length.
        return sequencer.upper().rjust(64, "0")

    def is_stale(self, hint: Hint) -> bool:
        if not hint.sequencer:
            return False
        with self._lock:
            seen = self._seen.get((hint.bucket, hint.key))
        return seen is not None and self._order(hint.sequencer) < seen

    def applied(self, hint: Hint) -> None:
        if not hint.sequencer:
            return
        key, order = (hint.bucket, hint.key), self._order(hint.sequencer)
        with self._lock:
            if order > self._seen.get(key, ""):
                self._seen[key] = order
                self._seen.move_to_end(key)
            while len(self._seen) > self.max_keys:
                self._seen.popitem(last=False)


class S3Sync:
    """Makes the cache row of a key equal to what the bucket holds now."""

    def __init__(self, storage: S3Storage, cache: Cache, memory: SequencerMemory | None = None) -> None:
        self.storage = storage
        self.cache = cache
        self.memory = memory or SequencerMemory()
        self.state = StateStore(storage)

    def apply(self, hint: Hint) -> str:
        """One of: applied, unchanged, stale, ignored."""
        if hint.bucket != self.storage.bucket or not hint.key.startswith(self.storage.prefix):
            return "ignored"
        key = hint.key[len(self.storage.prefix) :]
        dist, record, project = parse_key(key), parse_record_key(key), parse_state_key(key)
        sighted = parse_sighting_key(key)
        if dist is None and record is None and project is None and sighted is None:
            return "ignored"  # sidecars, strays, keys outside a project folder
        if self.memory.is_stale(hint):
            return "stale"
        if dist is not None:
            outcome = self._converge(key, dist.filename)
        elif record is not None:
            outcome = self._converge_recorded(*record)
        elif sighted is not None:
            # First sightings of several files, from the origin: each of them is shown as they say now.
            outcomes = [self._converge_recorded(sighted, name) for name in self.state.read_sightings_in(key, sighted)]
            outcome = "applied" if "applied" in outcomes else "unchanged"
        else:
            assert project is not None
            state = self.state.read_project(project)
            outcome = "applied" if state and self.cache.apply(SyncProject(state)).changed else "unchanged"
        self.memory.applied(hint)
        return outcome

    def _converge_recorded(self, project: str, filename: str) -> str:
        row = self.cache.get_file(filename)
        # A record's event (a delete above all) never writes a record back: its file's own event does.
        return self._converge(row.object_key if row else storage_key(project, filename), filename, record_back=False)

    def _converge(self, key: str, filename: str, record_back: bool = True) -> str:
        row = self.cache.get_file(filename)
        if row is not None and row.object_key != key and self.storage.stat(row.object_key) is not None:
            # The same filename under another folder spelling: the indexed object still
            # exists, so an event about this copy decides nothing.
            return "unchanged"
        obj: StoredObject | None = self.storage.stat(key)
        if obj is None:
            # Gone (deleted, or a delete marker is current). A deleted non-current version
            # leaves the current one in place, so HeadObject still finds it: nothing removed.
            removed = row is not None and self.cache.apply(RemoveFile(filename)).changed
            return "applied" if removed else "unchanged"
        dist = parse_key(key)
        assert dist is not None
        state = self.state.read_project(dist.project)
        described = self._describe(key, obj, row, record_back)
        found = as_stored(described, state) if state else described
        if row is None:
            name = state.display_name if state else found.upload_name
            outcome = "applied" if self.cache.apply(AddFile(found, name)).changed else "unchanged"
        elif _same_facts(row, found):
            outcome = "unchanged"
        else:
            self.cache.apply(
                ReplaceFile(found if state else replace(found, yanked=row.yanked, yanked_reason=row.yanked_reason))
            )
            outcome = "applied"
        if state is not None and self.cache.apply(SyncProject(state)).changed:
            outcome = "applied"
        return outcome

    def _describe(self, key: str, obj: StoredObject, row: PackageFile | None, record_back: bool) -> PackageFile:
        """The file under `key` as its record says, else as its row says (same bytes), else as its bytes say."""
        dist = parse_key(key)
        assert dist is not None
        listed = listed_file(dist, obj)
        # Other bytes than the row's: another tool rewrote the object, its record describes the old ones.
        rewritten = row is not None and (row.size != obj.size or row.storage_etag not in (None, obj.etag))
        record = None if rewritten else self.state.read_file(dist.project, dist.filename)
        if record is None and not rewritten:
            record = self.state.read_sightings(dist.project).get(dist.filename)
        if record is not None and record.size == obj.size:
            return replace(record, storage_etag=obj.etag, key=listed.key)
        if row is not None and row.sha256 and not rewritten:
            described = row
        else:
            described = describe_object(self.storage, listed, obj, rewritten=row is not None)
        if row is not None:
            # Its bytes are read again; what the index recorded of its upload (time, uploader) stays.
            described = replace(described, upload_time=row.upload_time, uploader=row.uploader)
        if not record_back:
            return described
        if rewritten:
            self.state.write_file(described)
        else:
            # Placed by another tool (or indexed before records): its facts are fixed from this first sight on.
            record_sightings(self.state, [(described, None)])
        return described


def _same_facts(a: PackageFile, b: PackageFile) -> bool:
    """Whether two rows show the same file: hashes, size, time, uploader, yank, metadata."""
    fields = ("sha256", "size", "upload_time", "uploader", "yanked", "yanked_reason", "metadata_sha256", "storage_etag")
    return all(getattr(a, name) == getattr(b, name) for name in fields)


def storage_for_sync(storage: Storage) -> S3Storage:
    if not isinstance(storage, S3Storage):
        raise InvalidInput("the S3 sync needs storage.backend = s3")
    return storage
