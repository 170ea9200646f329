"""A server started with no users creates the first admin, writes its password once, and that password uploads."""

from __future__ import annotations

import re
import stat
from pathlib import Path

from tests.support.distbuilder import build_wheel
from tests.support.harness import Clients, start_server

ANNOUNCED = re.compile(r"created the admin user")


def test_bootstrap_admin_is_created_and_its_written_password_uploads(tmp_path: Path) -> None:
    folder = tmp_path / "server"
    dists = tmp_path / "dists"
    server = start_server(folder, with_uploader=False, bootstrap=True)
    try:
        banner = server.stderr()
        # pserve's stderr is not a terminal here: the password is in an owner-only file, not in the banner.
        secret = folder / "admin.credentials.password"
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
        password = secret.read_text(encoding="utf-8").strip()
        assert password not in banner
        assert f"is in {secret}" in banner
        assert f"--repository-url {server.url}/legacy/ -u admin " in banner
        assert f"--index-url {server.url}/simple/" in banner
        stored = (folder / "admin.credentials").read_text(encoding="utf-8")
        assert stored.startswith("admin:$argon2")
        assert password not in stored

        clients = Clients(server, tmp_path / "home")
        refused = clients.twine(build_wheel(dists, "bootstrapped", "0.9"), username="admin", password=password + "x")
        assert refused.returncode != 0, refused.output
        first = build_wheel(dists, "bootstrapped", "1.0")
        clients.twine(first, username="admin", password=password).check()
        assert set(server.listed_files("bootstrapped")) == {first.name}
    finally:
        server.stop()

    # A restart keeps that admin: no new password is printed and the first one still works.
    again = start_server(folder, with_uploader=False, bootstrap=True)
    try:
        assert not ANNOUNCED.search(again.stderr()), again.stderr()
        second = build_wheel(dists, "bootstrapped", "2.0")
        Clients(again, tmp_path / "home").twine(second, username="admin", password=password).check()
        assert set(again.listed_files("bootstrapped")) == {first.name, second.name}
    finally:
        again.stop()
