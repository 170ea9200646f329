"""ppc-import: move packages in from pypicloud (S3 or files), pypiserver or a devpi export, keeping names,
versions, summaries, upload times and uploaders. Prints one line per file and a summary; exits 1 if a file failed.

Kinds and their source: pypicloud-s3 s3://<bucket>/<prefix> (the prefix as pypicloud's storage.prefix),
pypicloud-local <storage.dir>, pypiserver <packages folder>, devpi-export <the folder devpi-export wrote>.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from pypicloud_lite.cdn import writer_cache
from pypicloud_lite.config import Settings, load_ini
from pypicloud_lite.errors import PypicloudLiteError
from pypicloud_lite.importing.peer import Found
from pypicloud_lite.importing.run import FAILED, import_files, summary
from pypicloud_lite.service import PackageIndex
from pypicloud_lite.storage import build_storage

KINDS = ("pypicloud-s3", "pypicloud-local", "pypiserver", "devpi-export")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ppc-import", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("ini", help="this server's ini file")
    parser.add_argument("kind", choices=KINDS, help="the layout the source has")
    parser.add_argument("source", help="s3://bucket/prefix for pypicloud-s3, else a folder")
    parser.add_argument("--index", help="devpi-export: the index to import, user/name (default: all, if unambiguous)")
    parser.add_argument("--dry-run", action="store_true", help="say what would be imported, import nothing")
    parser.add_argument("--uploader", help="the uploader of files whose source records none")
    parser.add_argument(
        "--endpoint-url", help="pypicloud-s3: the S3 endpoint (default: the ini's storage.endpoint_url)"
    )
    args = parser.parse_args(argv)
    if args.index is not None and args.kind != "devpi-export":
        parser.error("--index is for devpi-export only")
    if args.endpoint_url is not None and args.kind != "pypicloud-s3":
        parser.error("--endpoint-url is for pypicloud-s3 only")
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(message)s")
    try:
        settings = load_ini(args.ini)
        index = PackageIndex(build_storage(settings.storage), writer_cache(settings, "import"), settings.upload)
        try:
            counts = Counter[str]()
            found = _read(args, settings)
            for outcome in import_files(index, found, dry_run=args.dry_run, uploader=args.uploader):
                counts[outcome.status] += 1
                print(outcome.line(), flush=True)
        finally:
            index.cache.close()
    except PypicloudLiteError as exc:
        print(f"ppc-import: {exc.message}", file=sys.stderr)
        return 1
    print(summary(counts, args.dry_run))
    return 1 if counts[FAILED] else 0


def _read(args: argparse.Namespace, settings: Settings) -> Iterable[Found]:
    # Each reader is imported only when chosen: the S3 one needs boto3, an optional dependency.
    if args.kind == "pypicloud-s3":
        from pypicloud_lite.importing.pypicloud_s3 import parse_s3_url, read_pypicloud_s3, s3_client

        bucket, prefix = parse_s3_url(args.source)
        s3 = settings.storage.s3
        client = s3_client(args.endpoint_url or (s3.endpoint_url if s3 else None), s3.region if s3 else None)
        return read_pypicloud_s3(client, bucket, prefix)
    if args.kind == "pypicloud-local":
        from pypicloud_lite.importing.pypicloud_local import read_pypicloud_local

        return read_pypicloud_local(Path(args.source))
    if args.kind == "pypiserver":
        from pypicloud_lite.importing.pypiserver import read_pypiserver

        return read_pypiserver(Path(args.source))
    from pypicloud_lite.importing.devpi import read_devpi_export

    return read_devpi_export(Path(args.source), args.index)


if __name__ == "__main__":
    sys.exit(main())
