"""ppc-create-tables creates the DynamoDB cache tables once, and refuses an SQL ini."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from pypicloud_lite.scripts import create_tables
from tests.support.aws import REGION, Moto


def test_creates_missing_tables_then_reports_them_existing(
    tmp_path: Path, moto: Moto, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = f"ppc-{uuid.uuid4().hex[:8]}-"
    ini = tmp_path / "server.ini"
    ini.write_text(
        "[app:main]\nstorage.dir = %(here)s/files\ncache.backend = dynamo\n"
        f"cache.table_prefix = {prefix}\ncache.region = {REGION}\ncache.endpoint_url = {moto.endpoint_url}\n",
        encoding="utf-8",
    )
    assert create_tables.main([str(ini)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{prefix}{t}: created" for t in ("projects", "files", "meta", "cdn")
    ]
    # The session's moto holds many tests' tables: ListTables answers 100 at a time.
    pages = moto.client("dynamodb").get_paginator("list_tables").paginate()
    names = [name for page in pages for name in page["TableNames"]]
    assert {f"{prefix}{t}" for t in ("projects", "files", "meta", "cdn")} <= set(names)
    assert create_tables.main([str(ini)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{prefix}{t}: exists" for t in ("projects", "files", "meta", "cdn")
    ]
    described = moto.client("dynamodb").describe_table(TableName=f"{prefix}files")["Table"]
    assert described["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"


def test_an_sql_ini_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ini = tmp_path / "server.ini"
    ini.write_text("[app:main]\nstorage.dir = %(here)s/files\ncache.url = sqlite://\n", encoding="utf-8")
    assert create_tables.main([str(ini)]) == 1
    assert "ppc-migrate" in capsys.readouterr().err
