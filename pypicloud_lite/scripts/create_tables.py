"""ppc-create-tables: create the DynamoDB cache tables of an ini (those that do not exist yet)."""

from __future__ import annotations

import argparse
import sys

from pypicloud_lite.config import load_ini
from pypicloud_lite.errors import PypicloudLiteError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ppc-create-tables", description=__doc__)
    parser.add_argument("ini", help="the server's ini file (cache.backend = dynamo)")
    args = parser.parse_args(argv)
    try:
        settings = load_ini(args.ini)
    except PypicloudLiteError as exc:
        print(f"ppc-create-tables: {exc.message}", file=sys.stderr)
        return 1
    if settings.cache.dynamo is None:
        print("ppc-create-tables: cache.backend is not dynamo (SQL databases use ppc-migrate)", file=sys.stderr)
        return 1
    from pynamodb.exceptions import PynamoDBException

    from pypicloud_lite.cache.dynamo.tables import build_tables, create_tables

    tables = build_tables(settings.cache.dynamo)
    try:
        created = create_tables(tables)
    except PynamoDBException as exc:
        print(f"ppc-create-tables: DynamoDB refused: {exc}", file=sys.stderr)
        return 1
    for model in tables.all():
        name = model.Meta.table_name
        print(f"{name}: {'created' if name in created else 'exists'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
