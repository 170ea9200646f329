"""The access log (common log format and JSON) and /metrics: access rules, what it counts, several workers."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pypicloud_lite.config import load_settings
from pypicloud_lite.errors import ConfigError
from tests.support.apiutil import assert_error, creds, running, upload_wheel
from tests.support.common import UPLOADER
from tests.support.upstreams import JsonIndex, proxy_settings

ROOT = Path(__file__).resolve().parents[2]
CLIENT = {"REMOTE_ADDR": "127.0.0.1"}


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus exposition (0 when absent)."""
    total = 0.0
    for line in text.splitlines():
        match = re.match(r"^([a-z_]+)(?:\{(.*)\})? (\S+)$", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(match.group(3))
    return total


@pytest.mark.parametrize("fmt", ["common", "json"])
def test_one_access_log_line_per_request(
    raw_settings: dict[str, Any], auth: dict[str, str], fmt: str, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        running({**raw_settings, "log.access": fmt}) as app,
        caplog.at_level(logging.INFO, "pypicloud_lite.access_log"),
    ):
        resp = app.get(
            "/api/projects", headers={**auth, "X-Request-Id": "req-42"}, extra_environ={"REMOTE_ADDR": "198.51.100.9"}
        )
        assert resp.headers["X-Request-Id"] == "req-42"
        fresh = app.get("/simple/nothing-here/", status=404).headers["X-Request-Id"]
        assert re.fullmatch(r"[0-9a-f]{32}", fresh)
    records = [r for r in caplog.records if r.name == "pypicloud_lite.access_log"]
    assert len(records) == 2
    first, second = records
    if fmt == "json":
        assert (first.request_id, first.user, first.client, first.status) == ("req-42", UPLOADER, "198.51.100.9", 200)  # type: ignore[attr-defined]
        assert first.bytes == len(resp.body) and first.duration_ms >= 0  # type: ignore[attr-defined]
        assert (second.path, second.status, second.user) == ("/simple/nothing-here/", 404, "-")  # type: ignore[attr-defined]
    else:
        line = first.getMessage()
        assert re.fullmatch(
            rf'198\.51\.100\.9 - {UPLOADER} \[[^\]]+\] "GET /api/projects HTTP/1\.0" '
            rf"200 {len(resp.body)} [0-9.]+ms req-42",
            line,
        ), line
        assert "Authorization" not in line and auth["Authorization"] not in line


def test_metrics_access_follows_the_settings(raw_settings: dict[str, Any]) -> None:
    with running(raw_settings) as app:
        assert_error(app.get("/metrics", extra_environ=CLIENT, expect_errors=True), 404, "metrics.enabled")
    raw = {**raw_settings, "metrics.enabled": "true", "metrics.allow": "10.0.0.0/8", "metrics.token": "s3cret-scrape"}
    with running(raw) as app:
        assert app.get("/metrics", extra_environ={"REMOTE_ADDR": "10.1.2.3"}).content_type == "text/plain"
        refused = app.get("/metrics", extra_environ=CLIENT, expect_errors=True)
        assert_error(refused, 403, "metrics.allow")
        bearer = {"Authorization": "Bearer s3cret-scrape"}
        assert app.get("/metrics", headers=bearer, extra_environ=CLIENT).status_int == 200
        wrong = app.get("/metrics", headers={"Authorization": "Bearer guess"}, extra_environ=CLIENT, expect_errors=True)
        assert_error(wrong, 403, "token")
        # Prometheus scrapes by address: any Host may ask.
        assert app.get("/metrics", headers={**bearer, "Host": "10.9.9.9:6543"}).status_int == 200


def test_metrics_count_requests_pages_uploads_and_refusals(
    raw_settings: dict[str, Any], auth: dict[str, str], dist_dir: Path
) -> None:
    with running({**raw_settings, "metrics.enabled": "true"}) as app:
        app.extra_environ = CLIENT

        def scrape() -> str:
            return str(app.get("/metrics").text)

        before = scrape()
        wheel = upload_wheel(app, auth, dist_dir, "widget", "1.0")
        upload_wheel(app, creds(UPLOADER, "wrong"), dist_dir, "widget", "2.0", status=401)
        for _ in range(3):
            app.get("/simple/widget/", headers={"Accept": "text/html"})
        after = scrape()

        def grew(name: str, **labels: str) -> float:
            return sample(after, name, **labels) - sample(before, name, **labels)

        assert grew("ppc_http_requests_total", route="simple.detail", method="GET", status="200") == 3
        assert grew("ppc_http_request_duration_seconds_count", route="simple.detail") == 3
        assert grew("ppc_http_requests_total", route="upload.legacy", status="401") == 1
        assert grew("ppc_upload_files_total") == 1 and grew("ppc_upload_bytes_total") == wheel.stat().st_size
        assert grew("ppc_upload_rejections_total", reason="AuthenticationRequired") == 1
        assert grew("ppc_page_cache_requests_total", result="miss") == 1
        assert grew("ppc_page_cache_requests_total", result="hit") == 2
        assert sample(after, "ppc_reload_running") == 0 and sample(after, "ppc_index_serial") >= 1


def test_metrics_of_two_worker_processes_add_up(raw_settings: dict[str, Any], tmp_path: Path) -> None:
    shared = tmp_path / "prometheus"
    shared.mkdir()
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({**raw_settings, "metrics.enabled": "true"}), encoding="utf-8")
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(shared), "PYTHONPATH": str(ROOT)}
    scraped = []
    for requests in (3, 4):
        done = subprocess.run(
            [sys.executable, "-m", "tests.support.metrics_worker", str(settings), str(requests)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        scraped.append(done.stdout)
    labels = {"route": "simple.index", "method": "GET", "status": "200"}
    assert sample(scraped[0], "ppc_http_requests_total", **labels) == 3
    # The second worker's scrape sums both processes: 3 + 4, and the first worker's scrape of /metrics.
    assert sample(scraped[1], "ppc_http_requests_total", **labels) == 7
    assert sample(scraped[1], "ppc_http_requests_total", route="metrics", status="200") == 1
    assert sample(scraped[1], "ppc_http_request_duration_seconds_count", route="simple.index") == 7


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("log.format", "xml", "text, json"),
        ("log.access", "combined", "off, common, json"),
        ("metrics.allow", "10.0.0.0/33", "CIDR"),
    ],
)
def test_bad_operations_settings_stop_the_start(raw_settings: dict[str, Any], key: str, value: str, says: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(key)) as refused:
        load_settings({**raw_settings, key: value}, environ={})
    assert says in str(refused.value)


def test_upstream_fetches_are_counted(raw_settings: dict[str, Any], cpkg_upstream: JsonIndex) -> None:
    raw = {**proxy_settings(raw_settings, cpkg_upstream.url), "metrics.enabled": "true"}
    with running(raw) as app:
        app.extra_environ = CLIENT
        before = sample(app.get("/metrics").text, "ppc_upstream_fetches_total", upstream="main", outcome="200")
        app.get("/simple/cpkg/", headers={"Accept": "application/vnd.pypi.simple.v1+json"})
        app.get("/simple/no-such-thing/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}, status=404)
        after = app.get("/metrics").text
    assert sample(after, "ppc_upstream_fetches_total", upstream="main", outcome="200") == before + 1
    assert sample(after, "ppc_upstream_fetches_total", upstream="main", outcome="404") >= 1
