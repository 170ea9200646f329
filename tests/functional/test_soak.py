"""A bounded soak against a real server (issue 14): threads mixing uploads, deletes, yanks, reads and admin reloads.

Each worker alone changes its own two projects, so what they must hold at the end is known exactly: a file is
listed iff its last acknowledged operation was an upload (of a delete and an identical re-upload sent at once, the
upload's answer tells which came first), yanked as its release was when it was indexed (a file joining a release
whose files are all yanked is yanked too) or as the release's last acknowledged yank or unyank since, stored, and
served with the hash it is listed with. Every worker also races the others on one shared project, where only what
holds under any interleaving is checked, and the presence of the files whose latest change overlapped no other on them.

PPC_SOAK_SECONDS (default 45) and PPC_SOAK_SEED (default 14) lengthen or vary a run.
"""

from __future__ import annotations

import hashlib
import math
import os
import random
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest
import requests

from pypicloud_lite.naming import INTERNAL_PREFIX, METADATA_SUFFIX, normalize, parse_key, tombstone_key
from tests.support.apiutil import memo_hash
from tests.support.aws import Moto
from tests.support.cache import fresh_database
from tests.support.common import UPLOADER, UPLOADER_PASSWORD
from tests.support.consistency_harness import HTML, REQUEST_TIMEOUT, listed, request, stored_objects, upload
from tests.support.distbuilder import build_sdist, build_wheel
from tests.support.harness import JSON_V1, Server, start_server
from tests.support.legacy import anchors, wheel_metadata
from tests.support.s3_harness import PREFIX, object_keys, read_object, start_s3_server

pytestmark = pytest.mark.soak

SECONDS = float(os.environ.get("PPC_SOAK_SECONDS", "45"))
SEED = int(os.environ.get("PPC_SOAK_SEED", "14"))
# Whichever comes first ends the run: the time budget on a slow machine, this count on a fast one.
MAX_OPS = 6000
WORKERS = 5
RELOADS = 2
RELOAD_TIMEOUT = 120
SHARED = "soak-shared"
SHARED_VERSIONS = ("1.0", "1.1", "1.2")
REASONS = (None, "broken build", 'Bad "quote" <1.0> & ✓')
REDIRECTS = (301, 302, 303, 307, 308)
# A worker's operations and how often it picks each.
WEIGHTS = {
    "upload": 5.0,
    "reupload": 2.0,
    "conflict": 1.0,
    "delete_file": 2.0,
    "delete_version": 0.7,
    "race": 1.0,
    "yank": 1.5,
    "unyank": 1.0,
    "read": 8.0,
    "shared": 3.0,
}

Yanked = bool | str  # as PEP 691 shows it: False, True (no reason) or the reason


@dataclass(frozen=True)
class Target:
    """A running server, what it stores on, and its storage read directly (keys relative to the storage root)."""

    kind: str
    server: Server
    keys: Callable[[], set[str]]
    read: Callable[[str], bytes]


