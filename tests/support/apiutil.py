"""Helpers for the management API tests: extra users, app builders, uploads and error checks."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import webtest
from argon2 import PasswordHasher

from pypicloud_lite.config import load_settings
from pypicloud_lite.web import make_app
from tests.support.common import basic_auth, services
from tests.support.distbuilder import build_sdist, build_wheel
from tests.support.legacy import JSON_V1, upload_dist
from tests.support.settings import NO_UPLOADER, server_settings

# Every extra user shares one password, hashed once per session with cheap argon2 parameters:
# verification reads the parameters from the hash, so each login costs well under a millisecond
# instead of ~50 ms, and the code under test still runs real argon2.
_CHEAP = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
PASSWORD = "open sesame 42"
PASSWORD_HASH = _CHEAP.hash(PASSWORD)
_HASHES: dict[str, str] = {PASSWORD: PASSWORD_HASH}

ADMIN = "admin"
BOB = "bob"
CAROL = "carol"
REALM = 'Basic realm="pypicloud_lite"'
TOKEN_USER = "__token__"


def memo_hash(password: str) -> str:
    """A cheap argon2 hash, computed once per password per session (monkeypatched into the SQL backend)."""
    if password not in _HASHES:
        _HASHES[password] = _CHEAP.hash(password)
    return _HASHES[password]


def creds(user: str, password: str = PASSWORD) -> dict[str, str]:
    return basic_auth(user, password)


def token_auth(secret: str) -> dict[str, str]:
    return basic_auth(TOKEN_USER, secret)


def static_users(*names: str) -> dict[str, str]:
    """`user.<name>` settings for users who all have PASSWORD."""
    return {f"user.{name}": PASSWORD_HASH for name in names}


def base_settings(root: Path) -> dict[str, Any]:
    """Local storage and an SQLite cache under `root`, no upload spool, nobody: for module-scoped apps (conftest's
    are per test)."""
    return server_settings(root, {**NO_UPLOADER, "upload.spool_dir": None})


def sql_settings(raw: dict[str, Any]) -> dict[str, Any]:
    """The conftest settings with users, groups and grants in SQL tables on the cache database."""
    kept = {k: v for k, v in raw.items() if not k.startswith("user.") and k != "auth.admins"}
    return {**kept, "auth.backend": "sql"}


def build_app(raw: dict[str, Any]) -> webtest.TestApp:
    return webtest.TestApp(make_app(load_settings(raw, environ={})))


def close_app(testapp: webtest.TestApp) -> None:
    found = services(testapp.app)
    # Its flushing thread would retry a gone cache, and call AWS in later tests, until the run ends.
    found.downloads.close()
    found.index.cache.close()
    close = getattr(found.access, "close", None)
    if close is not None:
        close()


@contextmanager
def running(raw: dict[str, Any]) -> Iterator[webtest.TestApp]:
    testapp = build_app(raw)
    try:
        yield testapp
    finally:
        close_app(testapp)


def upload_wheel(
    testapp: webtest.TestApp,
    headers: dict[str, str],
    dist_dir: Path,
    name: str,
    version: str,
    status: int = 200,
    **build: Any,
) -> Path:
    """Build a wheel and upload it; the answer must have `status`."""
    path = build_wheel(dist_dir, name, version, **build)
    resp = upload_dist(testapp, headers, path, name, version)
    assert resp.status_int == status, resp.body
    return path


def upload_sdist(
    testapp: webtest.TestApp,
    headers: dict[str, str],
    dist_dir: Path,
    name: str,
    version: str,
    status: int = 200,
    **build: Any,
) -> Path:
    path = build_sdist(dist_dir, name, version, **build)
    resp = upload_dist(testapp, headers, path, name, version)
    assert resp.status_int == status, resp.body
    return path


def call(
    testapp: webtest.TestApp,
    method: str,
    url: str,
    headers: dict[str, str] | None = None,
    json: Any = None,
    body: bytes | None = None,
) -> webtest.TestResponse:
    """Any request, any answer: the test checks the status itself."""
    kwargs: dict[str, Any] = {"method": method, "headers": headers or {}, "expect_errors": True}
    if json is not None:
        return getattr(testapp, f"{method.lower()}_json")(url, json, headers=headers or {}, expect_errors=True)
    if body is not None:
        kwargs["body"] = body
        kwargs["content_type"] = "application/json"
    return testapp.request(url, **kwargs)


def assert_error(resp: webtest.TestResponse, status: int, contains: str = "") -> str:
    """An error answer in the one shape web/errors.py gives: status, reason = message, JSON body."""
    assert resp.status_int == status, (resp.status, resp.body[:500])
    assert resp.content_type == "application/json"
    message: str = resp.json["message"]
    assert resp.json["status"] == status
    assert resp.status == f"{status} {message}"
    assert contains.lower() in message.lower(), message
    if status == 401:
        assert resp.headers["WWW-Authenticate"] == REALM
    return message


def simple_json(testapp: webtest.TestApp, project: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    resp = testapp.get(f"/simple/{project}/", headers={"Accept": JSON_V1, **(headers or {})})
    found: dict[str, Any] = resp.json
    return found


def simple_filenames(testapp: webtest.TestApp, project: str, headers: dict[str, str] | None = None) -> list[str]:
    return [f["filename"] for f in simple_json(testapp, project, headers)["files"]]
