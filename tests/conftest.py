"""Shared fixtures: settings in a temporary folder, the app under webtest, a user with a known password."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import webtest

from pypicloud_lite.config import Settings, load_settings
from pypicloud_lite.web import make_app
from tests.support.aws import Moto, moto_server
from tests.support.common import UPLOADER, UPLOADER_HASH, UPLOADER_PASSWORD, basic_auth, services


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
        f"user.{UPLOADER}": UPLOADER_HASH,
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


@pytest.fixture
def auth() -> dict[str, str]:
    return basic_auth(UPLOADER, UPLOADER_PASSWORD)
