"""Storage holds the whole truth: a replica region fed only by the S3 sync, and a cache rebuilt by a reload, show
every page exactly as the server that made the changes does (yanks, statuses, reasons, uploaders, upload times)."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import webtest

from pypicloud_lite.models import canonical_version
from pypicloud_lite.naming import normalize
from tests.support.apiutil import BOB, build_app, close_app, creds, static_users
from tests.support.aws import Moto
from tests.support.common import UPLOADER, UPLOADER_PASSWORD, basic_auth
from tests.support.consistency_harness import SharedCache, shared_cache
from tests.support.handler_env import PREFIX, create_bucket, deliver_shuffled, destroy_bucket, handler_env
from tests.support.index_driver import IndexDriver
from tests.support.replication import Replication
from tests.support.served_pages import Pages, differences, served_pages
from tests.support.settings import server_settings

OPERATIONS = 40
DELIVER_EVERY = 10  # operations between two deliveries of region B's events
# Display names spelled unlike their normalized names, and versions spelled two ways (1.0 and 1.0.0 are one release).
PROJECTS = ("Alpha.Lib", "beta_tool", "Gamma-Pkg")
VERSIONS = ("1.0", "1.0.0", "1.1", "2.0", "2.0.0", "3.0rc1")
KINDS = ("wheel", "sdist")
STATUSES = ("active", "active", "deprecated", "deprecated", "archived", "quarantined")
REASONS = (None, "Broken build: use 1.1", 'CVE-2026-0001 <"quoted"> ✓', "superseded")
ADMIN = basic_auth(UPLOADER, UPLOADER_PASSWORD)


@dataclass
class Workload:
    """A seeded random sequence of changes made to one server through its HTTP routes; what it left stored."""

    driver: IndexDriver
    rng: random.Random
    files: dict[str, tuple[str, str]] = field(default_factory=dict)  # filename -> (project, version) in the index
    used: set[str] = field(default_factory=set)  # every filename ever uploaded (a deleted one never comes back)
    log: list[str] = field(default_factory=list)

    def step(self) -> None:
        choices = [self.upload] * 5
        if self.files:
            choices += [self.yank] * 3 + [self.unyank, self.status, self.status, self.delete_file, self.delete_release]
        self.rng.choice(choices)()

    def _release(self) -> tuple[str, str] | None:
        """A project of the index and one of its versions, spelled any way that names the release."""
        if not self.files:
            return None
        project, version = self.files[self.rng.choice(sorted(self.files))]
        spellings = [v for v in VERSIONS if canonical_version(v) == canonical_version(version)]
        return project, self.rng.choice(spellings)

    def upload(self) -> None:
        name, version, kind = self.rng.choice(PROJECTS), self.rng.choice(VERSIONS), self.rng.choice(KINDS)
        path = self.driver.build(name, version, kind, summary=f"{name} {version}")
        if path.name in self.used:
            return
        user = self.rng.choice([ADMIN, creds(BOB)])
        status = self.driver.upload(path, name, version, user)
        self.log.append(f"upload {path.name} -> {status}")
        if status == 200:
            self.used.add(path.name)
            self.files[path.name] = (normalize(name), version)

    def yank(self) -> None:
        if (found := self._release()) is not None:
            reason = self.rng.choice(REASONS)
            self.log.append(f"yank {found} {reason!r} -> {self.driver.yank(*found, reason=reason)}")

    def unyank(self) -> None:
        if (found := self._release()) is not None:
            self.log.append(f"unyank {found} -> {self.driver.unyank(*found)}")

    def status(self) -> None:
        project = self.rng.choice(sorted({project for project, _version in self.files.values()}))
        # Mostly statuses that still take uploads: an archived or quarantined project refuses them.
        status = self.rng.choice(STATUSES)
        reason = self.rng.choice(REASONS) if status != "active" else None
        self.log.append(f"status {project} {status} {reason!r} -> {self.driver.set_status(project, status, reason)}")

    def delete_file(self) -> None:
        filename = self.rng.choice(sorted(self.files))
        project, _version = self.files[filename]
        status = self.driver.delete_file(project, filename)
        self.log.append(f"delete {filename} -> {status}")
        if status == 200:
            del self.files[filename]

    def delete_release(self) -> None:
        found = self._release()
        assert found is not None
        status = self.driver.delete_release(*found)
        self.log.append(f"delete release {found} -> {status}")
        if status == 200:
            for filename, (project, version) in list(self.files.items()):
                if project == found[0] and canonical_version(version) == canonical_version(found[1]):
                    del self.files[filename]


def s3_server(root: Path, moto: Moto, bucket: str, cache: SharedCache) -> webtest.TestApp:
    """A server over `bucket` and `cache`; the uploader and bob are admins."""
    root.mkdir(parents=True, exist_ok=True)
    overrides: dict[str, str | None] = {
        "storage.dir": None,
        "cache.url": None,
        "cache.migrate_on_start": None,
        **moto.s3_settings(bucket, PREFIX),
        **cache.settings,
        **static_users(BOB),
        "auth.admins": f"{UPLOADER},{BOB}",
    }
    return build_app(server_settings(root, overrides))


@contextmanager
def app_of(root: Path, moto: Moto, bucket: str, cache: SharedCache) -> Iterator[webtest.TestApp]:
    testapp = s3_server(root, moto, bucket, cache)
    try:
        yield testapp
    finally:
        close_app(testapp)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "mariadb", "dynamo"])
def test_replica_and_rebuilt_cache_show_every_page_as_the_origin_does(
    backend: str, moto: Moto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    buckets = [f"ppc-{uuid.uuid4().hex[:12]}" for _ in range(2)]
    for name in buckets:
        create_bucket(moto, name, versioned=True)  # replication needs versioning on both sides
    bucket_a, bucket_b = buckets
    for n in "abr":
        (tmp_path / f"cache-{n}").mkdir()
    with ExitStack() as stack:
        stack.callback(lambda: [destroy_bucket(moto, name) for name in buckets])
        caches = [stack.enter_context(shared_cache(backend, tmp_path / f"cache-{n}", lambda: moto)) for n in "abr"]
        cache_a, cache_b, cache_rebuilt = caches
        rng = random.Random(f"region-truth-{backend}")
        replication = Replication(moto, bucket_a, bucket_b)
        names = {normalize(p) for p in PROJECTS}

        # Region A: the server takes every change; S3 replicates each to bucket B, whose events go (duplicated,
        # shuffled, some rounds late) to region B's sync handler, the only writer of region B's cache.
        with app_of(tmp_path / "a", moto, bucket_a, cache_a) as origin:
            workload = Workload(IndexDriver(origin, ADMIN, tmp_path / "dists"), rng)
            handler_settings: dict[str, Any] = {**moto.s3_settings(bucket_b, PREFIX), **cache_b.settings}
            with handler_env(monkeypatch, handler_settings) as module:
                for n in range(OPERATIONS):
                    workload.step()
                    replication.run()
                    if n % DELIVER_EVERY == DELIVER_EVERY - 1:
                        deliver_shuffled(module, replication.take(), rng, duplicates=1.0)
                deliver_shuffled(module, replication.take(), rng, duplicates=1.0)
            expected = served_pages(origin, ADMIN, names)

        assert any(status == 200 for status, _ in expected.values()), "the workload left nothing to compare"
        with app_of(tmp_path / "b", moto, bucket_b, cache_b) as replica:
            replica_pages: Pages = served_pages(replica, ADMIN, names)
        with app_of(tmp_path / "r", moto, bucket_a, cache_rebuilt) as rebuilt:
            IndexDriver(rebuilt, ADMIN, tmp_path / "unused").reload()
            rebuilt_pages: Pages = served_pages(rebuilt, ADMIN, names)
        replica_differs = differences(expected, replica_pages)
        rebuilt_differs = differences(expected, rebuilt_pages)
        assert not replica_differs and not rebuilt_differs, (
            "pages differ from region A's server after:\n"
            + "\n".join(workload.log)
            + f"\n\nregion B (bucket B, its cache fed only by the sync handler): {replica_differs or 'the same'}"
            + f"\n\nbucket A, an empty cache rebuilt by POST /admin/reload: {rebuilt_differs or 'the same'}"
        )
