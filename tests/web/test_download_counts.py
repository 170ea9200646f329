"""Download counts: which requests count, batched in memory and added to the cache, on the page and in the API."""

from __future__ import annotations

from typing import Any

import pytest
import webtest

from pypicloud_lite.cache.base import DownloadCounts
from pypicloud_lite.errors import BackendUnavailable
from pypicloud_lite.web.download_counts import DownloadCounter
from tests.support.common import services
from tests.support.webapp import METADATA_URL, SDIST_URL, WHEEL_URL, Uploaded


@pytest.fixture
def manual_flush(monkeypatch: pytest.MonkeyPatch) -> None:
    """No timed flush during the test: it flushes itself (set before the app is built)."""
    monkeypatch.setattr("pypicloud_lite.web.download_counts.FLUSH_SECONDS", 3600.0)


def test_whole_downloads_count_and_partial_conditional_head_and_metadata_requests_do_not(
    manual_flush: None, testapp: webtest.TestApp, uploaded: Uploaded
) -> None:
    testapp.get(WHEEL_URL, status=200)
    etag = testapp.get(WHEEL_URL, status=200).headers["ETag"]
    testapp.get(SDIST_URL, status=200)
    testapp.get(SDIST_URL, headers={"Range": "bytes=0-9"}, status=206)  # from the first byte: a download
    testapp.get(SDIST_URL, headers={"Range": "bytes=10-"}, status=206)  # resuming one: not another
    testapp.head(WHEEL_URL, status=200)
    testapp.get(WHEEL_URL, headers={"If-None-Match": etag}, status=304)
    testapp.get(METADATA_URL, status=200)
    wheel, sdist = uploaded.wheel.name, uploaded.sdist.name
    app = services(testapp.app)
    # Not written yet (a batch every few seconds), yet shown by this process.
    assert app.index.cache.download_counts("foo-bar") == {}
    doc = testapp.get("/api/projects/foo-bar").json
    assert doc["downloads"] == 4
    assert {f["filename"]: f["downloads"] for v in doc["versions"] for f in v["files"]} == {wheel: 2, sdist: 2}
    assert app.downloads.flush() == 4
    assert app.index.cache.download_counts("foo-bar") == {wheel: 2, sdist: 2}
    assert app.downloads.flush() == 0
    page = testapp.get("/ui/projects/foo-bar").text
    assert 'id="project-downloads">4<' in page
    assert f'data-filename="{wheel}"' in page
    assert page.count('<td class="downloads" data-label="Downloads">2</td>') == 2


class _Failing(DownloadCounts):
    def __init__(self) -> None:
        self.added: list[dict[tuple[str, str], int]] = []
        self.fail = True

    def add_downloads(self, counts: Any) -> None:
        if self.fail:
            raise BackendUnavailable("The package cache database is unavailable (OperationalError).")
        self.added.append(dict(counts))

    def download_counts(self, project: str) -> dict[str, int]:
        return {}


def test_a_failed_flush_keeps_the_counts_for_the_next_one(caplog: pytest.LogCaptureFixture) -> None:
    cache = _Failing()
    counter = DownloadCounter(cache, flush_seconds=3600)
    counter.count("demo", "demo-1.0.tar.gz")
    counter.count("demo", "demo-1.0.tar.gz")
    assert counter.flush() == 0
    assert "download counts not saved yet (2 downloads)" in caplog.text
    counter.count("demo", "demo-1.0.tar.gz")
    assert counter.counts("demo") == {"demo-1.0.tar.gz": 3}
    cache.fail = False
    counter.close()
    assert cache.added == [{("demo", "demo-1.0.tar.gz"): 3}]
