"""One server worker process for the multiprocess metrics test: `python -m tests.support.metrics_worker SETTINGS N`.

Builds the app from the JSON settings in the file SETTINGS (PROMETHEUS_MULTIPROC_DIR set by the caller), answers
N requests for /simple/, then prints what its /metrics says (every worker's counts, summed) and exits.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import webtest

from pypicloud_lite.config import load_settings
from pypicloud_lite.web import make_app


def main(settings_file: str, requests: int) -> None:
    raw = json.loads(Path(settings_file).read_text(encoding="utf-8"))
    app = webtest.TestApp(make_app(load_settings(raw, environ={})), extra_environ={"REMOTE_ADDR": "127.0.0.1"})
    for _ in range(requests):
        app.get("/simple/", headers={"Accept": "text/html"})
    sys.stdout.write(app.get("/metrics").text)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
