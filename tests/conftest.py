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
from tests.support.common import UPLOADER, UPLOADER_PASSWORD, basic_auth, services
from tests.support.settings import server_settings


@pytest.fixture(scope="session")
def moto() -> Iterator[Moto]:
    """One moto HTTP server for the whole run; each test makes its own bucket."""
    with moto_server() as server:
        yield server


@pytest.fixture
def raw_settings(tmp_path: Path) -> dict[str, Any]:
    return server_settings(tmp_path)


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
