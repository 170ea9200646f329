"""Servers with the SQL access backend (several may share one database and storage) and the management API."""

from __future__ import annotations

import base64
import http.client
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

from pypicloud_lite.naming import normalize
from tests.support.harness import Server, free_port, launch, pserve_settings
from tests.support.settings import NO_UPLOADER, write_ini

TOKEN_USER = "__token__"  # the username tokens are sent under (PyPI style)
# pserve's stderr is not a terminal: the banner names the owner-only file that holds the password.
PASSWORD_FILE_IN_BANNER = re.compile(r"its password is in (\S+) \(readable by its owner only\)")
API_TIMEOUT = 10


def access_settings(shared: Path, settings: Mapping[str, str | None]) -> dict[str, str]:
    """A server of the SQL access backend (bootstrapping `admin`): packages and the SQLite cache/access database in
    `shared`; `settings` replace or add some."""
    return pserve_settings(shared, {**NO_UPLOADER, "auth.backend": "sql", "auth.bootstrap_admin": "true", **settings})


def start_access_server(folder: Path, shared: Path, **settings: str) -> Server:
    """`pserve` on a fresh port over the database and storage in `shared`; waits for /health, not /simple/

    (which answers 401 to anonymous callers when pypi.default_read does not include everyone).
    """
    folder.mkdir(parents=True, exist_ok=True)
    shared.mkdir(parents=True, exist_ok=True)
    port = free_port()
    ini = write_ini(folder / "server.ini", access_settings(shared, settings), port)
    return launch(folder, ini, port, ready="/health")


def bootstrap_password(server: Server) -> str:
    """The password of `admin`, which the first server on an empty database writes once to a file it names."""
    found = PASSWORD_FILE_IN_BANNER.search(server.stderr())
    assert found, server.stderr()
    return Path(found.group(1)).read_text(encoding="utf-8").strip()


def index_url(server: Server, username: str, password: str) -> str:
    """The server's /simple/ with credentials in it, as pip and uv take them."""
    host = server.url.removeprefix("http://")
    return f"http://{quote(username, safe='')}:{quote(password, safe='')}@{host}/simple/"


@dataclass(frozen=True)
class Api:
    """The management API of one server, called as one user (or token) with requests, no proxies."""

    url: str
    username: str
    password: str

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> requests.Response:
        with requests.Session() as session:
            session.trust_env = False  # no proxy or netrc from the environment
            return session.request(
                method,
                self.url + path,
                json=body,
                auth=(self.username, self.password),
                headers={"Accept": "application/json"},
                timeout=API_TIMEOUT,
            )

    def expect(self, status: int, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self.call(method, path, body)
        assert response.status_code == status, f"{method} {path}: {response.status_code} {response.text}"
        return response.json()

    def create_user(self, name: str, password: str, admin: bool = False) -> None:
        self.expect(201, "POST", "/api/users", {"name": name, "password": password, "admin": admin})

    def set_password(self, name: str, password: str) -> None:
        self.expect(200, "PUT", f"/api/users/{name}", {"password": password})

    def grant(self, project: str, user: str, perms: str) -> None:
        self.expect(200, "PUT", f"/api/projects/{project}/grants/user/{user}", {"perms": perms})

    def create_token(self, projects: list[str] | None = None, read_only: bool = False) -> tuple[str, str]:
        """(id, secret) of a new token of this user; the secret is `ppc_<id>_<...>`."""
        body = {"projects": projects, "read_only": read_only, "description": "functional test", "expires": None}
        created = self.expect(201, "POST", "/api/tokens", body)
        scope = sorted({normalize(p) for p in projects}) if projects is not None else None
        assert created["projects"] == scope, created
        assert created["read_only"] is read_only, created
        assert created["token"].startswith(f"ppc_{created['id']}_"), created
        return created["id"], created["token"]

    def revoke_token(self, token_id: str) -> None:
        assert self.expect(200, "DELETE", f"/api/tokens/{token_id}") == {"revoked": token_id}


def get_as(server: Server, path: str, username: str | None = None, password: str = "") -> requests.Response:
    """GET with Basic credentials (or none), without following redirects."""
    with requests.Session() as session:
        session.trust_env = False
        return session.get(
            server.url + path,
            auth=(username, password) if username is not None else None,
            allow_redirects=False,
            timeout=API_TIMEOUT,
        )


def get_from_address(server: Server, path: str, source: str, username: str, password: str) -> int:
    """The status of a Basic-authenticated GET sent from another loopback address (127.0.0.2, ...)."""
    host, port = server.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=API_TIMEOUT, source_address=(source, 0))
    credentials = base64.b64encode(f"{username}:{password}".encode()).decode()
    try:
        connection.request("GET", path, headers={"Authorization": f"Basic {credentials}"})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()
