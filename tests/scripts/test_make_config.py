"""ppc-make-config writes an ini the server accepts, with a first admin who can log in."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from pypicloud_lite.access import build_access
from pypicloud_lite.config import load_ini
from pypicloud_lite.scripts import make_config
from tests.support.data import REPO_ROOT


def _admin_logs_in(ini: Path, user: str, password: str) -> bool:
    access, _ = build_access(load_ini(ini, environ={}))
    identity = access.authenticate(user, password)
    return identity is not None and identity.is_admin


@pytest.mark.parametrize("backend", ["static", "sql"])
def test_non_interactive_with_a_given_password(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: str) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("pw-from-stdin\n"))
    ini = tmp_path / "conf" / "server.ini"
    args = [str(ini), "-y", "--access", backend, "--admin", "boss", "--password-stdin", "--listen", "127.0.0.1:7000"]
    assert make_config.main(args) == 0
    settings = load_ini(ini, environ={})
    assert settings.auth.backend == backend
    assert settings.storage.dir == ini.parent / "var" / "packages"
    assert "pw-from-stdin" not in ini.read_text()
    assert "127.0.0.1:7000" in ini.read_text()
    # Every process started from this ini signs web UI logins alike.
    assert settings.web.session_secret is not None and len(settings.web.session_secret) >= 32
    assert _admin_logs_in(ini, "boss", "pw-from-stdin")
    assert not _admin_logs_in(ini, "boss", "wrong")


def test_a_generated_password_is_printed_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    ini = tmp_path / "server.ini"
    assert make_config.main([str(ini), "-y", "--access", "static", "--default-read", "none"]) == 0
    printed = capsys.readouterr().out
    password = printed.split("shown only now): ")[1].split()[0]
    assert password not in ini.read_text()
    assert _admin_logs_in(ini, "admin", password)
    assert load_ini(ini, environ={}).auth.default_read == frozenset()


def test_interactive_answers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Storage (local), its folder, the cache (sql), its URL, then access and the rest.
    answers = iter(["", "", "", "", "static", "ops", "", "authenticated", "https://pypi.example.com/team/"])
    passwords = iter(["typed-pw", "typed-pw"])
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda prompt: next(answers))
    monkeypatch.setattr("getpass.getpass", lambda prompt: next(passwords))
    ini = tmp_path / "server.ini"
    assert make_config.main([str(ini)]) == 0
    settings = load_ini(ini, environ={})
    assert settings.auth.default_read == frozenset({"authenticated"})
    assert settings.web.public_url == "https://pypi.example.com/team"
    assert _admin_logs_in(ini, "ops", "typed-pw")


def test_the_public_url_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    ini = tmp_path / "server.ini"
    assert (
        make_config.main([str(ini), "-y", "--access", "static", "--public-url", "https://PyPI.example.com:443/"]) == 0
    )
    assert load_ini(ini, environ={}).web.public_url == "https://pypi.example.com"
    assert "web.public_url = https://pypi.example.com\n" in ini.read_text()


def test_without_a_public_url_the_ini_says_where_it_goes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    ini = tmp_path / "server.ini"
    assert make_config.main([str(ini), "-y", "--access", "static"]) == 0
    assert load_ini(ini, environ={}).web.public_url is None
    assert "# web.public_url =" in ini.read_text()
    assert "# trusted_proxy = " in ini.read_text()


@pytest.mark.parametrize("url", ["pypi.example.com", "https://pypi.example.com/?q=1", "ftp://pypi.example.com"])
def test_a_wrong_public_url_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], url: str
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    ini = tmp_path / "server.ini"
    assert make_config.main([str(ini), "-y", "--public-url", url]) == 1
    assert not ini.exists()
    assert "public URL" in capsys.readouterr().err


def test_an_existing_file_is_kept_without_force(tmp_path: Path) -> None:
    ini = tmp_path / "server.ini"
    ini.write_text("keep me")
    assert make_config.main([str(ini), "-y"]) == 1
    assert ini.read_text() == "keep me"


def _server_section(text: str) -> list[str]:
    section = text.split("[server:main]\n", 1)[1].split("\n[", 1)[0]
    return [line for line in section.splitlines() if line and not line.startswith("listen")]


def test_the_written_ini_bounds_bodies_and_connections(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    ini = tmp_path / "server.ini"
    assert make_config.main([str(ini), "-y", "--access", "static"]) == 0
    options = dict(line.split(" = ", 1) for line in _server_section(ini.read_text()) if not line.startswith("#"))
    max_body = load_ini(ini, environ={}).upload.max_body
    # waitress refuses max_request_body_size bytes or more: the largest body the app takes is one less.
    assert int(options["max_request_body_size"]) == max_body + 1
    assert int(options["connection_limit"]) >= 1000
    assert options["asyncore_use_poll"] == "true"
    assert int(options["channel_timeout"]) <= 60


def test_development_ini_runs_waitress_as_ppc_make_config_does() -> None:
    development = (REPO_ROOT / "development.ini").read_text()
    assert _server_section(development) == ["use = egg:waitress#main", *make_config.waitress_options().splitlines()]
    assert load_ini(REPO_ROOT / "development.ini", environ={}).upload.max_size == 100_000_000


def test_development_ini_and_written_inis_state_the_ownership_rule(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Both ship default_write = authenticated; both must say it never opens a project that has an owner.
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    ini = tmp_path / "server.ini"
    assert make_config.main([str(ini), "-y", "--access", "sql"]) == 0
    for text in (ini.read_text(encoding="utf-8"), (REPO_ROOT / "development.ini").read_text(encoding="utf-8")):
        assert "pypi.default_write = authenticated" in text
        comment = " ".join(line.lstrip("# ") for line in text.splitlines() if line.startswith("#"))
        assert "becomes its owner" in comment
        assert "never opens a project that has" in comment
