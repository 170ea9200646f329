"""The real server under pserve, the real clients (twine, pip, uv) pointed at it, and the distributions they move."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any

import pytest

from pypicloud_lite.config import load_ini
from pypicloud_lite.models import PackageFile
from pypicloud_lite.service import PackageIndex
from pypicloud_lite.web.services import build_services
from tests.support.common import UPLOADER, UPLOADER_PASSWORD, require_or_skip
from tests.support.data import REPO_ROOT
from tests.support.settings import HERE, NO_UPLOADER, server_settings, write_ini

BIN = Path(sys.executable).parent
TWINE = BIN / "twine"
LEGACY_TWINE_DEFAULT = REPO_ROOT / ".venv" / "tools" / "twine-6.1" / "bin" / "twine"
CLIENT_TIMEOUT = 180
START_TIMEOUT = 30
JSON_V1 = "application/vnd.pypi.simple.v1+json"

UNICODE_SUMMARY = "Ünïcödé ✓ summary"
# Quotes, angle brackets and an ampersand must survive HTML escaping; the tick must survive UTF-8.
YANK_REASON = 'Broken build: "use" <1.0> & not this ✓'

# Variables that would point the clients (or the server) elsewhere than this test's index and settings.
_STRIPPED_PREFIXES = ("PIP_", "UV_", "TWINE_", "PPC_", "PYTHON", "VIRTUAL_ENV", "CONDA_", "XDG_")
_STRIPPED_NAMES = (
    "PYPICLOUD_SETTINGS",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    # requests prefers either to a session's own CA file (twine --cert).
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
)
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))

# Servers still running; their stderr is attached to the report of any test that fails meanwhile.
RUNNING: list[Server] = []


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def clean_env(**extra: str) -> dict[str, str]:
    """os.environ without the variables that configure pip, uv, twine, proxies or this server."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.upper().startswith(_STRIPPED_PREFIXES) and key.upper() not in _STRIPPED_NAMES
    }
    env.update(extra)
    return env


