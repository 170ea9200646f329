"""pip and uv through the upstream proxy, with this index as their only index: private packages, public dependencies."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.distbuilder import build_wheel
from tests.support.harness import Clients, Server, start_server
from tests.support.upstreams import Hosted, JsonIndex


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JsonIndex]:
    index = JsonIndex()
    dists = tmp_path_factory.mktemp("upstream-dists")
    index.add("pubdep", Hosted(build_wheel(dists, "pubdep", "2.0")), Hosted(build_wheel(dists, "pubdep", "1.0")))
    index.add("corp-tool", Hosted(build_wheel(dists, "corp-tool", "99.0")))
    yield index
    index.stop()


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory, upstream: JsonIndex) -> Iterator[Server]:
    extra = {"upstream.indexes": "main", "upstream.main.url": upstream.url}
    running = start_server(tmp_path_factory.mktemp("proxy"), extra=extra)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def clients(proxy: Server, tmp_path_factory: pytest.TempPathFactory) -> Clients:
    found = Clients(proxy, tmp_path_factory.mktemp("client-home"))
    private = tmp_path_factory.mktemp("private-dists")
    found.twine(
        build_wheel(private, "corp-app", "1.0", requires_dist=("pubdep>=1.0",)),
        build_wheel(private, "corp-tool", "1.0"),
    ).check()
    return found


def test_pip_installs_a_private_package_and_its_public_dependency(
    clients: Clients, upstream: JsonIndex, tmp_path: Path
) -> None:
    python = clients.new_venv(tmp_path / "venv")
    clients.pip_install(python, "corp-app").check()
    assert clients.module_version(python, "corp_app") == "1.0"
    assert clients.module_version(python, "pubdep") == "2.0"
    assert upstream.hits["/files/pubdep-2.0-py3-none-any.whl"] == 1


def test_uv_installs_a_private_package_and_its_public_dependency(
    clients: Clients, proxy: Server, tmp_path: Path
) -> None:
    python = clients.new_venv(tmp_path / "venv")
    clients.uv("pip", "install", "--python", python, "--index-url", proxy.simple_url, "corp-app", "pubdep==1.0").check()
    assert clients.module_version(python, "corp_app") == "1.0"
    assert clients.module_version(python, "pubdep") == "1.0"


@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_a_private_name_is_never_taken_from_upstream(
    clients: Clients, proxy: Server, tmp_path: Path, installer: str
) -> None:
    python = clients.new_venv(tmp_path / "venv")
    if installer == "pip":
        clients.pip_install(python, "corp-tool").check()
    else:
        clients.uv("pip", "install", "--python", python, "--index-url", proxy.simple_url, "corp-tool").check()
    assert clients.module_version(python, "corp_tool") == "1.0"
