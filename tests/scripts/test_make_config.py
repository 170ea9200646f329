"""ppc-make-config writes an ini the server accepts, with a first admin who can log in."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from pypicloud_lite.access import build_access
from pypicloud_lite.config import load_ini
from pypicloud_lite.scripts import make_config


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
    answers = iter(["", "", "static", "ops", "", "authenticated"])
    passwords = iter(["typed-pw", "typed-pw"])
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda prompt: next(answers))
    monkeypatch.setattr("getpass.getpass", lambda prompt: next(passwords))
    ini = tmp_path / "server.ini"
    assert make_config.main([str(ini)]) == 0
    settings = load_ini(ini, environ={})
    assert settings.auth.default_read == frozenset({"authenticated"})
    assert _admin_logs_in(ini, "ops", "typed-pw")


def test_an_existing_file_is_kept_without_force(tmp_path: Path) -> None:
    ini = tmp_path / "server.ini"
    ini.write_text("keep me")
    assert make_config.main([str(ini), "-y"]) == 1
    assert ini.read_text() == "keep me"
