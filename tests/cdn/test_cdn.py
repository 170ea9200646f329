"""cdn.py without a backend service: paths, wildcards, CloudFront's limits, the report and its command."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pypicloud_lite.cdn import (
    CdnFlusher,
    CloudFrontPurger,
    build_report,
    change_paths,
    invalidation_paths,
)
from pypicloud_lite.config import CLOUDFRONT_MAX_WILDCARDS, CdnSettings, load_settings
from pypicloud_lite.errors import ConfigError
from pypicloud_lite.models import AddFile, CdnBatch, CdnChange, CdnRecord
from pypicloud_lite.scripts import cdn_report
from tests.support.cdn import open_cache, wheel
from tests.support.settings import write_ini


def test_an_upload_purges_the_pages_of_its_release_never_a_file() -> None:
    assert change_paths(CdnChange("demo", "1.0")) == [
        "/simple/",
        "/simple/demo/",
        "/pypi/demo/json",
        "/pypi/demo/1.0/json",
    ]


def test_a_deleted_wheel_purges_its_url_and_metadata_under_the_prefix() -> None:
    paths = change_paths(CdnChange("demo", "1.0+cu118", "demo-1.0+cu118-py3-none-any.whl"), "/pypi-mirror")
    assert paths[-2:] == [
        "/pypi-mirror/packages/demo/demo-1.0+cu118-py3-none-any.whl",
        "/pypi-mirror/packages/demo/demo-1.0+cu118-py3-none-any.whl.metadata",
    ]
    assert paths[3] == "/pypi-mirror/pypi/demo/1.0+cu118/json"
    sdist = change_paths(CdnChange("demo", "1.0", "demo-1.0.tar.gz"))
    assert sdist[-1] == "/packages/demo/demo-1.0.tar.gz"
    assert not any(p.endswith(".metadata") for p in sdist)


def test_unsafe_characters_are_encoded() -> None:
    assert change_paths(CdnChange("demo", None, "demo 1.0.tar.gz"))[-1] == "/packages/demo/demo%201.0.tar.gz"


def test_few_paths_stay_explicit() -> None:
    changes = [CdnChange(f"p{n}", "1.0") for n in range(10)]
    paths = invalidation_paths(changes, "", 300)
    assert len(paths) == 1 + 10 * 3 and not any(p.endswith("*") for p in paths)


def test_many_paths_collapse_biggest_group_first_within_the_threshold() -> None:
    changes = [CdnChange(f"proj-{n % 2000}", f"1.{n // 2000}") for n in range(5000)]
    # simple: 1 + 2,000 paths; pypi: 2,000 + 5,000.
    paths = invalidation_paths(changes, "/x", 2500)
    assert paths == sorted(["/x/pypi/*", "/x/simple/", *(f"/x/simple/proj-{n}/" for n in range(2000))])
    assert invalidation_paths(changes, "/x", 300) == ["/x/pypi/*", "/x/simple/*"]
    with_files = [*changes, *(CdnChange(f"proj-{n}", "1.0", f"proj_{n}-1.0.tar.gz") for n in range(400))]
    collapsed = invalidation_paths(with_files, "", 10)
    assert collapsed == ["/packages/*", "/pypi/*", "/simple/*"]
    assert len(collapsed) <= CLOUDFRONT_MAX_WILDCARDS


# -- CloudFront's in-progress limits -------------------------------------------------------


class FakeCloudFront:
    """Just enough of CloudFront to hold invalidations in progress (moto completes them at once)."""

    def __init__(self) -> None:
        self.invalidations: list[dict[str, Any]] = []
        self.refuse = False

    def add(self, paths: list[str], status: str = "InProgress", reference: str = "other") -> str:
        self.invalidations.append(
            {"Id": f"I{len(self.invalidations)}", "Status": status, "paths": paths, "reference": reference}
        )
        return str(self.invalidations[-1]["Id"])

    def list_invalidations(self, **_: Any) -> dict[str, Any]:
        now = datetime.now(UTC)
        items = [{"Id": i["Id"], "Status": i["Status"], "CreateTime": now} for i in reversed(self.invalidations)]
        return {"InvalidationList": {"Items": items, "IsTruncated": False}}

    def get_invalidation(self, Id: str, **_: Any) -> dict[str, Any]:
        found = next(i for i in self.invalidations if i["Id"] == Id)
        batch = {
            "Paths": {"Quantity": len(found["paths"]), "Items": found["paths"]},
            "CallerReference": found["reference"],
        }
        return {"Invalidation": {"InvalidationBatch": batch}}

    def create_invalidation(self, InvalidationBatch: dict[str, Any], **_: Any) -> dict[str, Any]:
        if self.refuse:
            from botocore.exceptions import ClientError

            error = {"Error": {"Code": "TooManyInvalidationsInProgress", "Message": "slow down"}}
            raise ClientError(error, "CreateInvalidation")
        return {
            "Invalidation": {
                "Id": self.add(InvalidationBatch["Paths"]["Items"], "InProgress", InvalidationBatch["CallerReference"])
            }
        }


@pytest.fixture
def sqlite_raw(tmp_path: Path) -> dict[str, str]:
    return {"cache.url": f"sqlite:///{tmp_path / 'cache.sqlite'}", "cache.migrate_on_start": "true"}


def test_too_many_wildcards_in_progress_waits_then_sends(sqlite_raw: dict[str, str]) -> None:
    fake = FakeCloudFront()
    for n in range(CLOUDFRONT_MAX_WILDCARDS - 1):
        fake.add([f"/old{n}/*"])
    cache = open_cache(sqlite_raw)
    settings = CdnSettings(backend="cloudfront", distribution_id="E1", wildcard_threshold=2)
    flusher = CdnFlusher(cache, CloudFrontPurger("E1", fake), settings)
    flusher.attach()
    for n in range(3):
        cache.apply(AddFile(wheel(f"p{n}", "1.0"), f"p{n}"))
    waiting = flusher.flush(force=True)
    # Two wildcards would make 16 in progress: it waits, sends nothing, and keeps the batch.
    assert waiting.state == "waiting" and waiting.paths == ("/pypi/*", "/simple/*")
    assert len(fake.invalidations) == CLOUDFRONT_MAX_WILDCARDS - 1
    batch = cache.outbox_batch()
    assert batch is not None and len(batch.changes) == 3
    fake.invalidations[0]["Status"] = "Completed"
    fake.invalidations[1]["Status"] = "Completed"
    sent = flusher.flush(force=True)
    assert sent.state == "sent" and sent.record is not None and sent.record.batch_id == batch.id
    assert fake.invalidations[-1]["paths"] == ["/pypi/*", "/simple/*"]
    assert fake.invalidations[-1]["reference"] == f"ppc-{batch.id}"
    cache.close()


def test_too_many_explicit_paths_in_progress_or_a_refusal_waits(sqlite_raw: dict[str, str]) -> None:
    fake = FakeCloudFront()
    fake.add([f"/simple/p{n}/" for n in range(2999)])
    cache = open_cache(sqlite_raw)
    flusher = CdnFlusher(cache, CloudFrontPurger("E1", fake), CdnSettings(backend="cloudfront", distribution_id="E1"))
    flusher.attach()
    cache.apply(AddFile(wheel("demo", "1.0"), "demo"))
    assert flusher.flush(force=True).state == "waiting"
    fake.invalidations[0]["Status"] = "Completed"
    fake.refuse = True  # CloudFront's own count says no: still a wait, not a failure
    assert flusher.flush(force=True).state == "waiting"
    fake.refuse = False
    assert flusher.flush(force=True).state == "sent"
    assert flusher.flush(force=True).state == "idle"
    assert len(fake.invalidations) == 2
    cache.close()


# -- ppc-cdn-report ------------------------------------------------------------------------


def record(sent: datetime, changes: int, paths: int, wildcards: int = 0) -> CdnRecord:
    return CdnRecord(f"b{sent.isoformat()}", sent, changes, paths, wildcards, "I1")


def test_report_figures_match_a_hand_computation() -> None:
    now = datetime(2026, 12, 10, 12, 0, tzinfo=UTC)
    history = [
        record(datetime(2026, 11, 5, tzinfo=UTC), 999, 999),  # older than 30 days
        record(datetime(2026, 11, 20, tzinfo=UTC), 40, 4),
        record(datetime(2026, 11, 25, tzinfo=UTC), 5000, 3, 3),
        record(datetime(2026, 12, 1, tzinfo=UTC), 300, 600),
        record(datetime(2026, 12, 9, tzinfo=UTC), 200, 500),
    ]
    report = build_report(history, 30, now)
    # By hand. Ours: November 4 + 3 = 7 paths (free); December 600 + 500 = 1,100, 100 over: $0.50.
    # Naive, 2 paths a change: November 2 x 5,040 = 10,080, 9,080 over: $45.40; December 2 x 500 = 1,000: free.
    assert (report.changes, report.invalidations, report.paths, report.wildcards) == (5540, 4, 1107, 3)
    assert report.cost == pytest.approx(0.50)
    assert (report.naive_invalidations, report.naive_paths) == (5540, 11080)
    assert report.naive_cost == pytest.approx(45.40)


def test_the_command_reports_the_stored_history(
    tmp_path: Path, sqlite_raw: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    cache = open_cache(sqlite_raw)
    now = datetime.now(UTC)
    for sent, changes, paths, wildcards in [
        (now - timedelta(days=40), 5000, 3, 3),  # outside --days 30
        (now - timedelta(minutes=2), 40, 4, 0),
        (now - timedelta(minutes=1), 700, 3, 3),
    ]:
        batch = CdnBatch(f"b{changes}", sent, ())
        cache.open_outbox_batch(batch)
        cache.close_outbox_batch(batch, CdnRecord(batch.id, sent, changes, paths, wildcards, "I"))
    cache.close()
    settings = {"storage.dir": str(tmp_path / "packages"), **sqlite_raw, "cdn.backend": "cloudfront"}
    settings["cdn.distribution_id"] = "E1"
    ini = write_ini(tmp_path / "server.ini", settings)
    assert cdn_report.main([str(ini), "--days", "30"]) == 0
    out = capsys.readouterr().out
    # By hand: 740 changes, 2 invalidations, 7 paths (3 wildcards), free; naive 1,480 paths, 480 over: $2.40.
    assert "changes:        740" in out
    assert "invalidations:  2\n" in out
    assert "paths sent:     7 (3 wildcards)" in out
    assert "estimated cost: $0.00" in out
    assert "invalidations:  740" in out and "paths:          1480" in out
    assert "estimated cost: $2.40" in out
    assert "saved: $2.40" in out


# -- settings ------------------------------------------------------------------------------


def cdn_config(**raw: str) -> CdnSettings:
    return load_settings({"storage.dir": "/nonexistent", "cache.url": "sqlite://", **raw}, environ={}).cdn


def test_settings_defaults_with_and_without_purging() -> None:
    assert cdn_config() == CdnSettings(s_maxage=600, max_age=600)
    purged = cdn_config(**{"cdn.backend": "cloudfront", "cdn.distribution_id": "E1", "cdn.path_prefix": "pypi/"})
    assert (purged.s_maxage, purged.max_age, purged.path_prefix, purged.window) == (86400, 60, "/pypi", 60)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"cdn.backend": "cloudfront"}, "cdn.distribution_id"),
        ({"cdn.backend": "akamai"}, "cdn.backend"),
        ({"cdn.window": "901"}, "cdn.window"),
        ({"cdn.wildcard_threshold": "3001"}, "cdn.wildcard_threshold"),
        ({"cdn.s_maxage": "long"}, "cdn.s_maxage"),
        ({"cdn.windw": "5"}, "cdn.windw"),
    ],
)
def test_bad_settings_name_the_key(raw: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        cdn_config(**raw)


def test_the_environment_overrides_and_turns_the_outbox_on() -> None:
    raw = {"storage.dir": "/nonexistent", "cache.url": "sqlite://"}
    environ = {"PPC_CDN_BACKEND": "cloudfront", "PPC_CDN_DISTRIBUTION_ID": "E9", "PPC_CDN_WINDOW": "5"}
    settings = load_settings(raw, environ=environ)
    assert (settings.cdn.distribution_id, settings.cdn.window) == ("E9", 5)
    assert settings.cache.cdn_outbox
    assert not load_settings(raw, environ={}).cache.cdn_outbox
