"""A status change and a yank of one project at the same moment, through two server processes over one storage
folder and one cache: storage keeps both, so a cache rebuilt from it by a reload shows both (no lost update)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.apiutil import running
from tests.support.common import UPLOADER, UPLOADER_PASSWORD, basic_auth
from tests.support.consistency_harness import SharedCache, request, shared_cache, start_shared_server, upload
from tests.support.distbuilder import build_wheel
from tests.support.harness import Server
from tests.support.index_driver import IndexDriver
from tests.support.settings import server_settings

ROUNDS = 20
PROJECT = "racer"
STATUSES = ("deprecated", "archived")  # archived refuses uploads: each round's upload comes first, while deprecated
ADMIN = basic_auth(UPLOADER, UPLOADER_PASSWORD)


@pytest.fixture(params=["sqlite", "postgresql"])
def cache(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SharedCache]:
    with shared_cache(request.param, tmp_path, lambda: request.getfixturevalue("moto")) as found:
        yield found


def at_once(*calls: tuple[Server, str, str, dict[str, str]]) -> list[requests.Response]:
    """The requests sent together (a barrier releases their threads at one moment)."""
    barrier = threading.Barrier(len(calls))
    answers: list[requests.Response | None] = [None] * len(calls)

    def send(i: int, server: Server, method: str, path: str, body: dict[str, str]) -> None:
        barrier.wait()
        answers[i] = request(server, method, path, admin=True, json=body)

    threads = [threading.Thread(target=send, args=(i, *call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(answer is not None for answer in answers)
    return [answer for answer in answers if answer is not None]


def rebuilt_project(storage: Path, root: Path) -> dict[str, Any]:
    """/api/projects/<PROJECT> from a server over `storage` with an empty cache of its own, after a reload."""
    root.mkdir(parents=True, exist_ok=True)  # the cache's folder: a missing one is an error
    with running(server_settings(root, {"storage.dir": str(storage)})) as app:
        IndexDriver(app, ADMIN, root / "unused").reload()
        doc: dict[str, Any] = app.get(f"/api/projects/{PROJECT}", headers=ADMIN).json
        return doc


def both(doc: dict[str, Any], filename: str) -> tuple[tuple[Any, Any], tuple[Any, Any]]:
    """((status, status reason), (the file's yanked, yank reason)) from an /api/projects/<p> document."""
    entry = next((f for v in doc["versions"] for f in v["files"] if f["filename"] == filename), {})
    return (doc["status"], doc["status_reason"]), (entry.get("yanked"), entry.get("yanked_reason"))


def test_status_change_and_yank_at_once_through_two_servers_are_both_kept_in_storage(
    cache: SharedCache, tmp_path: Path
) -> None:
    shared = tmp_path / "shared"
    servers = [start_shared_server(tmp_path / name, shared, cache) for name in ("a", "b")]
    lost: list[str] = []
    try:
        for n in range(ROUNDS):
            version, status = f"1.{n}", STATUSES[n % 2]
            unlock = request(
                servers[0], "PUT", f"/api/projects/{PROJECT}/status", admin=True, json={"status": "active"}
            )
            assert unlock.status_code in (200, 404), unlock.text  # 404: no project before the first upload
            wheel = build_wheel(tmp_path / "dists" / version, PROJECT, version)
            assert upload(servers[n % 2], wheel, PROJECT, version).status_code == 200
            # Each round the other server takes the status change.
            status_server, yank_server = servers[n % 2], servers[1 - n % 2]
            changed, yanked = at_once(
                (status_server, "PUT", f"/api/projects/{PROJECT}/status", {"status": status, "reason": f"status {n}"}),
                (yank_server, "POST", f"/api/projects/{PROJECT}/versions/{version}/yank", {"reason": f"yank {n}"}),
            )
            assert changed.status_code == 200, (n, changed.text)
            assert yanked.status_code == 200, (n, yanked.text)
            wanted = ((status, f"status {n}"), (True, f"yank {n}"))
            live = request(servers[0], "GET", f"/api/projects/{PROJECT}", admin=True).json()
            assert both(live, wheel.name) == wanted, f"round {n}: the live index itself lost a change"
            rebuilt = both(rebuilt_project(shared / "packages", tmp_path / f"rebuilt-{n}"), wheel.name)
            if rebuilt != wanted:
                lost.append(f"round {n}: (status, reason), (yanked, reason) rebuilt {rebuilt}, acknowledged {wanted}")
    finally:
        for server in servers:
            server.stop()
    assert not lost, f"{len(lost)} changes acknowledged with 200 are missing from a cache rebuilt from storage:\n" + (
        "\n".join(lost)
    )
