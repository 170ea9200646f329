"""Fixtures of the import tests: the index files are imported into (local storage and SQLite)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pypicloud_lite.service import PackageIndex
from tests.support.peers import local_index


@pytest.fixture
def index(tmp_path: Path) -> Iterator[PackageIndex]:
    root = tmp_path / "index"
    root.mkdir()
    with local_index(root) as opened:
        yield opened
