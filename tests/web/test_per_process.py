"""The paste entry point builds one app per process: a child forked after loading it never uses the parent's."""

from __future__ import annotations

import json
import os
from pathlib import Path

import webtest

from pypicloud_lite.web import main
from tests.support.common import services
from tests.support.settings import server_settings


def test_a_forked_process_builds_its_own_app(tmp_path: Path) -> None:
    app = main({}, **server_settings(tmp_path))
    parent = services(app)
    reading, writing = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, and leave without running the parent's clean-up
        try:
            child = services(app)
            status = webtest.TestApp(app).get("/simple/", extra_environ={"HTTP_HOST": "localhost"}).status_int
            report = {
                "own": child is not parent,
                "engine": child.index.cache is not parent.index.cache,
                "status": status,
            }
            os.write(writing, json.dumps(report).encode())
        finally:
            os._exit(0)
    os.close(writing)
    with os.fdopen(reading) as pipe:
        report = json.loads(pipe.read() or "{}")
    os.waitpid(pid, 0)
    try:
        assert report == {"own": True, "engine": True, "status": 200}
        assert services(app) is parent  # the parent keeps its own
    finally:
        parent.index.cache.close()
