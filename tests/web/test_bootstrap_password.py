"""The generated first admin's password goes to an interactive terminal or a file only its owner reads, never a log."""

from __future__ import annotations

import io
import logging
import os
import stat
from pathlib import Path

import pytest

from pypicloud_lite.access.static import GeneratedAdmin
from pypicloud_lite.config import load_settings
from pypicloud_lite.web import _announce, make_app, password_file
from tests.support.common import services
from tests.support.settings import server_settings

PASSWORD = "correct-horse-battery-staple"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_is_shown_the_password_once(tmp_path: Path) -> None:
    console = Terminal()
    _announce(GeneratedAdmin("admin", PASSWORD, tmp_path / "admin.credentials"), "http://x", console)
    assert PASSWORD in console.getvalue()
    assert not password_file(GeneratedAdmin("admin", PASSWORD, tmp_path / "admin.credentials")).exists()


@pytest.mark.parametrize("kind", ["static", "sql"])
def test_elsewhere_the_password_goes_to_an_owner_only_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    monkeypatch.chdir(tmp_path)
    os.umask(0)  # a careless umask must not widen the file
    try:
        generated = GeneratedAdmin("admin", PASSWORD, tmp_path / "admin.credentials" if kind == "static" else None)
        console = io.StringIO()
        _announce(generated, "http://x", console)
    finally:
        os.umask(0o022)
    path = password_file(generated)
    assert PASSWORD not in console.getvalue()
    assert str(path) in console.getvalue()
    assert path.read_text(encoding="utf-8") == PASSWORD + "\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_planted_symlink_is_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep", encoding="utf-8")
    generated = GeneratedAdmin("admin", PASSWORD, tmp_path / "admin.credentials")
    password_file(generated).symlink_to(victim)
    _announce(generated, "http://x", io.StringIO())
    assert victim.read_text(encoding="utf-8") == "keep"
    assert password_file(generated).read_text(encoding="utf-8") == PASSWORD + "\n"


def test_start_up_logs_no_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    credentials = tmp_path / "admin.credentials"
    raw = server_settings(tmp_path, {"auth.bootstrap_admin_file": str(credentials)})
    caplog.set_level(logging.DEBUG)
    app = make_app(load_settings(raw, environ={}))
    try:
        generated_path = credentials.with_name("admin.credentials.password")
        password = generated_path.read_text(encoding="utf-8").strip()
        assert stat.S_IMODE(generated_path.stat().st_mode) == 0o600
        captured = capsys.readouterr()
        assert password and password not in captured.err + captured.out
        assert password not in caplog.text
        assert services(app).access.authenticate("admin", password, "127.0.0.1") is not None
    finally:
        services(app).index.cache.close()


def test_the_first_admin_is_told_the_public_url(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = server_settings(
        tmp_path,
        {
            "auth.bootstrap_admin_file": str(tmp_path / "admin.credentials"),
            "web.public_url": "https://pypi.example.com",
        },
    )
    app = make_app(load_settings(raw, environ={}), server_url="http://127.0.0.1:6543")
    try:
        printed = capsys.readouterr().err
        assert "--index-url https://pypi.example.com/simple/" in printed
        assert "--repository-url https://pypi.example.com/legacy/" in printed
        assert "127.0.0.1" not in printed
    finally:
        services(app).index.cache.close()