@pytest.fixture(params=["local-sqlite", "s3-postgresql"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    # A cheap argon2 hash for the admin: every change authenticates, and the soak is about the index, not argon2.
    admin = {f"user.{UPLOADER}": memo_hash(UPLOADER_PASSWORD)}
    if request.param == "local-sqlite":
        server = start_server(tmp_path / "server", extra=admin)
        root = server.folder / "packages"
        try:
            yield Target(
                request.param, server, lambda: set(stored_objects(server.folder)), lambda k: (root / k).read_bytes()
            )
        finally:
            server.stop()
        return
    moto: Moto = request.getfixturevalue("moto")
    with fresh_database("postgresql", tmp_path) as url:
        bucket = moto.new_bucket()
        server = start_s3_server(tmp_path / "server", moto, bucket, cache_url=url.replace("%", "%%"), extra=admin)
        try:
            yield Target(
                request.param,
                server,
                lambda: {key.removeprefix(PREFIX) for key in object_keys(moto, bucket)},
                lambda k: read_object(moto, bucket, PREFIX + k),
            )
        finally:
            server.stop()


@dataclass(frozen=True)
class Dist:
    """A built distribution and its bytes."""

    name: str  # as the upload form names the project
    version: str
    path: Path
    data: bytes

    @property
    def project(self) -> str:
        return normalize(self.name)

    @property
    def filename(self) -> str:
        return self.path.name

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def url(self) -> str:
        return f"/packages/{self.project}/{self.filename}"

    @property
    def key(self) -> str:
        return f"{self.project}/{self.filename}"

    @property
    def wheel(self) -> bool:
        return self.filename.endswith(".whl")


def build(dest: Path, name: str, version: str, wheel: bool, summary: str = "A tiny test package") -> Dist:
    if wheel:
        path = build_wheel(dest, name, version, summary=summary)
    else:
        path = build_sdist(dest, name, version, summary=summary)
    return Dist(name, version, path, path.read_bytes())


@dataclass(frozen=True)
class SharedOp:
    """One acknowledged (or possibly applied) change of a shared file, and when it was in flight."""

    filename: str
    start: float
    end: float
    effect: str  # "present", "absent" or "unknown"


def settled(log: list[SharedOp]) -> dict[str, bool]:
    """filename -> whether it must be listed, for the files whose latest change began after every other one ended.

    The index applies each change at one instant while it is in flight, so such a change is the last one applied.
    """
    by_file: dict[str, list[SharedOp]] = {}
    for op in log:
        by_file.setdefault(op.filename, []).append(op)
    found: dict[str, bool] = {}
    for filename, ops in by_file.items():
        last = max(ops, key=lambda op: op.start)
        if last.effect != "unknown" and all(op.end < last.start for op in ops if op is not last):
            found[filename] = last.effect == "present"
    return found


def differences(found: dict[str, Any], wanted: dict[str, Any]) -> str:
    """The files a page lists wrongly: what it shows of each, and what it should."""
    gone = "(not listed)"
    return ", ".join(
        f"{f}: {found.get(f, gone)!r} instead of {wanted.get(f, gone)!r}"
        for f in sorted(found.keys() | wanted.keys())
        if found.get(f, gone) != wanted.get(f, gone)
    )


def race_outcome(deleted: int, uploaded: requests.Response, listed_before: bool | None) -> str:
    """What a delete (answered `deleted`) and an identical re-upload of one file sent at once leave, as SharedOp.effect,
    if nothing else touched the file meanwhile; `listed_before`: whether it was listed before them (None: unknown)."""
    if uploaded.status_code != 200:
        return "absent" if deleted in (200, 404) else "unknown"  # the upload changed nothing
    if deleted == 409:
        return "present"  # the delete changed nothing
    if uploaded.json()["message"] != "OK":
        # It found the file listed: a delete that deleted came after it (one that found nothing is a contradiction).
        return "absent" if deleted == 200 else "unknown"
    # "OK" alone: it found no row and indexed the file. A delete that found nothing came first; one that deleted
    # came first if the file was listed before, and after (deleting the upload's file) if it was not.
    if deleted == 404 or listed_before:
        return "present"
    return "unknown" if listed_before is None else "absent"


@dataclass
class Soak:
    """What every thread shares: the server, every answer, every broken expectation, the shared project's log."""

    target: Target
    folder: Path
    lock: threading.Lock = field(default_factory=threading.Lock)
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    known: dict[str, Dist] = field(default_factory=dict)  # filename -> the bytes acknowledged under it
    shared: list[Dist] = field(default_factory=list)
    shared_log: list[SharedOp] = field(default_factory=list)
    reload_times: list[tuple[float, float]] = field(default_factory=list)  # from the POST to the poll seeing it end
    ops: int = 0
    built: int = 0

    @property
    def server(self) -> Server:
        return self.target.server

    def problem(self, text: str) -> None:
        with self.lock:
            self.problems.append(text)

    def answer(
        self, kind: str, response: requests.Response, expected: Collection[int] | None = None
    ) -> requests.Response:
        """Record the answer; a problem if it is a 5xx or not one of `expected`."""
        status = response.status_code
        with self.lock:
            self.statuses[(kind, status)] += 1
        if status >= 500 or (expected is not None and status not in expected):
            method = response.request.method
            self.problem(
                f"{kind}: {method} {response.url} answered {status}, not {sorted(expected or ())}: "
                f"{response.text[:300]!r}"
            )
        return response

    def call(self, kind: str, method: str, path: str, expected: Collection[int], **kwargs: Any) -> requests.Response:
        return self.answer(kind, request(self.server, method, path, **kwargs), expected)

    def upload(self, kind: str, dist: Dist, expected: Collection[int]) -> requests.Response:
        return self.answer(kind, upload(self.server, dist.path, dist.name, dist.version), expected)

    def fetch(self, kind: str, path: str, expected: Collection[int]) -> requests.Response:
        """GET `path`, following a redirect to storage (S3's presigned URLs) once; both answers recorded."""
        first = request(self.server, "GET", path)
        if first.status_code not in REDIRECTS:
            return self.answer(kind, first, expected)
        self.answer(kind, first)
        with requests.Session() as session:
            session.trust_env = False
            followed = session.get(first.headers["Location"], timeout=REQUEST_TIMEOUT, allow_redirects=False)
        return self.answer(f"{kind} (from storage)", followed, expected)

    def take_op(self) -> bool:
        with self.lock:
            if self.ops >= MAX_OPS:
                return False
            self.ops += 1
            return True

    def dest(self) -> Path:
        """A fresh folder to build one distribution in."""
        with self.lock:
            self.built += 1
            return self.folder / "dists" / str(self.built)

    def acknowledged(self, dist: Dist) -> None:
        with self.lock:
            assert self.known.setdefault(dist.filename, dist) == dist, f"{dist.filename} built twice"

    def any_known(self, rng: random.Random) -> Dist | None:
        with self.lock:
            return rng.choice(list(self.known.values())) if self.known else None

    def log_shared(self, ops: list[SharedOp]) -> None:
        with self.lock:
            self.shared_log.extend(ops)


class Worker:
    """One client thread: the only writer of its own projects (so it knows their state), a racer on SHARED."""

    def __init__(self, soak: Soak, number: int) -> None:
        self.soak = soak
        self.number = number
        self.rng = random.Random(SEED * 1000 + number)
        self.names = [f"Soak_{number}.{letter}" for letter in "ab"]
        self.used: dict[str, Dist] = {}  # every filename of its projects ever acknowledged
        self.present: dict[str, Yanked] = {}  # filename -> its yank, for the files that must be listed
        self.deleted: set[str] = set()  # filenames deleted at least once
        self.next_version: Counter[str] = Counter()
        self.ops: Counter[str] = Counter()
        self.detail: Counter[str] = Counter()  # reads and shared operations by kind
        # Each operation; False if there was nothing to do it on.
        self.actions: dict[str, Callable[[], bool]] = {
            "upload": self.upload_new,
            "reupload": self.reupload,
            "conflict": self.conflict,
            "delete_file": self.delete_file,
            "delete_version": self.delete_version,
            "race": self.race,
            "yank": self.yank,
            "unyank": self.unyank,
            "read": self.read,
            "shared": self.shared,
        }
        # What a read fetches; each is given one of the worker's own projects.
        self.reads: dict[str, Callable[[str], None]] = {
            "index": self.read_index,
            "own json": self.read_own_json,
            "own html": self.read_own_html,
            "own pypi json": self.read_own_pypi_json,
            "any page": self.read_any_page,
            "own file": self.read_own_file,
            "own sidecar": self.read_own_sidecar,
            "any file": self.read_any_file,
        }
        # What it does to a file (or the file's release) of SHARED.
        self.shared_ops: dict[str, Callable[[Dist], None]] = {
            "reupload": self.shared_reupload,
            "conflict": self.shared_conflict,
            "delete file": self.shared_delete_file,
            "race": self.shared_race,
            "delete version": self.shared_delete_version,
            "yank": self.shared_yank,
            "unyank": self.shared_unyank,
        }
        # The second request of a race (its own and the shared project's).
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"soak-{number}-race")

    def run(self, deadline: float) -> None:
        try:
            while time.monotonic() < deadline and self.soak.take_op():
                kind = self.rng.choices(list(WEIGHTS), weights=list(WEIGHTS.values()))[0]
                if not self.actions[kind]():
                    # Nothing of that kind to do yet (no file, no release): upload something instead.
                    kind = "upload"
                    self.upload_new()
                self.ops[kind] += 1
        except Exception:  # reported as a problem of the run, with the traceback
            self.soak.problem(f"worker {self.number} stopped:\n{traceback.format_exc()}")
        finally:
            self.pool.shutdown()

    # -- its own projects ------------------------------------------------------------------

    def versions(self, present: bool) -> list[tuple[str, str]]:
        """(project, version) of its releases that have (or, not `present`, have no) listed files, sorted."""
        all_versions = {(d.project, d.version) for d in self.used.values()}
        with_files = {(self.used[f].project, self.used[f].version) for f in self.present}
        return sorted(with_files if present else all_versions - with_files)

    def files_of(self, project: str, version: str) -> set[str]:
        return {f for f in self.present if (self.used[f].project, self.used[f].version) == (project, version)}

    def joining(self, dist: Dist) -> Yanked:
        """The yank a file indexed anew takes: its release's, when every other listed file of it is yanked (PyPI
        yanks releases, not files), else none."""
        states = [self.present[f] for f in self.files_of(dist.project, dist.version) - {dist.filename}]
        if not states or False in states:
            return False
        return next((state for state in states if isinstance(state, str)), True)

    def upload_new(self) -> bool:
        name = self.rng.choice(self.names)
        kinds = {(d.version, d.wheel) for d in self.used.values() if d.name == name}
        missing = sorted({(v, not w) for v, w in kinds} - kinds)
        if missing and self.rng.random() < 0.4:
            # The other kind of an existing release: if that release is yanked, the new file joins it yanked.
            version, wheel = self.rng.choice(missing)
        else:
            self.next_version[name] += 1
            version, wheel = f"1.{self.next_version[name]}", self.rng.random() < 0.6
        dist = build(self.soak.dest(), name, version, wheel)
        if self.soak.upload("upload", dist, {200}).status_code == 200:
            self.used[dist.filename] = dist
            self.present[dist.filename] = self.joining(dist)
            self.soak.acknowledged(dist)
        return True

    def reupload(self) -> bool:
        if not self.used:
            return False
        dist = self.used[self.rng.choice(sorted(self.used))]
        # The same bytes: accepted, and back if they had been deleted (yanked only if its release is).
        if self.soak.upload("reupload", dist, {200}).status_code == 200 and dist.filename not in self.present:
            self.present[dist.filename] = self.joining(dist)
        return True

    def conflict(self) -> bool:
        if not self.used:
            return False
        dist = self.used[self.rng.choice(sorted(self.used))]
        other = build(self.soak.dest(), dist.name, dist.version, dist.wheel, summary=f"other bytes {self.rng.random()}")
        self.soak.upload("conflict", other, {400})
        return True

    def delete_file(self) -> bool:
        gone = sorted(set(self.used) - set(self.present))
        if self.present and (not gone or self.rng.random() < 0.85):
            filename = self.rng.choice(sorted(self.present))
            expected = 200
        elif gone:
            filename, expected = self.rng.choice(gone), 404
        else:
            return False
        dist = self.used[filename]
        path = f"/api/projects/{dist.project}/files/{filename}"
        if self.soak.call("delete file", "DELETE", path, {expected}, admin=True).status_code == 200:
            del self.present[filename]
            self.deleted.add(filename)
        return True

    def race(self) -> bool:
        """A delete and an identical re-upload of one of its listed files at once; the upload's answer tells
        which the file's lease let in first."""
        if not self.present:
            return False
        dist = self.used[self.rng.choice(sorted(self.present))]
        path = f"/api/projects/{dist.project}/files/{dist.filename}"
        deleting = self.pool.submit(self.soak.call, "race delete", "DELETE", path, {200}, admin=True)
        uploaded = self.soak.upload("race reupload", dist, {200})
        if deleting.result().status_code == 200 and uploaded.status_code == 200:
            self.deleted.add(dist.filename)
            if race_outcome(200, uploaded, listed_before=True) == "present":
                # Indexed again after the delete: a new row, yanked only if the rest of its release is.
                self.present[dist.filename] = self.joining(dist)
            else:
                del self.present[dist.filename]
        return True

    def pick_version(self) -> tuple[str, str, int] | None:
        """A release with listed files (200 expected) most of the time, else one without (404)."""
        with_files, without = self.versions(present=True), self.versions(present=False)
        if with_files and (not without or self.rng.random() < 0.85):
            return (*self.rng.choice(with_files), 200)
        if without:
            return (*self.rng.choice(without), 404)
        return None

    def delete_version(self) -> bool:
        if (picked := self.pick_version()) is None:
            return False
        project, version, expected = picked
        files = self.files_of(project, version)
        response = self.soak.call(
            "delete version", "DELETE", f"/api/projects/{project}/versions/{version}", {expected}, admin=True
        )
        if response.status_code == 200:
            deleted = set(response.json()["deleted"])
            if deleted != files:
                self.soak.problem(f"delete of {project} {version} deleted {sorted(deleted)}, not {sorted(files)}")
            for filename in deleted & files:
                del self.present[filename]
                self.deleted.add(filename)
        return True

    def yank(self, undo: bool = False) -> bool:
        if (picked := self.pick_version()) is None:
            return False
        project, version, expected = picked
        files = self.files_of(project, version)
        path = f"/api/projects/{project}/versions/{version}/yank"
        state: Yanked = False
        if undo:
            response = self.soak.call("unyank", "DELETE", path, {expected}, admin=True)
        else:
            reason = self.rng.choice(REASONS)
            body = {} if reason is None else {"reason": reason}
            response = self.soak.call("yank", "POST", path, {expected}, admin=True, json=body)
            state = reason or True
        if response.status_code == 200:
            if response.json()["files"] != len(files):
                self.soak.problem(f"(un)yank of {project} {version} counted {response.text}, not {len(files)} files")
            for filename in files:
                self.present[filename] = state
        return True

    def unyank(self) -> bool:
        return self.yank(undo=True)

    # -- reads -----------------------------------------------------------------------------

    def listing(self, project: str) -> dict[str, Yanked]:
        """filename -> yank of the files of `project` it must list."""
        return {f: y for f, y in self.present.items() if self.used[f].project == project}

    def read(self) -> bool:
        kind = self.rng.choice(sorted(self.reads))
        self.detail[f"read {kind}"] += 1
        self.reads[kind](normalize(self.rng.choice(self.names)))
        return True

    def started(self, project: str) -> bool:
        """Whether `project` lists a file now: its pages answer 200 then, 404 once its last file is gone."""
        return bool(self.listing(project))

    def read_index(self, _own: str) -> None:
        self.soak.call("read /simple/", "GET", "/simple/", {200}, accept=self.rng.choice((HTML, JSON_V1)))

    def read_own_json(self, own: str) -> None:
        page = self.soak.call(
            "read own page", "GET", f"/simple/{own}/", {200 if self.started(own) else 404}, accept=JSON_V1
        )
        if page.status_code == 200:
            files = {f["filename"]: (f["hashes"].get("sha256"), f["yanked"]) for f in page.json()["files"]}
            wanted = {f: (self.used[f].sha256, y) for f, y in self.listing(own).items()}
            if files != wanted:
                self.soak.problem(f"/simple/{own}/ (JSON), (sha256, yanked): {differences(files, wanted)}")

    def read_own_html(self, own: str) -> None:
        page = self.soak.call(
            "read own page", "GET", f"/simple/{own}/", {200 if self.started(own) else 404}, accept=HTML
        )
        if page.status_code == 200:
            found = {text: attrs.get("data-yanked") for text, attrs in anchors(page.text).items()}
            wanted = {f: None if y is False else "" if y is True else y for f, y in self.listing(own).items()}
            if found != wanted:
                self.soak.problem(f"/simple/{own}/ (HTML), data-yanked: {differences(found, wanted)}")

    def read_own_pypi_json(self, own: str) -> None:
        page = self.soak.call("read /pypi/json", "GET", f"/pypi/{own}/json", {200 if self.started(own) else 404})
        if page.status_code == 200:
            names = {f["filename"] for files in page.json()["releases"].values() for f in files}
            if names != set(self.listing(own)):
                self.soak.problem(f"/pypi/{own}/json lists {sorted(names)}, not {sorted(self.listing(own))}")

    def read_any_page(self, _own: str) -> None:
        other = self.rng.choice([SHARED, *(f"soak-{n}-{x}" for n in range(WORKERS) for x in "ab")])
        self.soak.call("read any page", "GET", f"/simple/{other}/", {200, 404}, accept=self.rng.choice((HTML, JSON_V1)))

    def read_own_file(self, own: str, sidecar: bool = False) -> None:
        files = sorted(f for f, d in self.used.items() if d.project == own and (d.wheel or not sidecar))
        if not files:
            return
        dist = self.used[self.rng.choice(files)]
        expected = {200 if dist.filename in self.present else 404}
        if sidecar:
            response = self.soak.fetch("read own .metadata", dist.url + METADATA_SUFFIX, expected)
            wanted = wheel_metadata(dist.path)
        else:
            response, wanted = self.soak.fetch("download own", dist.url, expected), dist.data
        if response.status_code == 200 and response.content != wanted:
            self.soak.problem(f"{response.url} served other bytes than {dist.filename}'s")

    def read_own_sidecar(self, own: str) -> None:
        self.read_own_file(own, sidecar=True)

    def read_any_file(self, _own: str) -> None:
        dist = self.soak.any_known(self.rng)
        if dist is not None:
            response = self.soak.fetch("download any", dist.url, {200, 404})
            if response.status_code == 200 and response.content != dist.data:
                self.soak.problem(f"{response.url} served other bytes than {dist.filename}'s")

    # -- the shared project ------------------------------------------------------------------

    def shared(self) -> bool:
        kind = self.rng.choice(sorted(self.shared_ops))
        self.detail[f"shared {kind}"] += 1
        self.shared_ops[kind](self.rng.choice(self.soak.shared))
        return True

    def shared_reupload(self, dist: Dist) -> None:
        start = time.monotonic()
        # 409: the file's lease stayed taken by racing deletes and uploads; nothing changed then.
        if self.soak.upload("shared reupload", dist, {200, 409}).status_code == 200:
            self.soak.log_shared([SharedOp(dist.filename, start, time.monotonic(), "present")])

    def shared_conflict(self, dist: Dist) -> None:
        other = build(self.soak.dest(), dist.name, dist.version, dist.wheel, summary=f"other {self.rng.random()}")
        # Listed or deleted, this filename has been used: other bytes are refused whatever races it.
        self.soak.upload("shared conflict", other, {400})

    def shared_delete_file(self, dist: Dist) -> None:
        start = time.monotonic()
        path = f"/api/projects/{SHARED}/files/{dist.filename}"
        if self.soak.call("shared delete file", "DELETE", path, {200, 404, 409}, admin=True).status_code == 200:
            self.soak.log_shared([SharedOp(dist.filename, start, time.monotonic(), "absent")])

    def shared_race(self, dist: Dist) -> None:
        """A delete and an identical re-upload of one file at once: the file's lease orders them."""
        start = time.monotonic()
        path = f"/api/projects/{SHARED}/files/{dist.filename}"
        deleting = self.pool.submit(self.soak.call, "shared race delete", "DELETE", path, {200, 404, 409}, admin=True)
        uploaded = self.soak.upload("shared race reupload", dist, {200, 409})
        outcome = race_outcome(deleting.result().status_code, uploaded, listed_before=None)
        self.soak.log_shared([SharedOp(dist.filename, start, time.monotonic(), outcome)])

    def shared_delete_version(self, dist: Dist) -> None:
        start = time.monotonic()
        path = f"/api/projects/{SHARED}/versions/{dist.version}"
        response = self.soak.call("shared delete version", "DELETE", path, {200, 404, 409}, admin=True)
        end = time.monotonic()
        if response.status_code == 200:
            self.soak.log_shared([SharedOp(f, start, end, "absent") for f in response.json()["deleted"]])
        else:
            # A 404 or 409 may come after some of the release's files went: their state is unknown.
            siblings = [d.filename for d in self.soak.shared if d.version == dist.version]
            self.soak.log_shared([SharedOp(f, start, end, "unknown") for f in siblings])

    def shared_yank(self, dist: Dist, undo: bool = False) -> None:
        path = f"/api/projects/{SHARED}/versions/{dist.version}/yank"
        if undo:
            self.soak.call("shared unyank", "DELETE", path, {200, 404}, admin=True)
        else:
            self.soak.call("shared yank", "POST", path, {200, 404}, admin=True, json={"reason": "shared"})

    def shared_unyank(self, dist: Dist) -> None:
        self.shared_yank(dist, undo=True)


def reload_now(soak: Soak) -> dict[str, Any] | None:
    """POST /admin/reload, then follow GET /admin/reload until it is done; its final progress."""
    began = time.monotonic()
    started = soak.call("admin reload", "POST", "/admin/reload", {202}, admin=True)
    if started.status_code != 202:
        return None
    while time.monotonic() < began + RELOAD_TIMEOUT:
        state = soak.call("admin reload progress", "GET", "/admin/reload", {200}, admin=True)
        if state.status_code == 200 and not state.json()["running"]:
            soak.reload_times.append((began, time.monotonic()))
            progress: dict[str, Any] = state.json()["progress"]
            if progress.get("state") != "done":
                soak.problem(f"a reload during the run ended {progress}")
            return progress
        time.sleep(0.5)
    soak.problem(f"a reload did not finish in {RELOAD_TIMEOUT} s")
    return None


def check_end(soak: Soak, workers: list[Worker]) -> dict[str, dict[str, dict[str, Any]]]:
    """Compare what the server lists, serves and stores with what the run acknowledged; returns the listings."""
    server, problem = soak.server, soak.problem
    projects = sorted({SHARED, *(normalize(name) for w in workers for name in w.names)})
    listings = {project: listed(server, project) for project in projects}
    listed_keys = {f"{p}/{filename}" for p, files in listings.items() for filename in files}
    keys = soak.target.keys()
    for project, files in listings.items():
        for filename, entry in files.items():
            dist = soak.known.get(filename)
            if dist is None:
                problem(f"{project} lists {filename}, which no upload was acknowledged for")
                continue
            if entry["hashes"].get("sha256") != dist.sha256:
                problem(f"{filename} is listed with sha256 {entry['hashes']}, not the uploaded {dist.sha256}")
            url = urljoin(f"/simple/{project}/", entry["url"])
            served = soak.fetch("end: download", url, {200})
            if served.status_code == 200 and hashlib.sha256(served.content).hexdigest() != dist.sha256:
                problem(f"{url} serves other bytes than were uploaded")
            if dist.key not in keys:
                problem(f"{filename} is listed but storage lacks {dist.key}")
            elif soak.target.read(dist.key) != dist.data:
                problem(f"storage holds other bytes than were uploaded under {dist.key}")
            core = entry["core-metadata"]
            if dist.wheel and not core:
                problem(f"{filename} is listed without its core metadata")
            if core:
                sidecar = soak.fetch("end: .metadata", url + METADATA_SUFFIX, {200})
                if hashlib.sha256(sidecar.content).hexdigest() != core["sha256"]:
                    problem(f"{url}{METADATA_SUFFIX} does not hash to the advertised {core['sha256']}")
                if dist.wheel and sidecar.content != wheel_metadata(dist.path):
                    problem(f"{url}{METADATA_SUFFIX} is not the wheel's METADATA")
                if dist.key + METADATA_SUFFIX not in keys:
                    problem(f"storage lacks the sidecar of {filename}")
        page = soak.call("end: HTML page", "GET", f"/simple/{project}/", {200} if files else {404}, accept=HTML)
        in_html = set(anchors(page.text)) if page.status_code == 200 else set()
        if in_html != set(files):
            problem(f"/simple/{project}/ lists {sorted(in_html)} in HTML but {sorted(files)} in JSON")
    for key in sorted(keys):
        if key.startswith(INTERNAL_PREFIX):
            continue
        if key.endswith(METADATA_SUFFIX):
            if key.removesuffix(METADATA_SUFFIX) not in listed_keys:
                problem(f"storage keeps the sidecar {key} of a file not listed")
        elif parse_key(key) is None:
            problem(f"storage holds a stray object {key}")
        elif key not in listed_keys:
            problem(f"storage holds {key}, which is not listed")
    for worker in workers:
        for name in worker.names:
            project = normalize(name)
            found = {f: e["yanked"] for f, e in listings[project].items()}
            if found != worker.listing(project):
                problem(f"/simple/{project}/ at the end, yanked: {differences(found, worker.listing(project))}")
        for filename in sorted(worker.deleted - set(worker.present)):
            dist = worker.used[filename]
            if tombstone_key(dist.project, filename) not in keys:
                problem(f"{filename} was deleted and storage has no record of it")
            soak.fetch("end: download deleted", dist.url, {404})
    for filename, present in sorted(settled(soak.shared_log).items()):
        if (filename in listings[SHARED]) != present:
            changes = sorted((op.start, op.end, op.effect) for op in soak.shared_log if op.filename == filename)[-3:]
            problem(
                f"{SHARED}: {filename} should {'' if present else 'not '}be listed: its last change raced none "
                f"(its last changes: {changes}; reloads ran {soak.reload_times})"
            )
    return listings


def summary(soak: Soak, workers: list[Worker], seconds: float, reloads: list[Any], listings: dict[str, Any]) -> str:
    ops: Counter[str] = Counter()
    detail: Counter[str] = Counter()
    for worker in workers:
        ops.update(worker.ops)
        detail.update(worker.detail)
    statuses = ", ".join(f"{kind} {status}: {n}" for (kind, status), n in sorted(soak.statuses.items()))
    files = [entry for files in listings.values() for entry in files.values()]
    shared = settled(soak.shared_log)
    return "\n".join(
        [
            f"soak [{soak.target.kind}] seed {SEED}: {soak.ops} operations in {seconds:.1f} s by {WORKERS} workers",
            "  operations: " + ", ".join(f"{kind} {n}" for kind, n in sorted(ops.items())),
            "    of which: " + ", ".join(f"{kind} {n}" for kind, n in sorted(detail.items())),
            f"  answers: {statuses}",
            f"  reloads during the run: {reloads}",
            f"  end: {len(files)} files listed ({sum(1 for f in files if f['yanked'])} yanked) in "
            f"{len(listings)} projects; {len(soak.known)} filenames acknowledged; "
            f"{SHARED}: {len(shared)} of {len(soak.shared)} files settled",
        ]
    )


def test_soak_mixed_operations_keep_index_storage_and_pages_consistent(target: Target, tmp_path: Path) -> None:
    soak = Soak(target, tmp_path)
    for number, version in enumerate(SHARED_VERSIONS):
        for wheel in (True, False):
            dist = build(tmp_path / "shared" / f"{number}-{wheel}", SHARED, version, wheel)
            assert soak.upload("shared setup", dist, {200}).status_code == 200, soak.problems
            soak.shared.append(dist)
            soak.acknowledged(dist)
            soak.log_shared([SharedOp(dist.filename, -math.inf, time.monotonic(), "present")])
    workers = [Worker(soak, number) for number in range(WORKERS)]
    began = time.monotonic()
    deadline = began + SECONDS
    threads = [threading.Thread(target=w.run, args=(deadline,), name=f"soak-{w.number}") for w in workers]
    for thread in threads:
        thread.start()
    reloads = []
    for n in range(1, RELOADS + 1):
        # At a third and two thirds of the run, by time or by operations, whichever comes first.
        while (
            time.monotonic() < began + SECONDS * n / (RELOADS + 1)
            and soak.ops < MAX_OPS * n / (RELOADS + 1)
            and any(thread.is_alive() for thread in threads)
        ):
            time.sleep(0.1)
        reloads.append(reload_now(soak))
    for thread in threads:
        thread.join()
    seconds = time.monotonic() - began
    # A reload still running (started by a slow run's last poll) must not race the checks.
    while soak.call("admin reload progress", "GET", "/admin/reload", {200}, admin=True).json()["running"]:
        time.sleep(0.5)
    listings = check_end(soak, workers)
    # Storage and the index agree: a reload now finds nothing to add, change, remove or repair, and lists the same.
    final = soak.call("end: reload", "POST", "/admin/reload?wait=1", {200}, admin=True).json()
    changes = {key: final.get(key) for key in ("state", "added", "changed", "removed", "failed", "repaired")}
    if changes != {"state": "done", "added": 0, "changed": 0, "removed": 0, "failed": 0, "repaired": 0}:
        soak.problem(f"a reload after the run changed the index: {final}")
    after = {project: listed(soak.server, project) for project in listings}
    if after != listings:
        soak.problem("the listings differ after the final reload")
    print(summary(soak, workers, seconds, reloads, listings))
    served_5xx = {key: n for key, n in soak.statuses.items() if key[1] >= 500}
    assert not served_5xx, served_5xx
    assert len(reloads) == RELOADS and None not in reloads, reloads
    assert not soak.problems, f"{len(soak.problems)} problems:\n" + "\n".join(soak.problems[:40])
