"""Shared fixtures: settings in a temporary folder, the app under webtest, a user with a known password.

And a check: a test that touches a file beside the repository fails (tests.support.confinement)."""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import pytest
import webtest

from pypicloud_lite import secrets as secrets_module
from pypicloud_lite.config import Settings, load_settings
from pypicloud_lite.web import make_app
from tests.support.apiutil import close_app
from tests.support.aws import Moto, moto_server
from tests.support.common import UPLOADER, UPLOADER_PASSWORD, basic_auth
from tests.support.confinement import WATCH, install
from tests.support.data import REPO_ROOT
from tests.support.oidc_issuer import Issuer
from tests.support.reload import Env, open_env
from tests.support.settings import server_settings


def pytest_configure(config: pytest.Config) -> None:
    basetemp = config.option.basetemp
    install(REPO_ROOT, exempt=[basetemp] if basetemp else [])


def confined() -> AbstractContextManager[None]:
    return nullcontext() if WATCH.active is None else WATCH.active.checked()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, object, object]:
    with confined():
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    with confined():
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, object, object]:
    with confined():
        return (yield)


@pytest.fixture(scope="session")
def moto() -> Iterator[Moto]:
    """One moto HTTP server for the whole run; each test makes its own bucket."""
    with moto_server() as server:
        yield server


# SSM and Secrets Manager on moto, for settings that name secrets (pypicloud_lite/secrets.py).


@pytest.fixture
def fetches(moto: Moto, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """SSM and Secrets Manager on moto for the resolver; the names it fetches, in order."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_SSM", moto.endpoint_url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", moto.endpoint_url)
    seen: list[str] = []
    real_factory = secrets_module._boto3_client

    def counting_factory(service: str, **options: Any) -> Any:
        client = real_factory(service, **options)

        def record(params: dict[str, Any], **_: Any) -> None:
            seen.append(str(params.get("Name") or params.get("SecretId")))

        client.meta.events.register("before-parameter-build.ssm.GetParameter", record)
        client.meta.events.register("before-parameter-build.secrets-manager.GetSecretValue", record)
        return client

    monkeypatch.setattr(secrets_module, "_boto3_client", counting_factory)
    return seen


@pytest.fixture
def ssm(moto: Moto) -> Iterator[Callable[[str, str], None]]:
    """put(name, value): a SecureString parameter, created or overwritten; all removed afterwards."""
    client = moto.client("ssm")
    names: set[str] = set()

    def put(name: str, value: str) -> None:
        client.put_parameter(Name=name, Value=value, Type="SecureString", Overwrite=True)
        names.add(name)

    yield put
    for name in names:
        client.delete_parameter(Name=name)


@pytest.fixture
def secret(moto: Moto) -> Iterator[Callable[[str, str], None]]:
    client = moto.client("secretsmanager")
    names: set[str] = set()

    def put(name: str, value: str) -> None:
        if name in names:
            client.put_secret_value(SecretId=name, SecretString=value)
        else:
            client.create_secret(Name=name, SecretString=value)
            names.add(name)

    yield put
    for name in names:
        client.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)


@pytest.fixture
def raw_settings(tmp_path: Path) -> dict[str, Any]:
    return server_settings(tmp_path)


@pytest.fixture
def settings(raw_settings: dict[str, Any]) -> Settings:
    return load_settings(raw_settings, environ={})


@pytest.fixture
def testapp(settings: Settings) -> Iterator[webtest.TestApp]:
    app = webtest.TestApp(make_app(settings))
    yield app
    close_app(app)


@pytest.fixture
def auth() -> dict[str, str]:
    return basic_auth(UPLOADER, UPLOADER_PASSWORD)


# Reload environments (tests/support/reload.py): a local one, and local storage on each kind of cache.


@pytest.fixture
def local_env(request: pytest.FixtureRequest, raw_settings: dict[str, Any], tmp_path: Path) -> Iterator[Env]:
    with open_env("local", raw_settings, request, tmp_path / "dists") as opened:
        yield opened


@pytest.fixture(params=["local", "local+postgresql", "local+dynamo"])
def cache_env(request: pytest.FixtureRequest, raw_settings: dict[str, Any], tmp_path: Path) -> Iterator[Env]:
    """Local storage (whose ETags change with a rewrite of the same bytes) on each kind of cache."""
    with open_env(request.param, raw_settings, request, tmp_path / "dists") as opened:
        yield opened


@pytest.fixture
def oidc_issuer() -> Iterator[Issuer]:
    """A local OIDC issuer (GitHub's stand-in at its root, GitLab's at /gitlab) and Actions' ID-token endpoint."""
    with Issuer().serving() as issuer:
        yield issuer
