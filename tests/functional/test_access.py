"""Access control end to end: tokens, read settings and two server processes sharing one SQL database."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.access_harness import (
    PASSWORD_FILE_IN_BANNER,
    TOKEN_USER,
    Api,
    bootstrap_password,
    get_as,
    get_from_address,
    index_url,
    start_access_server,
)
from tests.support.distbuilder import build_wheel
from tests.support.harness import Clients, Completed, Server

ADMIN = "admin"
REALM_CHALLENGE = 'Basic realm="pypicloud_lite"'
# Well formed, but no such token: a guess.
PIP_401 = "401 Client Error"
BAD_TOKEN = "ppc_0123456789abcdef_" + "0" * 48


@dataclass(frozen=True)
class Pair:
    """Servers A and B: two pserve processes over the same SQLite database and the same storage folder."""

    a: Server
    b: Server
    admin_password: str
    home: Path

    def admin(self, server: Server) -> Api:
        return Api(server.url, ADMIN, self.admin_password)

    def clients(self, server: Server) -> Clients:
        return Clients(server, self.home)

    def publish(self, server: Server, *files: Path) -> None:
        """Upload as the admin with twine."""
        self.clients(server).twine(*files, username=ADMIN, password=self.admin_password).check()


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    root = tmp_path_factory.mktemp("access-pair")
    a = start_access_server(root / "a", root / "shared")
    try:
        password = bootstrap_password(a)
        b = start_access_server(root / "b", root / "shared")
        try:
            # B found A's admin in the shared database: it creates and prints nothing.
            assert not PASSWORD_FILE_IN_BANNER.search(b.stderr()), b.stderr()
            yield Pair(a, b, password, root / "home")
        finally:
            b.stop()
    finally:
        a.stop()


def pip_download(clients: Clients, index: str, dest: Path, requirement: str) -> Completed:
    return clients.pip("download", "-vv", "--no-deps", "--index-url", index, "--dest", dest, requirement)


def assert_refused(done: Completed, status: str) -> None:
    assert done.returncode != 0, done.output
    assert status in done.output, done.output


def test_read_only_token_installs_with_pip_but_cannot_upload_with_twine(pair: Pair, tmp_path: Path) -> None:
    first = build_wheel(tmp_path / "dists", "ro-pkg", "1.0")
    second = build_wheel(tmp_path / "dists", "ro-pkg", "2.0")
    pair.publish(pair.a, first)
    # The admin's own token: read_only must narrow even an admin's rights.
    _token_id, token = pair.admin(pair.a).create_token(read_only=True)

    clients = pair.clients(pair.a)
    python = clients.new_venv(tmp_path / "venv")
    clients.pip("--python", python, "install", "--index-url", index_url(pair.a, TOKEN_USER, token), "ro-pkg").check()
    assert clients.module_version(python, "ro_pkg") == "1.0"

    refused = clients.twine(second, username=TOKEN_USER, password=token)
    assert_refused(refused, "403")
    assert set(pair.a.listed_files("ro-pkg")) == {first.name}


def test_project_scoped_token_uploads_only_to_its_project(pair: Pair, tmp_path: Path) -> None:
    dists = tmp_path / "dists"
    other = build_wheel(dists, "scoped-other", "1.0")
    pair.publish(pair.a, other)
    admin = pair.admin(pair.a)
    admin.create_user("scoped-dev", "dev password 1")
    # Given unnormalized: the scope is kept normalized and matches what twine sends ("scoped.mine").
    _token_id, token = Api(pair.a.url, "scoped-dev", "dev password 1").create_token(projects=["Scoped_Mine"])

    clients = pair.clients(pair.a)
    mine = build_wheel(dists, "scoped.mine", "1.0")
    clients.twine(mine, username=TOKEN_USER, password=token).check()
    mine_again = build_wheel(dists, "scoped.mine", "1.1")
    clients.twine(mine_again, username=TOKEN_USER, password=token).check()
    assert set(pair.a.listed_files("scoped-mine")) == {mine.name, mine_again.name}

    # scoped-dev could write both without the token (pypi.default_write = authenticated); the token may not.
    assert_refused(clients.twine(build_wheel(dists, "scoped-other", "2.0"), username=TOKEN_USER, password=token), "403")
    assert set(pair.a.listed_files("scoped-other")) == {other.name}
    assert_refused(clients.twine(build_wheel(dists, "scoped-new", "1.0"), username=TOKEN_USER, password=token), "403")
    assert pair.a.project_json("scoped-new") is None


@pytest.mark.parametrize("default_read", ["", "authenticated"], ids=["nobody", "authenticated"])
def test_private_index_refuses_anonymous_installers_and_serves_credentials_in_the_url(
    default_read: str, tmp_path: Path
) -> None:
    server = start_access_server(tmp_path / "server", tmp_path / "shared", **{"pypi.default_read": default_read})
    try:
        admin_password = bootstrap_password(server)
        clients = Clients(server, tmp_path / "home")
        wheel = build_wheel(tmp_path / "dists", "private-pkg", "1.0")
        clients.twine(wheel, username=ADMIN, password=admin_password).check()
        admin = Api(server.url, ADMIN, admin_password)
        admin.create_user("member", "member password")
        if not default_read:
            admin.grant("private-pkg", "member", "r")

        for path in ("/simple/", "/simple/private-pkg/", f"/packages/private-pkg/{wheel.name}"):
            status, headers, _body = server.get(path)
            assert status == 401, path
            assert headers["WWW-Authenticate"] == REALM_CHALLENGE, path

        python = clients.new_venv(tmp_path / "pip-venv")
        # pip logs the refused page only at -vv; without it, just "No matching distribution".
        anonymous = clients.pip("--python", python, "install", "-vv", "--index-url", server.simple_url, "private-pkg")
        assert_refused(anonymous, PIP_401)
        member_index = index_url(server, "member", "member password")
        clients.pip("--python", python, "install", "--index-url", member_index, "private-pkg").check()
        assert clients.module_version(python, "private_pkg") == "1.0"

        venv = tmp_path / "uv-venv"
        clients.uv("venv", "--python", sys.executable, venv).check()
        uv_python = venv / "bin" / "python"
        uv_install = ("pip", "install", "--python", uv_python, "--index-url")
        assert_refused(clients.uv(*uv_install, server.simple_url, "private-pkg"), "401 Unauthorized")
        clients.uv(*uv_install, member_index, "private-pkg").check()
        assert clients.module_version(uv_python, "private_pkg") == "1.0"
    finally:
        server.stop()


def test_token_revoked_through_one_process_is_refused_at_once_by_the_other(pair: Pair, tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path / "dists", "revocable", "1.0")
    pair.publish(pair.a, wheel)
    pair.admin(pair.a).create_user("ci", "ci password")
    ci = Api(pair.a.url, "ci", "ci password")
    token_id, token = ci.create_token(projects=["revocable"], read_only=True)
    clients = pair.clients(pair.b)
    token_index = index_url(pair.b, TOKEN_USER, token)

    assert get_as(pair.b, "/simple/revocable/", TOKEN_USER, token).status_code == 200
    pip_download(clients, token_index, tmp_path / "before", "revocable").check()
    assert [p.name for p in (tmp_path / "before").iterdir()] == [wheel.name]

    ci.revoke_token(token_id)
    refused = get_as(pair.b, "/simple/revocable/", TOKEN_USER, token)
    assert refused.status_code == 401, refused.text
    assert refused.headers["WWW-Authenticate"] == REALM_CHALLENGE
    assert_refused(pip_download(clients, token_index, tmp_path / "after", "revocable"), PIP_401)
    assert get_as(pair.a, "/simple/revocable/", TOKEN_USER, token).status_code == 401


def test_password_changed_through_one_process_is_effective_at_once_on_the_other(pair: Pair) -> None:
    pair.admin(pair.a).create_user("rotating", "old password")
    # B verifies (and caches) the old password first.
    assert get_as(pair.b, "/simple/", "rotating", "old password").status_code == 200
    assert get_as(pair.b, "/api/users/rotating", "rotating", "old password").status_code == 200

    Api(pair.a.url, "rotating", "old password").set_password("rotating", "new password")
    refused = get_as(pair.b, "/simple/", "rotating", "old password")
    assert refused.status_code == 401, refused.text
    assert refused.headers["WWW-Authenticate"] == REALM_CHALLENGE
    assert get_as(pair.b, "/simple/", "rotating", "new password").status_code == 200


def test_upload_through_one_process_is_listed_by_the_other_at_once(pair: Pair, tmp_path: Path) -> None:
    dists = tmp_path / "dists"
    assert pair.b.project_json("shared-pkg") is None
    first = build_wheel(dists, "shared-pkg", "1.0")
    pair.publish(pair.a, first)
    assert set(pair.b.listed_files("shared-pkg")) == {first.name}
    assert "shared-pkg" in pair.b.project_names()

    second = build_wheel(dists, "shared-pkg", "2.0")
    pair.publish(pair.a, second)
    assert set(pair.b.listed_files("shared-pkg")) == {first.name, second.name}
    status, _headers, body = pair.b.get(f"/packages/shared-pkg/{second.name}")
    assert status == 200
    assert body == second.read_bytes()


def test_project_scoped_admin_token_cannot_manage_users(pair: Pair) -> None:
    """A token narrowed to one project must not mint a new admin (and so every right) through the API."""
    _token_id, token = pair.admin(pair.a).create_token(projects=["scoped-mine"])
    scoped = Api(pair.a.url, TOKEN_USER, token)
    created = scoped.call("POST", "/api/users", {"name": "escalated", "password": "escalated pw", "admin": True})
    assert created.status_code == 403, f"{created.status_code} {created.text}"
    assert get_as(pair.a, "/api/users/escalated", ADMIN, pair.admin_password).status_code == 404


def test_failed_token_logins_from_one_address_do_not_lock_out_other_token_users(tmp_path: Path) -> None:
    """Guessed tokens from 127.0.0.2 must not lock out a valid token used from 127.0.0.1."""
    server = start_access_server(tmp_path / "server", tmp_path / "shared")
    try:
        admin = Api(server.url, ADMIN, bootstrap_password(server))
        _token_id, token = admin.create_token(read_only=True)
        assert get_as(server, "/simple/", TOKEN_USER, token).status_code == 200
        statuses = [get_from_address(server, "/simple/", "127.0.0.2", TOKEN_USER, BAD_TOKEN) for _ in range(11)]
        assert statuses == [401] * 10 + [429]
        # A password user from 127.0.0.1 is unaffected, and so must be a token user.
        assert get_as(server, "/simple/", ADMIN, admin.password).status_code == 200
        valid = get_as(server, "/simple/", TOKEN_USER, token)
        assert valid.status_code == 200, f"{valid.status_code} {valid.text}"
    finally:
        server.stop()
