"""Missing, incomplete, refused or insufficient AWS credentials are reported as such (500, naming the problem),
not as an outage (503 "try again shortly"), for S3 storage and the DynamoDB cache, at start and per request."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import pytest
import webtest
from botocore.exceptions import ClientError
from pynamodb.exceptions import GetError

from pypicloud_lite.aws_errors import credentials_problem
from pypicloud_lite.cache.dynamo.cache import DynamoCache
from pypicloud_lite.config import load_settings
from pypicloud_lite.errors import BackendCredentialsError
from pypicloud_lite.web import make_app, start_app
from tests.support.aws import Moto, iam_enforced, iam_user, use_credentials
from tests.support.common import UPLOADER, UPLOADER_PASSWORD, basic_auth, services
from tests.support.distbuilder import build_wheel
from tests.support.legacy import upload_dist
from tests.support.settings import server_settings

# Each case: the credentials (as environment variables), whether moto checks them (IAM enforced), the
# code the message names (S3's, DynamoDB's) and a phrase of it.
Case = tuple[Callable[[Moto], dict[str, str]], bool, tuple[str, str], str]
CASES: dict[str, Case] = {
    "missing": (lambda moto: {}, False, ("NoCredentialsError",) * 2, "no AWS credentials"),
    "partial": (
        lambda moto: {"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE"},
        False,
        ("PartialCredentialsError",) * 2,
        "incomplete",
    ),
    "unknown key": (
        lambda moto: {"AWS_ACCESS_KEY_ID": "AKIAUNKNOWN0000000000", "AWS_SECRET_ACCESS_KEY": "x"},
        True,
        ("InvalidAccessKeyId", "UnrecognizedClientException"),
        "access key ID is not known",
    ),
    "wrong secret": (
        lambda moto: {**iam_user(moto, None), "AWS_SECRET_ACCESS_KEY": "wrong"},
        True,
        ("SignatureDoesNotMatch", "InvalidSignatureException"),
        "secret access key does not match",
    ),
    "not permitted": (
        lambda moto: iam_user(moto, None),
        True,
        ("AccessDenied", "AccessDeniedException"),
        "not allowed",
    ),
}
# Found while the app is built (it refuses to start): S3's client needs complete credentials or none; the
# DynamoDB cache is read at start (the index's CDN state). The others are found by the first request.
AT_START = {("s3", "partial"), ("dynamo", "missing"), ("dynamo", "partial")}


@pytest.fixture
def no_logging_setup(monkeypatch: pytest.MonkeyPatch) -> None:
    """start_app sets up the process's logging (as pserve's): not the test run's."""
    monkeypatch.setattr("pypicloud_lite.web.configure_logging", lambda fmt: None)


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, str]], None]:
    """Set exactly these credential variables; boto3 finds no others (no files, no instance role)."""

    return lambda credentials: use_credentials(monkeypatch, credentials)


def _checked(enforced: bool) -> AbstractContextManager[None]:
    return iam_enforced() if enforced else nullcontext()


def assert_names_the_problem(message: str, service: str, code: str, phrase: str) -> None:
    assert "try again" not in message and "unreachable" not in message
    assert "AWS credentials" in message and phrase in message
    assert f"{service} ({code})" in message


def respond_or_refuse(
    raw: dict[str, str], request: Callable[[webtest.TestApp], webtest.TestResponse], enforced: bool
) -> tuple[webtest.TestResponse | None, str]:
    """The app's response to `request` (500 without Retry-After) and its message, or None and the message
    with which the app refused to start."""
    try:
        testapp = webtest.TestApp(make_app(load_settings(raw, environ={})))
    except BackendCredentialsError as exc:
        return None, exc.message
    with _checked(enforced):
        resp = request(testapp)
    services(testapp.app).index.cache.close()
    assert resp.status_int == 500, (resp.status, resp.body[:300])
    message: str = resp.json["message"]
    assert resp.status == f"500 {message}"
    assert "Retry-After" not in resp.headers
    return resp, message


