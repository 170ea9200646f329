"""The log output: secrets redacted whatever logged them, and one JSON object per line with `log.format = json`."""

from __future__ import annotations

import io
import json
import logging

import pytest

from pypicloud_lite.log_format import REDACTED, JsonFormatter, Redactor, configure, redact

TOKEN = "ppc_0123456789abcdef_" + "ab" * 24
PRESIGNED = (
    "https://bucket.s3.amazonaws.com/p/x-1.0.whl?X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Credential=AKIAEXAMPLE%2F20260101&X-Amz-Signature=deadbeef"
)
JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJyZXBvIn0.c2lnbmF0dXJl"


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("login with password=hunter2 failed", "hunter2"),
        ('{"password": "open sesame", "name": "bob"}', "open sesame"),
        ("headers: {'Authorization': 'Basic Ym9iOnNlY3JldA=='}", "Ym9iOnNlY3JldA=="),
        ("Authorization: Bearer abcdefgh12345678", "abcdefgh12345678"),
        (f"uploaded with {TOKEN}", TOKEN),
        (f"redirect to {PRESIGNED}", "deadbeef"),
        (f"redirect to {PRESIGNED}", "AKIAEXAMPLE"),
        (f"exchanging {JWT}", JWT),
        ("web.session_secret = 0123456789abcdef0123456789abcdef", "0123456789abcdef0123456789abcdef"),
    ],
)
def test_secrets_are_redacted(text: str, secret: str) -> None:
    cleaned = redact(text)
    assert secret not in cleaned and REDACTED in cleaned, cleaned


def test_what_is_not_secret_stays() -> None:
    line = "audit: bob token.revoke target=0123456789abcdef from 10.0.0.1: of bob"
    assert redact(line) == line
    assert redact(f"{PRESIGNED.split('?', maxsplit=1)[0]} served") == f"{PRESIGNED.split('?', maxsplit=1)[0]} served"
    assert redact(PRESIGNED) == PRESIGNED.split("?", maxsplit=1)[0] + "?" + REDACTED


def _logger(name: str, fmt: str) -> tuple[logging.Logger, io.StringIO]:
    out = io.StringIO()
    logger = logging.getLogger(name)
    logger.handlers[:] = [logging.StreamHandler(out)]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    configure(fmt, logger)
    return logger, out


def test_json_lines_carry_extras_and_tracebacks_without_secrets() -> None:
    logger, out = _logger("tests.log_format.json", "json")
    logger.info("GET %s %d", "/simple/", 200, extra={"request_id": "r1", "bytes": 12})
    try:
        raise ValueError(f"bad upload with {TOKEN}")
    except ValueError:
        logger.exception("upload by %s failed", "bob")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["message"] == "GET /simple/ 200" and first["level"] == "INFO"
    assert (first["request_id"], first["bytes"], first["logger"]) == ("r1", 12, "tests.log_format.json")
    assert second["message"] == "upload by bob failed" and "ValueError" in second["exception"]
    assert TOKEN not in out.getvalue()


def test_text_format_keeps_the_handlers_formatter_and_redacts() -> None:
    logger, out = _logger("tests.log_format.text", "text")
    logger.warning("Authorization: %s", "Basic Ym9iOnNlY3JldA==")
    assert out.getvalue() == f"Authorization: {REDACTED}\n"
    formatter = logger.handlers[0].formatter
    assert isinstance(formatter, Redactor) and not isinstance(formatter.inner, (JsonFormatter, Redactor))
    configure("text", logger)  # twice: still one redactor
    again = logger.handlers[0].formatter
    assert isinstance(again, Redactor) and not isinstance(again.inner, Redactor)
    logger.warning("password=%s", "hunter2")
    assert "hunter2" not in out.getvalue()


def test_the_server_configures_every_handler_the_ini_made(monkeypatch: pytest.MonkeyPatch) -> None:
    root, own = io.StringIO(), io.StringIO()
    monkeypatch.setattr(logging.getLogger(), "handlers", [logging.StreamHandler(root)])
    quiet = logging.getLogger("tests.log_format.own_handler")
    monkeypatch.setattr(quiet, "handlers", [logging.StreamHandler(own)])
    monkeypatch.setattr(quiet, "propagate", False)
    configure("json")
    quiet.warning("token=%s", "abc123")
    logging.getLogger("tests.log_format.propagating").warning("plain")
    assert json.loads(own.getvalue())["message"] == f"token={REDACTED}"
    assert json.loads(root.getvalue())["message"] == "plain"


def test_redaction_leaves_the_record_as_logged_for_other_handlers() -> None:
    logger, out = _logger("tests.log_format.records", "text")
    seen: list[logging.LogRecord] = []
    capture = logging.Handler()
    capture.emit = seen.append  # type: ignore[method-assign]
    logger.addHandler(capture)
    logger.warning("token=%s for %s", "abc123", "bob")
    assert REDACTED in out.getvalue() and "abc123" not in out.getvalue()
    assert (seen[0].msg, seen[0].args) == ("token=%s for %s", ("abc123", "bob"))
