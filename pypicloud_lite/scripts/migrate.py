"""ppc-migrate: bring the SQL cache schema of an ini's database to the latest revision."""

from __future__ import annotations

import argparse
import logging
import sys

from pypicloud_lite.config import load_ini
from pypicloud_lite.db import migrate
from pypicloud_lite.db.engine import create_db_engine
from pypicloud_lite.errors import PypicloudLiteError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ppc-migrate", description=__doc__)
    parser.add_argument("ini", help="the server's ini file (its [app:main] cache.url is migrated)")
    parser.add_argument("--revision", default="head", help="target revision (default: head)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        settings = load_ini(args.ini)
        if settings.cache.backend != "sql":
            print(f"cache.backend is {settings.cache.backend!r}: there is no SQL schema to migrate")
            return 0
        engine = create_db_engine(settings.cache)
        before = migrate.current_revision(engine)
        migrate.upgrade(engine, args.revision)
        after = migrate.current_revision(engine)
        engine.dispose()
    except PypicloudLiteError as exc:
        print(f"ppc-migrate: {exc.message}", file=sys.stderr)
        return 1
    print(f"SQL cache schema: {before or 'empty'} -> {after}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
