"""ppc-cdn-report: changes, invalidations and paths of the last N days, and their cost against a naive purge."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta

from pypicloud_lite.cache import build_cache
from pypicloud_lite.cdn import build_report, format_report, turn_off
from pypicloud_lite.config import load_ini
from pypicloud_lite.errors import PypicloudLiteError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ppc-cdn-report", description=__doc__)
    parser.add_argument("ini", help="the server's ini file (its cache holds the outbox history)")
    parser.add_argument("--days", type=int, default=30, help="how many days back (default 30)")
    parser.add_argument(
        "--turn-off",
        action="store_true",
        help="forget the index's CDN: writers stop recording purges (remove cdn.* from every ini first)",
    )
    args = parser.parse_args(argv)
    if args.days < 1:
        parser.error("--days must be at least 1")
    now = datetime.now(UTC)
    try:
        cache = build_cache(load_ini(args.ini).cache)
        try:
            if args.turn_off:
                forgotten = turn_off(cache)
                print(f"the index's CDN {forgotten} is off" if forgotten else "the index has no CDN")
                return 0
            history = cache.cdn_history(now - timedelta(days=args.days))
        finally:
            cache.close()
    except PypicloudLiteError as exc:
        print(f"ppc-cdn-report: {exc.message}", file=sys.stderr)
        return 1
    print(format_report(build_report(history, args.days, now)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
