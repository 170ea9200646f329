"""Fixtures for the web tests: built distributions, and projects uploaded through the legacy API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import webtest

from pypicloud_lite.config import load_settings
from pypicloud_lite.service import PackageIndex
from pypicloud_lite.web import make_app
from tests.support.apiutil import ADMIN, BOB, creds, memo_hash, sql_settings
from tests.support.common import UPLOADER, UPLOADER_PASSWORD, basic_auth, services
from tests.support.distbuilder import build_wheel
from tests.support.settings import server_settings
from tests.support.upstreams import Hosted, JsonIndex
from tests.support.webapp import Shared, Uploaded, upload_foo_bar


@pytest.fixture
def dist_dir(tmp_path: Path) -> Path:
    return tmp_path / "dist"


@pytest.fixture
def index(testapp: webtest.TestApp) -> PackageIndex:
    return services(testapp.app).index


@pytest.fixture
def uploaded(testapp: webtest.TestApp, auth: dict[str, str], dist_dir: Path) -> Uploaded:
    return upload_foo_bar(testapp, auth, dist_dir)


@pytest.fixture(scope="session")
def readonly(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shared]:
    root = tmp_path_factory.mktemp("readonly")
    # Neither an upload spool nor admins: the defaults.
    settings = load_settings(server_settings(root, {"upload.spool_dir": None, "auth.admins": None}), environ={})
    app = make_app(settings)
    testapp = webtest.TestApp(app)
    dists = upload_foo_bar(testapp, basic_auth(UPLOADER, UPLOADER_PASSWORD), root / "dist")
    yield Shared(app=testapp, wheel=dists.wheel, sdist=dists.sdist)
    services(app).index.cache.close()


@pytest.fixture
def cheap_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SQL access backend hashes new passwords once per password, not once per user (argon2 is slow)."""
    monkeypatch.setattr("pypicloud_lite.access.sql.hash_password", memo_hash)


@pytest.fixture
def sql_raw(raw_settings: dict[str, Any]) -> dict[str, Any]:
    """The SQL access backend, where nobody may write by default: grants are what let a user upload."""
    return {**sql_settings(raw_settings), "pypi.default_write": ""}


@pytest.fixture
def admin() -> dict[str, str]:
    """Basic credentials of ADMIN (apiutil.PASSWORD)."""
    return creds(ADMIN)


@pytest.fixture
def bob() -> dict[str, str]:
    """Basic credentials of BOB (apiutil.PASSWORD)."""
    return creds(BOB)


@pytest.fixture
def cpkg_upstream(tmp_path: Path) -> Iterator[JsonIndex]:
    """An upstream with cpkg 1.0 (uploaded 2024-03-01), 2.0 (2024-04-01) and 3.0 (no upload time): the cooldown's."""
    index = JsonIndex()
    dists = tmp_path / "upstream-dists"
    index.add(
        "cpkg",
        Hosted(build_wheel(dists, "cpkg", "1.0"), upload_time="2024-03-01T00:00:00Z"),
        Hosted(build_wheel(dists, "cpkg", "2.0"), upload_time="2024-04-01T00:00:00Z"),
        Hosted(build_wheel(dists, "cpkg", "3.0"), upload_time=None),
    )
    yield index
    index.stop()