@pytest.mark.parametrize("case", list(CASES))
def test_s3_credentials_problems_on_upload(
    case: str,
    tmp_path: Path,
    moto: Moto,
    aws_env: Callable[[dict[str, str]], None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    make_credentials, enforced, (code, _), phrase = CASES[case]
    bucket = moto.new_bucket()
    wheel = build_wheel(tmp_path / "dist", "Foo.Bar", "1.0")
    aws_env(make_credentials(moto))
    raw = server_settings(tmp_path, {"storage.dir": None, **moto.s3_settings(bucket, "packages/")})
    caplog.set_level(logging.ERROR, "pypicloud_lite")
    auth = basic_auth(UPLOADER, UPLOADER_PASSWORD)
    resp, message = respond_or_refuse(
        raw, lambda app: upload_dist(app, auth, wheel, "Foo.Bar", "1.0", status="*"), enforced
    )
    assert (resp is None) == (("s3", case) in AT_START)
    assert_names_the_problem(message, "S3", code, phrase)
    if resp is not None:
        assert any(message in record.getMessage() for record in caplog.records), caplog.text


@pytest.fixture(scope="module")
def dynamo_tables(moto: Moto, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A DynamoDB cache's settings, its tables made beforehand with moto's credentials (once: no test writes)."""
    settings = moto.dynamo_settings()
    folder = tmp_path_factory.mktemp("dynamo")
    DynamoCache.from_settings(load_settings({**settings, "storage.dir": str(folder)}, environ={}).cache).close()
    yield {**settings, "cache.create_tables": "false"}


@pytest.mark.parametrize("case", list(CASES))
def test_dynamo_credentials_problems_on_simple(
    case: str,
    tmp_path: Path,
    moto: Moto,
    dynamo_tables: dict[str, str],
    aws_env: Callable[[dict[str, str]], None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    make_credentials, enforced, (_, code), phrase = CASES[case]
    aws_env(make_credentials(moto))
    raw = server_settings(tmp_path, {"cache.url": None, "cache.migrate_on_start": None, **dynamo_tables})
    caplog.set_level(logging.ERROR, "pypicloud_lite")
    resp, message = respond_or_refuse(raw, lambda app: app.get("/simple/", status="*"), enforced)
    assert (resp is None) == (("dynamo", case) in AT_START)
    assert_names_the_problem(message, "DynamoDB", code, phrase)
    if resp is not None:
        assert any(message in record.getMessage() for record in caplog.records), caplog.text


def test_dynamo_credentials_at_start_stop_the_start(
    tmp_path: Path, moto: Moto, aws_env: Callable[[dict[str, str]], None]
) -> None:
    # cache.create_tables makes the first DynamoDB calls while the app is built.
    aws_env({})
    raw = server_settings(tmp_path, {"cache.url": None, "cache.migrate_on_start": None, **moto.dynamo_settings()})
    with pytest.raises(BackendCredentialsError, match="no AWS credentials"):
        make_app(load_settings(raw, environ={}))


def _client_error(code: str, status: int = 403) -> ClientError:
    response: Any = {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, "GetItem")


@pytest.mark.parametrize(
    ("code", "phrase"),
    [
        ("InvalidAccessKeyId", "access key ID is not known"),
        ("UnrecognizedClientException", "access key ID is not known"),
        ("SignatureDoesNotMatch", "secret access key does not match"),
        ("InvalidSignatureException", "secret access key does not match"),
        ("ExpiredToken", "expired"),
        ("ExpiredTokenException", "expired"),
        ("AccessDenied", "not allowed"),
        ("AccessDeniedException", "not allowed"),
        ("RequestTimeTooSkewed", "clock"),
    ],
)
def test_each_refusal_is_named(code: str, phrase: str) -> None:
    problem = credentials_problem(_client_error(code))
    assert problem is not None and phrase in problem
    # pynamodb wraps botocore's error: its cause decides.
    wrapped = credentials_problem(GetError("Failed to get item", _client_error(code)))
    assert wrapped == problem


@pytest.mark.parametrize("code", ["SlowDown", "ServiceUnavailable", "NoSuchKey", "ThrottlingException"])
def test_other_errors_are_not_about_credentials(code: str) -> None:
    assert credentials_problem(_client_error(code, 503)) is None


@pytest.mark.usefixtures("no_logging_setup")
def test_s3_credentials_refused_at_start_stop_the_server(
    tmp_path: Path, moto: Moto, aws_env: Callable[[dict[str, str]], None], capsys: pytest.CaptureFixture[str]
) -> None:
    # ppc-serve and pserve list the bucket once before serving: a server that cannot use it does not start.
    raw = server_settings(tmp_path, {"storage.dir": None, **moto.s3_settings(moto.new_bucket(), "packages/")})
    aws_env({})
    with pytest.raises(SystemExit) as stopped:
        start_app(raw, "127.0.0.1:0", "server.ini", "ppc-serve")
    assert stopped.value.code == 1
    err = capsys.readouterr().err
    assert "ppc-serve: AWS credentials problem with S3 (NoCredentialsError)" in err
    assert "no AWS credentials were found" in err


@pytest.mark.usefixtures("no_logging_setup")
def test_s3_unreachable_at_start_is_only_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    # An outage may end before the first request: the server starts, and says so.
    settings = {"storage.backend": "s3", "storage.bucket": "b", "storage.endpoint_url": "http://127.0.0.1:9"}
    raw = server_settings(tmp_path, {"storage.dir": None, **settings, "storage.region": "us-east-1"})
    caplog.set_level(logging.WARNING, "pypicloud_lite")
    app = start_app(raw, "127.0.0.1:0", "server.ini", "ppc-serve")
    services(app).index.cache.close()
    assert any("storage is not usable at start" in r.getMessage() for r in caplog.records), caplog.text
