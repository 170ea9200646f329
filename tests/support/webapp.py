"""Foo.Bar 1.0 (a wheel and an sdist) uploaded into an app, as the web tests' fixtures hold it, and its file URLs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import webtest

from tests.support.distbuilder import build_sdist, build_wheel
from tests.support.legacy import upload_dist

# Where the app serves Foo.Bar 1.0's files (and the wheel's PEP 658 metadata).
WHEEL_URL = "/packages/foo-bar/foo_bar-1.0-py3-none-any.whl"
SDIST_URL = "/packages/foo-bar/foo_bar-1.0.tar.gz"
METADATA_URL = WHEEL_URL + ".metadata"
ALL_URLS = [WHEEL_URL, SDIST_URL, METADATA_URL]


@dataclass(frozen=True)
class Uploaded:
    """Foo.Bar 1.0 as a wheel (Requires-Python >=3.8) and a .tar.gz sdist, both in the index."""

    wheel: Path
    sdist: Path


@dataclass(frozen=True)
class Shared:
    """An app holding `Uploaded`, shared by the tests that only read (never change it)."""

    app: webtest.TestApp
    wheel: Path
    sdist: Path


def upload_foo_bar(testapp: webtest.TestApp, auth: dict[str, str], dist_dir: Path) -> Uploaded:
    wheel = build_wheel(dist_dir, "Foo.Bar", "1.0", requires_python=">=3.8")
    sdist = build_sdist(dist_dir, "Foo.Bar", "1.0", requires_python=">=3.8")
    upload_dist(testapp, auth, wheel, "Foo.Bar", "1.0")
    upload_dist(testapp, auth, sdist, "Foo.Bar", "1.0")
    return Uploaded(wheel=wheel, sdist=sdist)
