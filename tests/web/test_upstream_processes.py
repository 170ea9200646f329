"""The upstream proxy in several server processes sharing one storage and cache: one fetch of a page or file.

Two apps built from the same settings stand for two processes (each has its own memory, proxy and
connections; they share only storage and the cache). The leader that dies is a real process, killed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import webtest

from pypicloud_lite.upstream.flight import lease_name
from pypicloud_lite.upstream.stored_pages import page_key
from pypicloud_lite.web.upstream_pages import UpstreamPages
from tests.support.apiutil import assert_error, build_app, close_app
from tests.support.common import services
from tests.support.data import REPO_ROOT
from tests.support.distbuilder import build_wheel
from tests.support.reload import env_settings
from tests.support.upstreams import Hosted, JsonIndex, joined, proxy_settings

JSON_ACCEPT = {"Accept": "application/vnd.pypi.simple.v1+json"}
WHEEL = "upkg-1.0-py3-none-any.whl"
PAGE = "/simple/upkg/"


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[JsonIndex]:
    index = JsonIndex()
    index.add("upkg", Hosted(build_wheel(tmp_path / "upstream-dists", "upkg", "1.0")))
    yield index
    index.gate = None
    index.stop()


def pages_of(app: webtest.TestApp) -> UpstreamPages:
    pages = services(app.app).upstream
    assert pages is not None
    return pages


def all_at_once(calls: list[Any]) -> list[Any]:
    """Run each call in a thread of its own; their answers, once all have ended."""
    answers: list[Any] = []
    threads = [threading.Thread(target=lambda call=call: answers.append(call())) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return answers


@pytest.mark.parametrize("kind", ["local", "local+postgresql", "local+mariadb", "local+dynamo"])
def test_two_processes_make_one_upstream_request_for_a_page_and_one_for_a_file(
    kind: str, raw_settings: dict[str, Any], request: pytest.FixtureRequest, upstream: JsonIndex
) -> None:
    with ExitStack() as stack:
        settings = proxy_settings(env_settings(kind, raw_settings, request, stack), upstream.url)
        apps = [build_app(settings) for _ in range(2)]
        for app in apps:
            stack.callback(close_app, app)
        pages = [pages_of(app) for app in apps]
        proxies = [p.proxy for p in pages]

        upstream.gate = threading.Event()
        page_calls = [lambda p=p: p.project_page("upkg", "json").body for p in pages for _ in range(4)]
        answers: list[Any] = []
        runner = threading.Thread(target=lambda: answers.extend(all_at_once(page_calls)))
        runner.start()
        assert upstream.waiting.acquire(timeout=30)  # the one leader's request reached the upstream
        # Three wait in the leader's process; the other process's first request waits on the lease, three on it.
        joined("upkg", 7, *proxies)
        upstream.gate.set()
        runner.join(60)
        assert len(answers) == 8 and len(set(answers)) == 1
        assert upstream.hits[PAGE] == 1

        upstream.gated, upstream.gate = "/files/", threading.Event()
        file_calls = [lambda p=p: p.cache_file("upkg", WHEEL).sha256 for p in proxies for _ in range(2)]
        answers.clear()
        runner = threading.Thread(target=lambda: answers.extend(all_at_once(file_calls)))
        runner.start()
        assert upstream.waiting.acquire(timeout=30)
        joined(f"file:{WHEEL}", 3, *proxies)
        upstream.gate.set()
        runner.join(60)
        assert answers == [upstream.projects["upkg"][0].sha256] * 4
        assert upstream.hits[f"/files/{WHEEL}"] == 1

        # Within the TTL neither process asks again, for the page or the file.
        for app in apps:
            app.get(PAGE)
            assert app.get(f"/packages/upkg/{WHEEL}").body == upstream.projects["upkg"][0].data
        assert upstream.hits[PAGE] == 1 and upstream.hits[f"/files/{WHEEL}"] == 1


def test_a_leader_that_dies_mid_fetch_is_taken_over_once_its_lease_lapses(
    raw_settings: dict[str, Any], upstream: JsonIndex
) -> None:
    # Renewed every 2/3 s by a live leader: a loaded machine's stalls do not make it lapse early.
    settings = proxy_settings(raw_settings, upstream.url, lease_ttl="2")
    app = build_app(settings)  # migrates the cache before the other process starts
    upstream.gate = threading.Event()
    leader = subprocess.Popen(
        [sys.executable, "-m", "tests.support.upstream_leader", json.dumps(settings), "upkg"], cwd=REPO_ROOT
    )
    try:
        assert upstream.waiting.acquire(timeout=60)  # the leader holds the lease and waits on the upstream
        answers: list[webtest.TestResponse] = []
        follower = threading.Thread(target=lambda: answers.append(app.get(PAGE, headers=JSON_ACCEPT)))
        follower.start()
        joined("upkg", 1, pages_of(app).proxy)  # waiting on the leader's lease, not asking the upstream
        assert upstream.hits[PAGE] == 1
        leader.kill()
        leader.wait(30)
        upstream.gate.set()
        follower.join(60)
        assert answers[0].headers["X-PPC-Upstream"] == "fresh"
        assert [f["filename"] for f in answers[0].json["files"]] == [WHEEL]
        assert upstream.hits[PAGE] == 2
    finally:
        leader.kill()
        leader.wait(30)
        upstream.gate.set()
        close_app(app)


def test_a_request_waits_for_another_processs_fetch_only_so_long(
    raw_settings: dict[str, Any], upstream: JsonIndex
) -> None:
    app = build_app(proxy_settings(raw_settings, upstream.url, wait="0.2", page_ttl="0"))
    try:
        cache = services(app.app).index.cache
        # Another process holds the fetch's lease (alive: it does not lapse while the test runs).
        assert cache.acquire_lock(lease_name("upkg"), "another-process", 60)
        resp = app.get(PAGE, expect_errors=True)
        assert_error(resp, 503, "Another request has been fetching the page of 'upkg' from upstream for 0.2 s")
        assert upstream.hits[PAGE] == 0
        cache.release_lock(lease_name("upkg"), "another-process", {})
        app.get(PAGE)
        # A page this process holds is served stale instead.
        assert cache.acquire_lock(lease_name("upkg"), "another-process", 60)
        assert app.get(PAGE).headers["X-PPC-Upstream"] == "stale"
        assert cache.acquire_lock(lease_name(f"file:{WHEEL}"), "another-process", 60)
        resp = app.get(f"/packages/upkg/{WHEEL}", expect_errors=True)
        assert_error(resp, 503, f"Another request has been fetching {WHEEL!r} from upstream")
        assert upstream.hits[PAGE] == 1 and upstream.hits[f"/files/{WHEEL}"] == 0
    finally:
        close_app(app)


def test_a_404_or_a_failure_of_one_process_spares_the_others_asking(
    raw_settings: dict[str, Any], upstream: JsonIndex
) -> None:
    apps = [build_app(proxy_settings(raw_settings, upstream.url)) for _ in range(2)]
    try:
        for app in apps:
            app.get("/simple/nowhere/", status=404)
        assert upstream.hits["/simple/nowhere/"] == 1
        upstream.failing = True
        for app in apps:
            assert_error(app.get(PAGE, expect_errors=True), 502, "answered 503")
        assert upstream.hits[PAGE] == 1
    finally:
        for app in apps:
            close_app(app)


def test_a_stored_page_is_no_part_of_the_index(raw_settings: dict[str, Any], upstream: JsonIndex) -> None:
    app = build_app(proxy_settings(raw_settings, upstream.url))
    try:
        app.get(PAGE)
        index = services(app.app).index
        assert index.storage.read_versioned(page_key("upkg")) is not None
        progress = index.begin_reload(1).execute()
        assert (progress.state, progress.added, progress.skipped) == ("done", 0, 0)
        assert index.list_projects() == []
    finally:
        close_app(app)
