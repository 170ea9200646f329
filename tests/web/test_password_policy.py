"""The password policy: a minimum length, not the user's name, not a common password; configurable."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from pypicloud_lite.scripts import make_config
from tests.support.apiutil import ADMIN, BOB, PASSWORD, assert_error, call, creds, running
from tests.support.common import services

pytestmark = pytest.mark.usefixtures("cheap_hashing")


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("x", "The password is too short: use at least 8 characters."),
        ("Password123", "The password is one of the most common passwords: choose another."),
        ("changeme", "The password is one of the most common passwords: choose another."),
        ("Bob-the-user", "The password must not be the user name."),
    ],
)
def test_new_passwords_follow_the_policy(sql_raw: dict[str, Any], password: str, message: str) -> None:
    with running(sql_raw) as app:
        access = services(app.app).access
        access.create_user(ADMIN, PASSWORD, is_admin=True)
        access.create_user(BOB, PASSWORD)
        admin = creds(ADMIN)
        resp = call(app, "POST", "/api/users", admin, json={"name": "bob-the-user", "password": password})
        assert_error(resp, 400, message)
        if "user name" in message:
            return
        # A change by the user or by an admin is held to the same rule; the old password still works.
        assert_error(call(app, "PUT", f"/api/users/{BOB}", creds(BOB), json={"password": password}), 400, message)
        assert_error(call(app, "PUT", f"/api/users/{BOB}", admin, json={"password": password}), 400, message)
        assert app.get(f"/api/users/{BOB}", headers=creds(BOB)).status_int == 200


def test_the_policy_is_configurable(sql_raw: dict[str, Any], tmp_path: Path) -> None:
    banned = tmp_path / "banned.txt"
    banned.write_text("# ours\nOurCompany\n", encoding="utf-8")
    raw = {**sql_raw, "auth.password_min_length": "4", "auth.common_passwords": str(banned)}
    with running(raw) as app:
        services(app.app).access.create_user(ADMIN, PASSWORD, is_admin=True)
        admin = creds(ADMIN)
        assert call(app, "POST", "/api/users", admin, json={"name": "dave", "password": "qwerty"}).status_int == 201
        resp = call(app, "POST", "/api/users", admin, json={"name": "erin", "password": "ourcompany"})
        assert_error(resp, 400, "one of the most common passwords")
        assert_error(call(app, "POST", "/api/users", admin, json={"name": "fay", "password": "abc"}), 400, "at least 4")


def test_make_config_refuses_a_common_admin_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("password1\n"))
    ini = tmp_path / "server.ini"
    assert make_config.main([str(ini), "-y", "--access", "sql", "--password-stdin"]) == 1
    assert capsys.readouterr().err == (
        "ppc-make-config: The password is one of the most common passwords: choose another.\n"
    )
    assert not ini.exists()
