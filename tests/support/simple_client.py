"""What the pypi-simple client library reads from an index, in the shape both serializations must agree on."""

from __future__ import annotations

from pypi_simple import ACCEPT_HTML_ONLY, ACCEPT_JSON_ONLY, DistributionPackage

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