def http_get(url: str, accept: str | None = None) -> tuple[int, Message, bytes]:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    try:
        with _OPENER.open(request, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def pserve_settings(root: Path | str = HERE, overrides: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """server_settings for a harness's pserve: storage and cache under `root` (default: the ini's folder), the upload
    spool beside the ini, the realm, and pages clients revalidate every time (a test never sees another's upload late).
    """
    own = {"upload.spool_dir": f"{HERE}/spool", "auth.realm": "pypicloud_lite", "web.page_max_age": "0"}
    return server_settings(root, {**own, **(overrides or {})})


@dataclass
class Server:
    """A pserve process serving one ini; `url` has no trailing slash."""

    url: str
    ini: Path
    process: subprocess.Popen[bytes]
    stderr_path: Path

    @property
    def host(self) -> str:
        """host:port, as pip's --trusted-host takes it."""
        return self.url.removeprefix("http://")

    @property
    def folder(self) -> Path:
        """Where the ini, the packages, the SQLite cache and the upload spool live."""
        return self.ini.parent

    @property
    def simple_url(self) -> str:
        return f"{self.url}/simple/"

    @property
    def upload_url(self) -> str:
        return f"{self.url}/legacy/"

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        if self in RUNNING:
            RUNNING.remove(self)
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def get(self, path: str, accept: str | None = None) -> tuple[int, Message, bytes]:
        return http_get(self.url + path, accept)

    def project_json(self, project: str) -> dict[str, Any] | None:
        """The PEP 691 project page, or None if the server answers 404."""
        status, _headers, body = self.get(f"/simple/{project}/", JSON_V1)
        if status == 404:
            return None
        assert status == 200, body
        doc: dict[str, Any] = json.loads(body)
        return doc

    def listed_files(self, project: str) -> dict[str, str]:
        """filename -> sha256 of the files /simple/<project>/ lists (empty if the project is unknown)."""
        doc = self.project_json(project)
        return {} if doc is None else {f["filename"]: f["hashes"]["sha256"] for f in doc["files"]}

    def project_names(self) -> set[str]:
        status, _headers, body = self.get("/simple/", JSON_V1)
        assert status == 200, body
        return {p["name"] for p in json.loads(body)["projects"]}

    @contextmanager
    def package_index(self) -> Iterator[PackageIndex]:
        """The server's own storage and SQL cache, opened from this process (e.g. to yank: no HTTP API yet)."""
        services, _generated = build_services(load_ini(self.ini, environ={}))
        try:
            yield services.index
        finally:
            services.index.cache.close()

    def yank(self, project: str, version: str, reason: str | None = None) -> None:
        with self.package_index() as index:
            index.yank(project, version, reason)

    def stored_files(self, project: str) -> list[PackageFile]:
        with self.package_index() as index:
            return index.project_files(index.get_project(project))


def start_server(
    folder: Path,
    *,
    with_uploader: bool = True,
    bootstrap: bool = False,
    extra: Mapping[str, str | None] | None = None,
    waitress: str | None = None,
) -> Server:
    """Run `pserve <ini>` and wait until /simple/ answers; fails the test with the server's stderr if it cannot.

    The ini is pserve_settings in `folder`, without the uploader unless `with_uploader`, with the bootstrap admin's
    credentials file if `bootstrap`; `extra` replaces, adds (or, None, removes) settings; `waitress`, if given,
    is the server's options after `listen` (see write_ini).
    """
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    overrides = {
        **({} if with_uploader else NO_UPLOADER),
        **({"auth.bootstrap_admin_file": f"{HERE}/admin.credentials"} if bootstrap else {}),
        **(extra or {}),
    }
    ini = write_ini(folder / "server.ini", pserve_settings(HERE, overrides), port, waitress=waitress)
    return launch(folder, ini, port)


def launch(
    folder: Path,
    ini: Path,
    port: int,
    *,
    ready: str = "/simple/",
    env: dict[str, str] | None = None,
    pserve: Path = BIN / "pserve",
    command: list[str] | None = None,
) -> Server:
    """`pserve <ini>` in `folder` (listening on `port`), once `ready` answers 200; `pserve`: whose (another venv's);
    `command`: another server's command line instead (gunicorn serving the ini).

    Fails the test with the server's stderr if the process exits or does not get ready in START_TIMEOUT.
    """
    stderr_path = folder / "server.stderr"
    with open(stderr_path, "wb") as err, open(folder / "server.stdout", "wb") as out:
        process = subprocess.Popen(
            command or [str(pserve), str(ini)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            cwd=folder,
            env=clean_env() if env is None else env,
        )
    server = Server(f"http://127.0.0.1:{port}", ini, process, stderr_path)
    RUNNING.append(server)
    deadline = time.monotonic() + START_TIMEOUT
    last = "no answer"
    while True:
        if process.poll() is not None:
            server.stop()
            pytest.fail(f"pserve exited with status {process.returncode}:\n{server.stderr()}")
        try:
            status, _headers, body = server.get(ready)
            if status == 200:
                return server
            last = f"{ready} answered {status}: {body[:500]!r}"
        except OSError as exc:
            last = str(exc)
        if time.monotonic() > deadline:
            server.stop()
            pytest.fail(f"pserve was not ready within {START_TIMEOUT} s ({last}):\n{server.stderr()}")
        time.sleep(0.1)


@dataclass(frozen=True)
class Completed:
    args: tuple[str, ...]
    returncode: int
    output: str

    def check(self) -> Completed:
        assert self.returncode == 0, f"{' '.join(self.args)} exited with {self.returncode}:\n{self.output}"
        return self


def run(
    *args: str | Path, home: Path, timeout: float = CLIENT_TIMEOUT, env: Mapping[str, str] | None = None
) -> Completed:
    """Run a client with a clean environment (plus `env`) and HOME, stdout and stderr together, no stdin."""
    argv = tuple(str(arg) for arg in args)
    (home / "uv-cache").mkdir(parents=True, exist_ok=True)
    environ = clean_env(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_CACHE_HOME=str(home / ".cache"),
        PYTHONIOENCODING="utf-8",
        PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring",
        NO_PROXY="127.0.0.1,localhost",
        UV_NO_CONFIG="1",
        UV_CACHE_DIR=str(home / "uv-cache"),
        UV_PYTHON_DOWNLOADS="never",
        UV_NO_PROGRESS="1",
        **(env or {}),
    )
    proc = subprocess.run(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=environ,
        cwd=home,
        timeout=timeout,
        check=False,
    )
    return Completed(argv, proc.returncode, proc.stdout.decode("utf-8", errors="replace"))


def plain(output: str) -> str:
    """Client output without ANSI colours and with runs of whitespace collapsed (rich wraps long lines)."""
    return " ".join(re.sub(r"\x1b\[[0-9;]*m", "", output).split())


def legacy_twine() -> Path:
    """twine 6.1 (which still sends md5_digest): $PPC_TWINE_LEGACY, else the one `make` installs."""
    path = Path(os.environ.get("PPC_TWINE_LEGACY") or LEGACY_TWINE_DEFAULT)
    if not os.access(path, os.X_OK):
        require_or_skip(f"twine 6.1 not found at {path} (set PPC_TWINE_LEGACY or run make)")
    return path


@dataclass(frozen=True)
class Clients:
    """The command-line clients, pointed at one server only."""

    server: Server
    home: Path

    def run(self, *args: str | Path) -> Completed:
        return run(*args, home=self.home)

    def twine(
        self,
        *files: Path,
        executable: Path = TWINE,
        username: str = UPLOADER,
        password: str = UPLOADER_PASSWORD,
        url: str | None = None,
        options: tuple[str, ...] = (),
    ) -> Completed:
        return self.run(
            executable,
            "upload",
            *options,
            "--repository-url",
            url or self.server.upload_url,
            "-u",
            username,
            f"--password={password}",
            "--disable-progress-bar",
            "--non-interactive",
            *files,
        )

    def pip(self, *args: str | Path, cache: Path | None = None) -> Completed:
        """pip with no configuration; its HTTP cache only if `cache` is given (pip caches http:// for trusted hosts)."""
        caching = ("--cache-dir", cache, "--trusted-host", self.server.host) if cache else ("--no-cache-dir",)
        return self.run(
            sys.executable, "-m", "pip", "--isolated", *caching, "--disable-pip-version-check", "--no-input", *args
        )

    def pip_install(self, python: Path, *requirements: str) -> Completed:
        return self.pip("--python", python, "install", "--index-url", self.server.simple_url, *requirements)

    def uv(self, *args: str | Path) -> Completed:
        return self.run(BIN / "uv", *args)

    def new_venv(self, folder: Path) -> Path:
        """A fresh venv without pip (pip runs into it with --python); returns its python."""
        self.run(sys.executable, "-m", "venv", "--without-pip", folder).check()
        return folder / "bin" / "python"

    def module_version(self, python: Path, module: str) -> str:
        # -I: neither the working folder nor PYTHON* variables can supply the module.
        done = self.run(python, "-I", "-c", f"import {module}; print({module}.__version__)").check()
        return done.output.strip()


@dataclass(frozen=True)
class Corpus:
    """The distributions the suite uploads, built once."""

    foo_wheel: Path
    foo_tar: Path
    foo_zip: Path
    foo_legacy: tuple[Path, ...]
    pyreq_ok: Path
    pyreq_py2: Path
    pyreq_future: Path
    localver: Path
    yankee_ok: tuple[Path, ...]
    yankee_reason: Path
    yankee_no_reason: Path

    @property
    def published(self) -> tuple[Path, ...]:
        """What the `published` fixture uploads with twine 7 (foo_legacy is left to the twine 6.1 test)."""
        return (
            self.foo_wheel,
            self.foo_tar,
            self.foo_zip,
            self.pyreq_ok,
            self.pyreq_py2,
            self.pyreq_future,
            self.localver,
            *self.yankee_ok,
            self.yankee_reason,
            self.yankee_no_reason,
        )


FOO = "Foo.Bar_baz"  # dots, underscores and capitals: normalizes to foo-bar-baz, module foo_bar_baz
# The name twine sends in the upload form (pkg_resources.safe_name of the metadata's Name, as Warehouse
# expects), which the index keeps as the project's display name.
FOO_DISPLAY = "Foo.Bar-baz"
FOO_NORMALIZED = "foo-bar-baz"
