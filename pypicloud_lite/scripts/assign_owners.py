"""ppc-assign-owners: give each project nobody owns its earliest known uploader as owner (PyPI's rule).

The SQL migration 0006 does this where one database holds the cache and the access tables; run this
where they differ (a DynamoDB cache, or a separate auth.url). Idempotent: projects with an owner or a
maintainer are left alone. Prints one line per project it looked at.
"""

from __future__ import annotations

import argparse
import logging
import sys

from pypicloud_lite.access.sql import SQLAccess
from pypicloud_lite.cache import build_cache
from pypicloud_lite.config import load_ini
from pypicloud_lite.errors import PypicloudLiteError
from pypicloud_lite.owners import assign_owners


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ppc-assign-owners", description=__doc__)
    parser.add_argument("ini", help="the server's ini file (auth.backend must be sql)")
    parser.add_argument("--dry-run", action="store_true", help="print what would be granted, grant nothing")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        settings = load_ini(args.ini)
        if settings.auth.backend != "sql":
            print(
                f"ppc-assign-owners: auth.backend is {settings.auth.backend!r}: owners are recorded only by the "
                "sql backend (with static grants, a project with grants in the ini is closed to everyone else)",
                file=sys.stderr,
            )
            return 2
        cache = build_cache(settings.cache)
        access = SQLAccess.connect(settings.auth, settings.cache)
        try:
            done = assign_owners(cache, access, dry_run=args.dry_run)
        finally:
            access.close()
            cache.close()
    except PypicloudLiteError as exc:
        print(f"ppc-assign-owners: {exc.message}", file=sys.stderr)
        return 1
    verb = "would own" if args.dry_run else "owns"
    for item in done:
        if item.username is None:
            print(f"{item.project}: left without an owner ({item.reason})")
        else:
            print(f"{item.project}: {item.username} {verb} it ({item.reason})")
    granted = sum(1 for item in done if item.username is not None)
    made = "to make" if args.dry_run else "made"
    print(f"{granted} owner grant(s) {made}; {len(done) - granted} project(s) left ownerless")
    return 0


if __name__ == "__main__":
    sys.exit(main())
