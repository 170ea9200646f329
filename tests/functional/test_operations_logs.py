"""A real pserve with `log.format = json` and `log.access = json`: every line it writes is one JSON object,
requests are logged once each with the client and the user, and no credential reaches the log."""

from __future__ import annotations

import base64
import json
import urllib.request
from pathlib import Path

from tests.support.common import UPLOADER, UPLOADER_PASSWORD
from tests.support.harness import start_server


def _get(url: str, user: str, password: str) -> int:
    pair = base64.b64encode(f"{user}:{password}".encode()).decode()
    request = urllib.request.Request(url, headers={"Authorization": f"Basic {pair}", "X-Request-Id": "probe-1"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as refused:
        return int(refused.code)


def test_pserve_writes_json_lines_without_secrets(tmp_path: Path) -> None:
    extra = {"log.format": "json", "log.access": "json", "metrics.enabled": "true"}
    server = start_server(tmp_path / "server", extra=extra)
    try:
        assert _get(server.url + "/api/projects", UPLOADER, UPLOADER_PASSWORD) == 200
        assert _get(server.url + "/api/projects", UPLOADER, "not-the-password") == 401
        status, _headers, body = server.get("/metrics")
        assert status == 200 and b"ppc_http_requests_total" in body
    finally:
        server.stop()
    # pserve prints "Starting server in PID n." itself, and the app its start banner (for a person at the
    # console), not through logging; every other line is one JSON object.
    console = ("Starting server", "pypicloud_lite: serving on")
    lines = [line for line in server.stderr().splitlines() if line.strip() and not line.startswith(console)]
    entries = [json.loads(line) for line in lines]
    access = [e for e in entries if e["logger"] == "pypicloud_lite.access_log" and e["path"] == "/api/projects"]
    assert [(e["status"], e["user"], e["client"], e["request_id"]) for e in access] == [
        (200, UPLOADER, "127.0.0.1", "probe-1"),
        (401, "-", "127.0.0.1", "probe-1"),
    ]
    [failure] = [e for e in entries if e["message"].startswith("audit:")]
    assert "login.failure" in failure["message"] and failure["level"] == "WARNING"
    text = server.stderr()
    assert UPLOADER_PASSWORD not in text and "not-the-password" not in text
    assert base64.b64encode(f"{UPLOADER}:{UPLOADER_PASSWORD}".encode()).decode() not in text
