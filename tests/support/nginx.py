"""Debian's nginx running the repository's deploy/nginx/pypicloud-lite.conf in front of a test server, with TLS.

Only the lines the file marks `CHANGE` are rewritten (ports, host name, certificate), so the test runs what an
operator copies. The certificate comes from a test CA (trustme); `ca_file` is what each client is given.
"""

from __future__ import annotations

import http.client
import os
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from tests.support.common import require_or_skip
from tests.support.data import REPO_ROOT
from tests.support.harness import free_port

NGINX = Path("/usr/sbin/nginx")
SITE_CONF = REPO_ROOT / "deploy" / "nginx" / "pypicloud-lite.conf"
PUBLIC_HOST = "localhost"
START_TIMEOUT = 15

MAIN_CONF = """\
{user}worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log {folder}/access.log;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    include {folder}/site.conf;
}}
"""


def site_conf(*, https_port: int, http_port: int, backend_port: int, cert: Path, key: Path) -> str:
    """The repository's site file with its CHANGE lines pointed at this test; fails if one is gone."""
    text = SITE_CONF.read_text(encoding="utf-8")
    changes = {
        "listen 443 ssl http2;": f"listen 127.0.0.1:{https_port} ssl http2;",
        "listen 80;": f"listen 127.0.0.1:{http_port};",
        "server_name pypi.example.com;": f"server_name {PUBLIC_HOST};",
        "server 127.0.0.1:6543;": f"server 127.0.0.1:{backend_port};",
        "/etc/ssl/pypi.example.com/fullchain.pem;": f"{cert};",
        "/etc/ssl/pypi.example.com/privkey.pem;": f"{key};",
    }
    for old, new in changes.items():
        assert old in text, f"{SITE_CONF} no longer has {old!r}: change this test with it"
        text = text.replace(old, new)
    return text


@dataclass
class Nginx:
    """nginx listening on 127.0.0.1: `url` (https, the public address), and plain http on `http_port`."""

    folder: Path
    https_port: int
    http_port: int
    ca_file: Path
    context: ssl.SSLContext

    @property
    def url(self) -> str:
        return f"https://{PUBLIC_HOST}:{self.https_port}"

    def ask(self, path: str, headers: Mapping[str, str] | None = None) -> tuple[int, str, bytes]:
        """One https GET, its redirect not followed: status, Location (or '') and body."""
        connection = http.client.HTTPSConnection("127.0.0.1", self.https_port, timeout=10, context=self.context)
        try:
            connection.request("GET", path, headers={"Host": f"{PUBLIC_HOST}:{self.https_port}", **(headers or {})})
            response = connection.getresponse()
            return response.status, response.getheader("Location") or "", response.read()
        finally:
            connection.close()

    def ask_plain(self, path: str) -> tuple[int, str, bytes]:
        """The same over plain http, to nginx's redirecting server."""
        connection = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=10)
        try:
            connection.request("GET", path, headers={"Host": PUBLIC_HOST})
            response = connection.getresponse()
            return response.status, response.getheader("Location") or "", response.read()
        finally:
            connection.close()

    def error_log(self) -> str:
        path = self.folder / "error.log"
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""


def nginx_ports() -> tuple[int, int]:
    """The https and http ports nginx will listen on (known before the server behind it starts)."""
    return free_port(), free_port()


@contextmanager
def running_nginx(folder: Path, ports: tuple[int, int], backend_port: int) -> Iterator[Nginx]:
    """nginx in the foreground with the site file in front of 127.0.0.1:`backend_port`; skipped without nginx."""
    if not os.access(NGINX, os.X_OK):
        require_or_skip(f"{NGINX} not found: `make test` installs Debian's nginx when run as root")
    folder.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    ca_file, cert, key = folder / "test-ca.pem", folder / "cert.pem", folder / "key.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    issued = ca.issue_cert(PUBLIC_HOST, "127.0.0.1")
    issued.cert_chain_pems[0].write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    https_port, http_port = ports
    site = site_conf(https_port=https_port, http_port=http_port, backend_port=backend_port, cert=cert, key=key)
    (folder / "site.conf").write_text(site, encoding="utf-8")
    # As root, nginx's workers would run as nobody, who cannot reach pytest's private temporary folder.
    user = "user root;\n" if os.geteuid() == 0 else ""
    (folder / "nginx.conf").write_text(MAIN_CONF.format(user=user, folder=folder), encoding="utf-8")
    argv = [str(NGINX), "-p", str(folder), "-c", str(folder / "nginx.conf"), "-e", str(folder / "error.log")]
    process = subprocess.Popen([*argv, "-g", "daemon off;"], stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
    proxy = Nginx(folder, https_port, http_port, ca_file, ssl.create_default_context(cafile=str(ca_file)))
    try:
        _wait_listening(process, proxy)
        yield proxy
    finally:
        process.terminate()
        process.wait(timeout=10)


def _wait_listening(process: subprocess.Popen[bytes], proxy: Nginx) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if process.poll() is not None:
            stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
            pytest.fail(f"nginx exited with status {process.returncode}:\n{stderr}\n{proxy.error_log()}")
        try:
            with socket.create_connection(("127.0.0.1", proxy.https_port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                pytest.fail(f"nginx did not listen within {START_TIMEOUT} s:\n{proxy.error_log()}")
            time.sleep(0.05)
