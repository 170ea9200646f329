"""pserve processes sharing one cache (SQLite, PostgreSQL or DynamoDB) and one storage folder, driven with requests."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from tests.support.aws import Moto
from tests.support.cache import fresh_database
from tests.support.common import UPLOADER, UPLOADER_PASSWORD
from tests.support.harness import JSON_V1, Server, clean_env, free_port, launch, pserve_settings
from tests.support.legacy import twine_fields
from tests.support.s3_harness import server_env
from tests.support.settings import write_ini

CACHES = ("sqlite", "postgresql", "dynamo")
REQUEST_TIMEOUT = 30
HTML = "text/html"
_MOTO_DYNAMODB = threading.Lock()


@dataclass(frozen=True)
class SharedCache:
    """The cache settings every server of a test uses, and how to build a server's environment."""

    kind: str
    settings: dict[str, str]
    environment: Callable[[Path], dict[str, str]] = field(default=lambda _folder: clean_env())


@contextmanager
def shared_cache(kind: str, root: Path, moto: Callable[[], Moto]) -> Iterator[SharedCache]:
    """A throw-away cache of `kind` under `root` (SQLite), in its own schema (PostgreSQL), database (MariaDB) or
    tables (DynamoDB)."""
    if kind == "sqlite":
        yield SharedCache(kind, {"cache.url": f"sqlite:///{root / 'cache.sqlite'}", "cache.migrate_on_start": "true"})
    elif kind in ("postgresql", "mariadb"):
        with fresh_database(kind, root) as url:
            yield SharedCache(kind, {"cache.url": url, "cache.migrate_on_start": "true"})
    elif kind == "dynamo":
        settings = moto().dynamo_settings()
        with one_dynamodb_request_at_a_time():
            yield SharedCache(kind, settings, server_env)
    else:
        raise ValueError(kind)


@contextmanager
def one_dynamodb_request_at_a_time() -> Iterator[None]:
    """Make the in-process moto answer DynamoDB requests one at a time, as atomically as DynamoDB does.

    moto checks TransactWriteItems' conditions and writes without a lock, and rolls a cancelled
    transaction back by restoring a copy of the whole table taken before it: under concurrent
    requests it loses writes that DynamoDB keeps (and lets two transactions pass one condition).
    """
    from moto.dynamodb.responses import DynamoHandler

    original = DynamoHandler.call_action
    if getattr(original, "serialized", False):
        # Already made so by an enclosing use (a test with several DynamoDB caches): the lock is not reentrant.
        yield
        return

    def call_action(self: DynamoHandler) -> Any:
        with _MOTO_DYNAMODB:
            return original(self)

    call_action.serialized = True  # type: ignore[attr-defined]
    DynamoHandler.call_action = call_action  # type: ignore[method-assign]
    try:
        yield
    finally:
        DynamoHandler.call_action = original  # type: ignore[method-assign]


def shared_settings(shared: Path, cache: SharedCache) -> dict[str, str]:
    """Packages in `shared` (beside every other server of the test), and `cache` instead of the SQLite one there."""
    # Values are literal: a URL's %-escapes must not be read as ini interpolation.
    cache_settings = {key: value.replace("%", "%%") for key, value in cache.settings.items()}
    return pserve_settings(shared, {"cache.url": None, "cache.migrate_on_start": None, **cache_settings})


def start_shared_server(folder: Path, shared: Path, cache: SharedCache, *, threads: int = 4) -> Server:
    """`pserve` on a fresh port over `shared` storage and `cache`; waits until /health answers 200."""
    folder.mkdir(parents=True, exist_ok=True)
    shared.mkdir(parents=True, exist_ok=True)
    port = free_port()
    ini = write_ini(folder / "server.ini", shared_settings(shared, cache), port, threads=threads)
    return launch(folder, ini, port, ready="/health", env=cache.environment(folder))


def request(
    server: Server,
    method: str,
    path: str,
    *,
    accept: str | None = None,
    headers: dict[str, str] | None = None,
    admin: bool = False,
    **kwargs: Any,
) -> requests.Response:
    """One request without proxies or redirects; `admin` sends the uploader's (admin) Basic credentials."""
    sent = {**({"Accept": accept} if accept else {}), **(headers or {})}
    with requests.Session() as session:
        session.trust_env = False
        return session.request(
            method,
            server.url + path,
            headers=sent,
            auth=(UPLOADER, UPLOADER_PASSWORD) if admin else None,
            allow_redirects=False,
            timeout=REQUEST_TIMEOUT,
            **kwargs,
        )


def upload(server: Server, path: Path, name: str, version: str) -> requests.Response:
    """A legacy upload as twine sends it (multipart form, every digest), as the admin uploader."""
    data = path.read_bytes()
    return request(
        server,
        "POST",
        "/legacy/",
        admin=True,
        data=twine_fields(name, version, path.name, data),
        files={"content": (path.name, data, "application/octet-stream")},
    )


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def listed(server: Server, project: str) -> dict[str, dict[str, Any]]:
    """filename -> file entry of the PEP 691 project page (empty when the project is unknown)."""
    response = request(server, "GET", f"/simple/{project}/", accept=JSON_V1)
    if response.status_code == 404:
        return {}
    assert response.status_code == 200, response.text
    return {entry["filename"]: entry for entry in response.json()["files"]}


def stored_objects(shared: Path) -> list[str]:
    """Keys of every object in the shared storage folder, as LocalStorage lists them: temporary files and dot
    folders (the key locks in `.locks/`) hold no keys."""
    root = shared / "packages"
    keys = [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()]
    return sorted(key for key in keys if not any(part.startswith(".") for part in key.split("/")))
