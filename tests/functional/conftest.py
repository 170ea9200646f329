"""Session fixtures for the end-to-end tests: one server, the clients, and the corpus uploaded once."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from typing import Any

import pytest

from tests.support.distbuilder import build_sdist, build_wheel
from tests.support.harness import (
    FOO,
    RUNNING,
    UNICODE_SUMMARY,
    YANK_REASON,
    Clients,
    Corpus,
    Server,
    start_server,
)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    if report.failed:
        for server in RUNNING:
            report.sections.append((f"pserve {server.url} stderr", server.stderr()))
    return report


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    dists = tmp_path_factory.mktemp("dists")
    legacy = tmp_path_factory.mktemp("legacy-dists")
    foo: dict[str, Any] = {"summary": UNICODE_SUMMARY, "requires_python": ">=3.8"}
    return Corpus(
        foo_wheel=build_wheel(dists, FOO, "1.0", **foo),
        foo_tar=build_sdist(dists, FOO, "1.0", fmt="tar.gz", **foo),
        foo_zip=build_sdist(dists, FOO, "1.0", fmt="zip", **foo),
        foo_legacy=(build_wheel(legacy, FOO, "1.1", **foo), build_sdist(legacy, FOO, "1.1", fmt="tar.gz", **foo)),
        pyreq_ok=build_wheel(dists, "pyreq", "1.0", requires_python=">=3.8"),
        pyreq_py2=build_wheel(dists, "pyreq", "2.0", requires_python="<3"),
        pyreq_future=build_wheel(dists, "pyreq", "3.0", requires_python=">=3.99"),
        localver=build_wheel(dists, "localver", "1.0+cpu"),
        yankee_ok=(build_wheel(dists, "yankee", "1.0"), build_sdist(dists, "yankee", "1.0")),
        yankee_reason=build_wheel(dists, "yankee", "2.0"),
        yankee_no_reason=build_wheel(dists, "yankee", "3.0"),
    )


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("server"))
    yield running
    running.stop()


@pytest.fixture(scope="session")
def clients(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Clients:
    return Clients(server, tmp_path_factory.mktemp("client-home"))


@pytest.fixture(scope="session")
def published(corpus: Corpus, server: Server, clients: Clients) -> Corpus:
    """The corpus uploaded with twine 7, then yankee 2.0 yanked with a reason and 3.0 without one."""
    clients.twine(*corpus.published).check()
    server.yank("yankee", "2.0", YANK_REASON)
    server.yank("yankee", "3.0")
    return corpus
