"""A server process that asks its upstream proxy for one page, for a test to kill mid-fetch.

Run as `python -m tests.support.upstream_leader '<settings as JSON>' <name>` from the repository's root.
"""

from __future__ import annotations

import json
import sys

from pypicloud_lite.config import load_settings
from pypicloud_lite.web import make_app
from tests.support.common import services


def main() -> None:
    settings, name = json.loads(sys.argv[1]), sys.argv[2]
    pages = services(make_app(load_settings(settings, environ={}))).upstream
    assert pages is not None
    pages.proxy.listing(name)


if __name__ == "__main__":
    main()
