"""The CDN outbox and flush on every cache backend, against CloudFront on moto."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from pypicloud_lite.cache.base import Cache
from pypicloud_lite.cache.dynamo import DynamoCache
from pypicloud_lite.cdn import FLUSH_LEASE, FLUSH_LOCK, WINDOW_LOCK, CdnError, CdnFlusher, CloudFrontPurger, FlushResult
from pypicloud_lite.config import CLOUDFRONT_MAX_PATHS, CLOUDFRONT_MAX_WILDCARDS
from pypicloud_lite.models import AddFile, CdnBatch, ReloadChanges, RemoveFile, SetStatus, SetYanked
from tests.support.aws import Moto
from tests.support.cdn import (
    OUTBOX_BACKENDS,
    cdn_settings,
    create_distribution,
    invalidations,
    open_cache,
    outbox_database,
    purger,
    wait_window_closed,
    wheel,
)

RELEASE_PATHS = ["/simple/", "/simple/demo/", "/pypi/demo/json", "/pypi/demo/1.0/json"]
PLATFORMS = [f"cp3{minor}-cp3{minor}-{arch}" for minor in range(8, 13) for arch in ("linux_x86_64", "win_amd64")]


@pytest.fixture(params=OUTBOX_BACKENDS)
def raw(request: pytest.FixtureRequest, moto: Moto, tmp_path: Path) -> Iterator[dict[str, str]]:
    with outbox_database(request.param, moto, tmp_path) as settings:
        yield settings


@pytest.fixture
def distribution(moto: Moto) -> str:
    return create_distribution(moto)


@pytest.fixture
def cache(raw: dict[str, str], distribution: str) -> Iterator[Cache]:
    built = open_cache(raw, distribution)
    yield built
    built.close()


class Windows:
    """Counts the windows a flusher opened (where the Lambda would send its delayed message)."""

    def __init__(self) -> None:
        self.opened = 0

    def __call__(self) -> None:
        self.opened += 1


def flusher_for(cache: Cache, moto: Moto, distribution: str, **settings: Any) -> tuple[CdnFlusher, Windows]:
    windows = Windows()
    flusher = CdnFlusher(cache, purger(moto, distribution), cdn_settings(moto, distribution, **settings), windows)
    flusher.attach()
    return flusher, windows


def test_a_release_of_40_files_is_one_invalidation(cache: Cache, moto: Moto, distribution: str) -> None:
    # Long enough for 40 uploads on a busy machine (about 2 s on DynamoDB on moto); the test then waits for it to close.
    flusher, windows = flusher_for(cache, moto, distribution, window=8)
    files = [wheel("demo", "1.0", f"{platform}{n}") for platform in PLATFORMS for n in range(4)]
    assert len(files) == 40
    for file in files:
        assert cache.apply(AddFile(file, "Demo")).changed
        # Inside the window nothing is sent: later changes join the pending batch.
        assert flusher.flush() == FlushResult("window-open")
    assert windows.opened == 1  # only the first change of the window claimed it
    assert invalidations(moto, distribution) == []
    wait_window_closed(flusher)
    result = flusher.flush()
    assert result.state == "sent" and result.record is not None
    sent = invalidations(moto, distribution)
    assert len(sent) == 1
    # Files are immutable: an upload never purges a file URL.
    assert sent[0]["paths"] == sorted(RELEASE_PATHS)
    assert sent[0]["reference"] == f"ppc-{result.record.batch_id}"
    assert flusher.flush().state == "idle"
    assert len(invalidations(moto, distribution)) == 1
    [record] = cache.cdn_history(datetime(2000, 1, 1, tzinfo=UTC))
    assert (record.changes, record.paths, record.wildcards) == (40, 4, 0)
    assert record.invalidation_id == sent[0]["id"]


def test_deletes_and_replacements_purge_the_file_url(cache: Cache, moto: Moto, distribution: str) -> None:
    flusher, _ = flusher_for(cache, moto, distribution)
    kept, gone, rewritten = wheel("demo", "1.0"), wheel("demo", "2.0"), wheel("other", "3.0")
    for file in (kept, gone, rewritten):
        cache.apply(AddFile(file, file.project))
    assert flusher.flush(force=True).state == "sent"
    assert cache.apply(RemoveFile(gone.filename)).changed
    cache.apply_reload(ReloadChanges(changed=[replace(rewritten, sha256="b" * 64)]))
    result = flusher.flush(force=True)
    assert result.state == "sent"
    assert sorted(result.paths) == sorted(
        [
            "/simple/",
            "/simple/demo/",
            "/pypi/demo/json",
            "/pypi/demo/1.0/json",  # unchanged, but it shows the project's last_serial
            "/pypi/demo/2.0/json",
            f"/packages/demo/{gone.filename}",
            f"/packages/demo/{gone.filename}.metadata",
            "/simple/other/",
            "/pypi/other/json",
            "/pypi/other/3.0/json",
            f"/packages/other/{rewritten.filename}",
            f"/packages/other/{rewritten.filename}.metadata",
        ]
    )
    assert f"/packages/demo/{kept.filename}" not in result.paths
    assert len(invalidations(moto, distribution)) == 2


def test_5000_changes_across_2000_projects_collapse_into_wildcards(cache: Cache, moto: Moto, distribution: str) -> None:
    # On DynamoDB (moto answers each conditional write in about 35 ms, 5 minutes for 5,000 rows) a fifth of it:
    # 1,000 changes across 400 projects are as far above the wildcard threshold, through the same item set.
    changes, projects = (1000, 400) if isinstance(cache, DynamoCache) else (5000, 2000)
    # A window far longer than writing the rows takes on any backend here.
    flusher, windows = flusher_for(cache, moto, distribution, window=900)
    files = [wheel(f"proj-{n % projects}", f"1.{n // projects}") for n in range(changes)]
    # In slices, as a reload or a burst of uploads writes them: every slice joins the same window.
    for start in range(0, len(files), 500):
        cache.apply_reload(ReloadChanges(added=files[start : start + 500]))
    assert windows.opened == 1
    assert len(cache.outbox_pending(10_000)) == changes
    looked_up = count_calls(cache, "project_files")
    result = flusher.flush(force=True)
    assert result.state == "sent"
    [sent] = invalidations(moto, distribution)
    wildcards = [p for p in sent["paths"] if p.endswith("*")]
    assert sorted(wildcards) == ["/pypi/*", "/simple/*"]
    assert len(sent["paths"]) <= 300 <= CLOUDFRONT_MAX_PATHS
    assert len(wildcards) <= CLOUDFRONT_MAX_WILDCARDS
    assert result.record is not None and result.record.changes == changes
    assert cache.outbox_pending(1) == [] and cache.outbox_batch() is None
    assert looked_up == []  # /pypi/* covers every release page: no project's versions were read


def count_calls(cache: Cache, name: str) -> list[tuple[Any, ...]]:
    """The arguments of every call to cache.<name> from now on."""
    calls: list[tuple[Any, ...]] = []
    real = getattr(cache, name)

    def counted(*args: Any) -> Any:
        calls.append(args)
        return real(*args)

    setattr(cache, name, counted)
    return calls


class FailingPurger(CloudFrontPurger):
    """Fails once: before CloudFront hears of it, or after it made the invalidation (a lost answer)."""

    def __init__(self, real: CloudFrontPurger, after_sending: bool) -> None:
        super().__init__(real.distribution_id, real.client)
        self.after_sending = after_sending
        self.failures = 0

    def invalidate(self, paths: list[str], caller_reference: str) -> str | None:
        if self.failures:
            return super().invalidate(paths, caller_reference)
        self.failures += 1
        if self.after_sending:
            super().invalidate(paths, caller_reference)
        raise CdnError("CloudFront CreateInvalidation failed (injected)")


@pytest.mark.parametrize("after_sending", [False, True], ids=["before-sending", "after-sending"])
def test_a_failed_flush_is_retried_and_purges_once(
    cache: Cache, moto: Moto, distribution: str, after_sending: bool
) -> None:
    settings = cdn_settings(moto, distribution)
    failing = FailingPurger(purger(moto, distribution), after_sending)
    flusher = CdnFlusher(cache, failing, settings)
    flusher.attach()
    cache.apply(AddFile(wheel("demo", "1.0"), "demo"))
    with pytest.raises(CdnError):
        flusher.flush(force=True)
    assert failing.failures == 1
    # The batch was read and claimed, and survives the failure.
    claimed = cache.outbox_batch()
    assert claimed is not None and len(claimed.changes) == 1
    # A change during the failed flush waits for the next batch.
    cache.apply(AddFile(wheel("late", "2.0"), "late"))
    retried = flusher.flush(force=True)
    assert retried.state == "sent" and retried.record is not None
    assert retried.record.batch_id == claimed.id
    first = invalidations(moto, distribution)
    assert len(first) == 1, first  # the retry found the invalidation its first attempt made, or made it once
    assert first[0]["paths"] == sorted(RELEASE_PATHS)
    following = flusher.flush(force=True)
    assert following.state == "sent"
    assert "/simple/late/" in following.paths and "/simple/demo/" not in following.paths
    assert len(invalidations(moto, distribution)) == 2


def test_two_processes_flushing_at_once_send_one_invalidation(
    raw: dict[str, str], cache: Cache, moto: Moto, distribution: str
) -> None:
    for n in range(5):
        cache.apply(AddFile(wheel("demo", "1.0", f"py3-none-any{n}"), "demo"))
    states: list[str] = []
    loser_done = threading.Event()

    class SlowPurger(CloudFrontPurger):
        def invalidate(self, paths: list[str], caller_reference: str) -> str | None:
            # Hold the batch until the other process has tried, so that the race really happens.
            loser_done.wait(timeout=20)
            return super().invalidate(paths, caller_reference)

    caches = [open_cache(raw, distribution) for _ in range(2)]
    settings = cdn_settings(moto, distribution)
    flushers = [CdnFlusher(c, SlowPurger(distribution, moto.client("cloudfront")), settings) for c in caches]
    barrier = threading.Barrier(2)

    def run(flusher: CdnFlusher) -> None:
        barrier.wait(timeout=20)
        state = flusher.flush(force=True).state
        states.append(state)
        if state != "sent":
            loser_done.set()

    threads = [threading.Thread(target=run, args=(f,)) for f in flushers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for built in caches:
        built.close()
    assert sorted(states) == ["busy", "sent"]
    [sent] = invalidations(moto, distribution)
    assert sent["paths"] == sorted(RELEASE_PATHS)


def test_a_flush_that_looks_while_another_claims_the_batch_is_busy_not_idle(
    cache: Cache, moto: Moto, distribution: str
) -> None:
    # The interleaving two racing processes can produce: the other flusher takes the lease and moves the
    # pending changes into its batch while this one is checking whether anything is pending.
    cache.apply(AddFile(wheel("demo", "1.0"), "demo"))
    flusher, _ = flusher_for(cache, moto, distribution)
    real_pending = cache.outbox_pending

    def claimed_meanwhile(limit: int) -> Any:
        pending = real_pending(100)
        if pending and cache.outbox_batch() is None:
            assert cache.acquire_lock(FLUSH_LOCK, "the-other-process", FLUSH_LEASE)
            cache.open_outbox_batch(CdnBatch("the-other-batch", datetime.now(UTC), tuple(pending)))
        return real_pending(limit)

    cache.outbox_pending = claimed_meanwhile
    assert flusher.flush(force=True).state == "busy"


def test_a_crash_between_change_and_flush_loses_nothing(raw: dict[str, str], moto: Moto, distribution: str) -> None:
    # The process that made the change dies before any flush: only the outbox remembers.
    crashed = open_cache(raw, distribution)
    crashed.apply(AddFile(wheel("demo", "1.0"), "demo"))
    crashed.close()
    # Another dies after claiming a batch, before CloudFront heard of it.
    dying_cache = open_cache(raw, distribution)
    dying = CdnFlusher(dying_cache, purger(moto, distribution), cdn_settings(moto, distribution))

    def die(paths: list[str], caller_reference: str) -> str | None:
        raise KeyboardInterrupt  # not an error the flush could handle: the process is going down

    dying.purger.invalidate = die  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        dying.flush(force=True)
    claimed = dying_cache.outbox_batch()
    dying_cache.close()
    assert claimed is not None and len(claimed.changes) == 1
    assert invalidations(moto, distribution) == []
    # The next process sends it.
    survivor_cache = open_cache(raw, distribution)
    survivor = CdnFlusher(survivor_cache, purger(moto, distribution), cdn_settings(moto, distribution))
    wait_window_closed(survivor)
    result = survivor.flush()
    survivor_cache.close()
    assert result.state == "sent" and result.record is not None
    assert result.record.batch_id == claimed.id
    [sent] = invalidations(moto, distribution)
    assert sent["paths"] == sorted(RELEASE_PATHS)


def test_the_window_is_claimed_once(cache: Cache, moto: Moto, distribution: str) -> None:
    flusher, windows = flusher_for(cache, moto, distribution, window=30)
    other, other_windows = flusher_for(cache, moto, distribution, window=30)
    flusher.note_change()
    other.note_change()
    flusher.note_change()
    assert (windows.opened, other_windows.opened) == (1, 0)
    assert cache.lock_state(WINDOW_LOCK)[0]


def test_yank_status_and_reload_are_recorded(cache: Cache, moto: Moto, distribution: str) -> None:
    flusher, _ = flusher_for(cache, moto, distribution)
    cache.apply(AddFile(wheel("demo", "1.0"), "demo"))
    cache.apply(AddFile(wheel("demo", "2.0"), "demo"))
    assert flusher.flush(force=True).state == "sent"
    cache.apply(SetYanked("demo", "1.0", True, "broken"))
    looked_up = count_calls(cache, "project_files")
    yanked = flusher.flush(force=True)
    # 2.0's page too: every release page shows the project's last_serial.
    assert sorted(yanked.paths) == sorted(
        ["/simple/", "/simple/demo/", "/pypi/demo/json", "/pypi/demo/1.0/json", "/pypi/demo/2.0/json"]
    )
    assert looked_up == [("demo",)]
    bool(cache.apply(SetStatus("demo", "quarantined", "malware")).count)
    status = flusher.flush(force=True)
    assert "/pypi/demo/1.0/json" in status.paths and "/pypi/demo/2.0/json" in status.paths
    assert len(invalidations(moto, distribution)) == 3
