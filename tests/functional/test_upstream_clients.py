"""pip and uv through the upstream proxy, with this index as their only index: private packages, public dependencies."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.distbuilder import build_sdist, build_wheel
from tests.support.harness import Clients, Server, start_server
from tests.support.upstreams import TINY_BACKEND, Hosted, JsonIndex

SETUPTOOLS = Path(__file__).parent.parent / "data" / "wheels" / "setuptools-80.10.2-py3-none-any.whl"


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JsonIndex]:
    index = JsonIndex()
    dists = tmp_path_factory.mktemp("upstream-dists")
    index.add("pubdep", Hosted(build_wheel(dists, "pubdep", "2.0")), Hosted(build_wheel(dists, "pubdep", "1.0")))
    index.add("corp-tool", Hosted(build_wheel(dists, "corp-tool", "99.0")))
    index.add("tiny-backend", Hosted(build_wheel(dists, "tiny-backend", "1.0", code=TINY_BACKEND)))
    index.add("setuptools", Hosted(SETUPTOOLS))
    # Fixed upload times on either side of CUTOFF.
    index.add(
        "stamped",
        Hosted(build_wheel(dists, "stamped", "1.0"), upload_time="2024-01-10T08:00:00Z"),
        Hosted(build_wheel(dists, "stamped", "2.0"), upload_time="2024-06-10T08:00:00Z"),
    )
    yield index
    index.stop()


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory, upstream: JsonIndex) -> Iterator[Server]:
    # setuptools' wheel is larger than the test servers' upload limit of 1,000,000 bytes.
    extra = {"upstream.indexes": "main", "upstream.main.url": upstream.url, "upload.max_size": "4MiB"}
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
        build_sdist(private, "corp-built", "1.0", backend=("tiny-backend", "tiny_backend")),
        build_sdist(private, "corp-setup", "1.0"),  # setuptools.build_meta
    ).check()
    return found


def install(clients: Clients, proxy: Server, tmp_path: Path, installer: str, requirement: str) -> Path:
    """`requirement` installed by pip or uv into a new venv, this index the only one; the venv's python."""
    python = clients.new_venv(tmp_path / "venv")
    if installer == "pip":
        clients.pip_install(python, requirement).check()
    else:
        clients.uv("pip", "install", "--python", python, "--index-url", proxy.simple_url, requirement).check()
    return python


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
@pytest.mark.parametrize(
    "project",
    [
        # corp-tool 99.0 upstream must not shadow this index's 1.0.
        "corp-tool",
        # Only its sdist is in the index: both build it, fetching its build backend through the proxy.
        "corp-built",
        # The same with setuptools, as most sdists need it (the wheel as published, in tests/data/wheels).
        "corp-setup",
    ],
)
def test_private_names_come_from_here_and_what_they_need_from_upstream(
    clients: Clients, proxy: Server, tmp_path: Path, installer: str, project: str
) -> None:
    python = install(clients, proxy, tmp_path, installer, project)
    assert clients.module_version(python, project.replace("-", "_")) == "1.0"


CUTOFF = "2024-03-01T00:00:00Z"


@pytest.mark.parametrize("installer", ["pip", "uv"])
def test_an_upload_date_cutoff_picks_the_version_uploaded_before_it_through_the_proxy(
    clients: Clients, proxy: Server, tmp_path: Path, installer: str
) -> None:
    """pip's --uploaded-prior-to and uv's --exclude-newer read the upstream's upload times on our proxied pages."""
    listed = proxy.project_json("stamped")
    assert listed is not None
    # 2.0 is offered: only the cutoff keeps the installer from it.
    assert listed["versions"] == ["1.0", "2.0"]
    assert [f["upload-time"] for f in listed["files"]] == ["2024-01-10T08:00:00.000000Z", "2024-06-10T08:00:00.000000Z"]
    python = clients.new_venv(tmp_path / "venv")
    if installer == "pip":
        clients.pip_install(python, "--uploaded-prior-to", CUTOFF, "stamped").check()
    else:
        index = ("--index-url", proxy.simple_url)
        clients.uv("pip", "install", "--python", python, *index, "--exclude-newer", CUTOFF, "stamped").check()
    assert clients.module_version(python, "stamped") == "1.0"
