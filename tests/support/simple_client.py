"""What the pypi-simple client library reads from an index, in the shape both serializations must agree on."""

from __future__ import annotations

import hashlib
from pathlib import Path

from pypi_simple import ACCEPT_HTML_ONLY, ACCEPT_JSON_ONLY, DistributionPackage

from tests.support.legacy import wheel_metadata

MODES = {"html": ACCEPT_HTML_ONLY, "json": ACCEPT_JSON_ONLY}
PackageKey = tuple[
    str, str, tuple[tuple[str, str], ...], str | None, bool, str | None, bool, tuple[tuple[str, str], ...]
]


def key(pkg: DistributionPackage) -> PackageKey:
    """What both serializations must agree on.

    PEP 592's HTML `data-yanked=""` (no reason) reads as "" where JSON's `"yanked": true` reads as None,
    and a file without metadata has no attribute in HTML (None) but `"core-metadata": false` in JSON.
    """
    return (
        pkg.filename,
        pkg.url,
        tuple(sorted(pkg.digests.items())),
        pkg.requires_python,
        pkg.is_yanked,
        pkg.yanked_reason or None,
        bool(pkg.has_metadata),
        tuple(sorted((pkg.metadata_digests or {}).items())),
    )


def expected_key(path: Path, url: str, *, yanked: bool = False, reason: str | None = None) -> PackageKey:
    """The key of a built distribution served at `url` (no Requires-Python; a wheel's metadata is served)."""
    wheel = path.name.endswith(".whl")
    meta = (("sha256", hashlib.sha256(wheel_metadata(path)).hexdigest()),) if wheel else ()
    digests = (("sha256", hashlib.sha256(path.read_bytes()).hexdigest()),)
    return (path.name, url, digests, None, yanked, reason, wheel, meta)
