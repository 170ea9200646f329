"""Shared fixtures: settings in a temporary folder, the app under webtest, a user with a known password."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import webtest

from pypicloud_lite.access.passwords import hash_password
from pypicloud_lite.config import Settings, load_settings
from pypicloud_lite.web import make_app
from pypicloud_lite.web.services import REGISTRY_KEY, AppServices
from tests.aws import Moto, moto_server

UPLOADER = "uploader"
UPLOADER_PASSWORD = "correct horse battery staple"
# Hashing once per session keeps the suite fast; argon2 is deliberately slow.
_UPLOADER_HASH = hash_password(UPLOADER_PASSWORD)


def require_or_skip(reason: str) -> None:
    """Skip for a missing service, or fail when CI demands every service (PPC_REQUIRE_SERVICES=1)."""
    if os.environ.get("PPC_REQUIRE_SERVICES") == "1":
        pytest.fail(f"required service missing: {reason}")
    pytest.skip(reason)


def basic_auth(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@pytest.fixture(scope="session")
def moto() -> Iterator[Moto]:
    """One moto HTTP server for the whole run; each test makes its own bucket."""
    with moto_server() as server:
        yield server


@pytest.fixture
def raw_settings(tmp_path: Path) -> dict[str, Any]:
    return {
        "storage.backend": "local",
        "storage.dir": str(tmp_path / "packages"),
        "cache.backend": "sql",
        "cache.url": f"sqlite:///{tmp_path / 'cache.sqlite'}",
        "cache.migrate_on_start": "true",
        "upload.max_size": "1MB",
        "upload.spool_dir": str(tmp_path / "spool"),
        f"user.{UPLOADER}": _UPLOADER_HASH,
        "auth.admins": UPLOADER,
    }


@pytest.fixture
def settings(raw_settings: dict[str, Any]) -> Settings:
    return load_settings(raw_settings, environ={})


@pytest.fixture
def testapp(settings: Settings) -> Iterator[webtest.TestApp]:
    app = make_app(settings)
    yield webtest.TestApp(app)
    services(app).index.cache.close()


def services(app: Any) -> AppServices:
    found: AppServices = app.registry[REGISTRY_KEY]
    return found


@pytest.fixture
def auth() -> dict[str, str]:
    return basic_auth(UPLOADER, UPLOADER_PASSWORD)
