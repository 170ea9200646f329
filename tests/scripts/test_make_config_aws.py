"""ppc-make-config for S3 storage and the other caches (DynamoDB, PostgreSQL, MariaDB): each combination's ini
loads, starts the app against moto or the database server, and serves /simple/ and an upload."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import webtest

from pypicloud_lite.config import load_ini
from pypicloud_lite.scripts import make_config
from pypicloud_lite.web import make_app
from tests.support.aws import REGION, Moto
from tests.support.cache import fresh_database
from tests.support.common import basic_auth, services
from tests.support.distbuilder import build_wheel
from tests.support.legacy import upload_dist

PASSWORD = "a long enough admin password"
PREFIX = "packages/"


@pytest.fixture
def kms_key(moto: Moto) -> str:
    return str(moto.client("kms").create_key()["KeyMetadata"]["Arn"])


def _storage_flags(storage: str, moto: Moto, kms_key: str) -> tuple[list[str], str]:
    if storage == "local":
        return [], ""
    bucket = moto.new_bucket()
    flags = ["--storage", "s3", "--s3-bucket", bucket, "--s3-prefix", PREFIX, "--s3-region", REGION]
    flags += ["--s3-endpoint-url", moto.endpoint_url, "--s3-sse", "aws:kms", "--s3-kms-key-id", kms_key]
    return flags, bucket


@pytest.fixture
def cache_flags(request: pytest.FixtureRequest, moto: Moto, tmp_path: Path) -> Iterator[list[str]]:
    cache = request.param
    if cache == "dynamo":
        prefix = f"ppc-{uuid.uuid4().hex[:8]}-"
        yield ["--cache", "dynamo", "--dynamo-region", REGION, "--dynamo-table-prefix", prefix]
        return
    with fresh_database(cache, tmp_path) as url:
        yield ["--cache-url", url]


def _write(ini: Path, flags: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert make_config.main([str(ini), "-y", "--access", "sql", "--admin", "ops", "--password-stdin", *flags]) == 0


@pytest.mark.parametrize(
    ("storage", "cache_flags"),
    [("s3", "sqlite"), ("s3", "postgresql"), ("s3", "dynamo"), ("local", "dynamo"), ("local", "mariadb")],
    indirect=["cache_flags"],
)
def test_each_combination_serves(
    storage: str,
    cache_flags: list[str],
    moto: Moto,
    kms_key: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    storage_flags, bucket = _storage_flags(storage, moto, kms_key)
    flags = [*storage_flags, *cache_flags]
    if "dynamo" in flags:
        flags += ["--dynamo-endpoint-url", moto.endpoint_url, "--create-tables"]
    ini = tmp_path / "conf" / "server.ini"
    _write(ini, flags, monkeypatch)
    text = ini.read_text()
    settings = load_ini(ini, environ={})
    assert settings.storage.backend == storage
    assert settings.cache.backend == ("dynamo" if "dynamo" in flags else "sql")
    assert "aws_access_key_id" not in text.lower()

    testapp = webtest.TestApp(make_app(settings))
    try:
        assert testapp.get("/simple/").status_int == 200
        wheel = build_wheel(tmp_path / "dist", "Foo.Bar", "1.0")
        assert upload_dist(testapp, basic_auth("ops", PASSWORD), wheel, "Foo.Bar", "1.0").status_int == 200
        assert wheel.name in testapp.get("/simple/foo-bar/").text
    finally:
        services(testapp.app).index.cache.close()
    if storage == "s3":
        head = moto.client("s3").head_object(Bucket=bucket, Key=f"{PREFIX}foo-bar/{wheel.name}")
        assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"] == kms_key
        assert settings.storage.s3 is not None and settings.storage.s3.endpoint_url == moto.endpoint_url


def test_a_url_with_percent_signs_is_written_as_it_is(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # URL-encoded passwords and PostgreSQL's options=-csearch_path%3D...: the ini must not read them as interpolation.
    url = "postgresql+psycopg://ppc:p%40ss@db.internal/ppc?options=-csearch_path%3Dppc"
    ini = tmp_path / "server.ini"
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert make_config.main([str(ini), "-y", "--access", "static", "--cache-url", url]) == 0
    assert load_ini(ini, environ={}).cache.url == url


def test_interactive_s3_and_dynamo(
    tmp_path: Path, moto: Moto, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bucket = moto.new_bucket()
    answers = iter(
        [
            "s3",  # storage
            bucket,
            "",  # prefix: packages/
            "eu-west-1",
            "",  # endpoint: AWS's
            "AES256",
            "dynamo",  # cache
            "eu-west-1",
            "team-",
            "",  # endpoint: AWS's
            "no",  # create tables
            "static",
            "ops",
            "",  # listen
            "authenticated",
            "",  # public URL
        ]
    )
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda prompt: next(answers))
    monkeypatch.setattr("getpass.getpass", lambda prompt: PASSWORD)
    ini = tmp_path / "server.ini"
    assert make_config.main([str(ini)]) == 0
    assert next(answers, None) is None
    settings = load_ini(ini, environ={})
    s3, dynamo = settings.storage.s3, settings.cache.dynamo
    assert s3 is not None and (s3.bucket, s3.prefix, s3.region, s3.sse) == (bucket, PREFIX, "eu-west-1", "AES256")
    assert s3.endpoint_url is None and s3.kms_key_id is None
    assert dynamo is not None and (dynamo.region, dynamo.table_prefix, dynamo.create_tables) == (
        "eu-west-1",
        "team-",
        False,
    )
    assert "ppc-create-tables" in ini.read_text()
    # What to do next is said once the file is written.
    printed = capsys.readouterr().out
    assert f"ppc-create-tables {ini}" in printed and f"ppc-make-config {ini} --iam-policy" in printed

    assert make_config.main([str(ini), "--iam-policy", "--account", "123456789012"]) == 0
    resources = json.dumps(json.loads(capsys.readouterr().out))
    assert f"arn:aws:s3:::{bucket}/{PREFIX}*" in resources
    assert "arn:aws:dynamodb:eu-west-1:123456789012:table/team-files" in resources


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--storage", "s3"], "needs a bucket"),
        (["--storage", "s3", "--s3-bucket", "b", "--s3-sse", "AES256", "--s3-kms-key-id", "k"], "aws:kms"),
    ],
)
def test_unusable_aws_answers_write_nothing(
    flags: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ini = tmp_path / "server.ini"
    assert make_config.main([str(ini), "-y", "--access", "static", *flags]) == 1
    assert not ini.exists()
    assert message in capsys.readouterr().err
