"""ppc-migrate brings an ini's SQL cache to head; ppc-gen-password prints a verifiable argon2 hash."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from pypicloud_lite.access.passwords import verify_password
from pypicloud_lite.config import load_ini
from pypicloud_lite.db import migrate as schema
from pypicloud_lite.db.engine import create_db_engine
from pypicloud_lite.errors import ConfigError
from pypicloud_lite.scripts import gen_password, migrate


def test_ppc_migrate_upgrades_to_head_and_is_idempotent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ini = tmp_path / "server.ini"
    ini.write_text(
        "[app:main]\nstorage.dir = %(here)s/files\ncache.url = sqlite:///%(here)s/cache.sqlite\n", encoding="utf-8"
    )
    engine = create_db_engine(load_ini(ini, environ={}).cache)
    with pytest.raises(ConfigError, match="ppc-migrate"):
        schema.require_head(engine)
    assert migrate.main([str(ini)]) == 0
    assert migrate.main([str(ini)]) == 0
    schema.require_head(engine)
    assert capsys.readouterr().out.splitlines() == [
        f"SQL cache schema: empty -> {schema.head_revision()}",
        f"SQL cache schema: {schema.head_revision()} -> {schema.head_revision()}",
    ]
    engine.dispose()


def test_ppc_migrate_reports_a_bad_ini(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert migrate.main([str(tmp_path / "missing.ini")]) == 1
    assert "cannot read ini file" in capsys.readouterr().err


def test_ppc_gen_password_from_stdin(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("hunter2\n"))
    assert gen_password.main(["--stdin"]) == 0
    hashed = capsys.readouterr().out.strip()
    assert hashed.startswith("$argon2id$")
    assert verify_password(hashed, "hunter2")
    assert not verify_password(hashed, "hunter3")


def test_ppc_gen_password_refuses_mismatched_prompts(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = iter(["one", "two"])
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("getpass.getpass", lambda prompt: next(answers))
    assert gen_password.main([]) == 1
