"""Upstream indexes for the proxy tests, on 127.0.0.1: a PEP 691 JSON-only index and a static PEP 503 tree.

Both count the requests they answer, so a test can tell how often the proxy asked.
"""

from __future__ import annotations

import hashlib
import html
import json
import threading
import zipfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from pypicloud_lite.naming import parse_filename
from pypicloud_lite.upstream.proxy import UpstreamProxy
from tests.support.common import services

# Settings of the proxy as a whole; every other option given to proxy_settings is the upstream's own.
_PROXY_KEYS = ("page_ttl", "wait", "lease_ttl")


def proxy_settings(raw: dict[str, Any], url: str, **options: str) -> dict[str, Any]:
    """`raw` with one upstream, `main`, at `url`; `options` are its settings (or the proxy's: _PROXY_KEYS)."""
    settings = {**raw, "upstream.indexes": "main", "upstream.main.url": url}
    settings.update({f"upstream.{k}" if k in _PROXY_KEYS else f"upstream.main.{k}": v for k, v in options.items()})
    return settings


def joined(key: str, waiters: int, *proxies: UpstreamProxy) -> None:
    """Wait until `waiters` requests of these proxies (processes) wait on the fetch in flight for `key`
    (a bounded wait, not a timing assertion)."""
    for _ in range(3000):
        if sum(proxy.waiting(key) for proxy in proxies) == waiters:
            return
        threading.Event().wait(0.01)
    assert sum(proxy.waiting(key) for proxy in proxies) == waiters


def wheel_metadata(path: Path) -> bytes | None:
    if not path.name.endswith(".whl"):
        return None
    with zipfile.ZipFile(path) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        return zf.read(name)


@dataclass(frozen=True)
class Hosted:
    """A file an upstream serves, with what its page says of it."""

    path: Path
    upload_time: str | None = "2024-03-01T12:00:00.000000Z"
    requires_python: str | None = None
    yanked: bool | str = False

    @property
    def filename(self) -> str:
        return self.path.name

    @property
    def data(self) -> bytes:
        return self.path.read_bytes()

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


class _Quiet:
    def log_message(self, *args: Any) -> None:
        pass  # the test's own output stays readable


class _Server:
    def __init__(self, handler: Any) -> None:
        self.hits: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def count(self, path: str) -> None:
        with self.lock:
            self.hits[path] += 1

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class JsonIndex(_Server):
    """A PEP 691 JSON-only index with ETags; `failing` answers 503, `gate` holds page requests until set."""

    def __init__(self) -> None:
        self.projects: dict[str, list[Hosted]] = {}
        self.failing = False
        # Pages answered 304 to the proxy's If-None-Match.
        self.not_modified = 0
        # The Authorization header of each request, by path (None: none sent).
        self.authorizations: dict[str, str | None] = {}
        # Where the page's links point: another server's root (files elsewhere), else relative links to this one.
        self.file_root: str | None = None
        # When set, every request without exactly this Authorization header answers 401.
        self.required_authorization: str | None = None
        self.gate: threading.Event | None = None
        # The requests the gate holds: those whose path starts with this.
        self.gated = "/simple/"
        self.waiting = threading.Semaphore(0)
        index = self

        class Handler(_Quiet, BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                index.count(self.path)
                index.authorizations[self.path] = self.headers.get("Authorization")
                required = index.required_authorization
                if required is not None and self.headers.get("Authorization") != required:
                    self._send(401, b"credentials required", "text/plain", {"WWW-Authenticate": 'Basic realm="up"'})
                    return
                if index.gate is not None and self.path.startswith(index.gated):
                    index.waiting.release()
                    index.gate.wait(30)
                if index.failing:
                    self._send(503, b"down", "text/plain")
                    return
                index.answer(self)

            def _send(self, status: int, body: bytes, ctype: str, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

        self.Handler = Handler
        super().__init__(Handler)

    @property
    def url(self) -> str:
        return f"{self.root}/simple/"

    def add(self, project: str, *files: Hosted) -> None:
        self.projects.setdefault(project, []).extend(files)

    def page(self, project: str) -> bytes:
        files = []
        for file in self.projects[project]:
            metadata = wheel_metadata(file.path)
            files.append(
                {
                    "filename": file.filename,
                    # Relative to the page, as PyPI's are not: the proxy must resolve them.
                    "url": f"{self.file_root}/files/{file.filename}"
                    if self.file_root
                    else f"../../files/{file.filename}",
                    "hashes": {"sha256": file.sha256},
                    "requires-python": file.requires_python,
                    "core-metadata": {"sha256": hashlib.sha256(metadata).hexdigest()} if metadata else False,
                    "yanked": file.yanked,
                    "size": len(file.data),
                    **({"upload-time": file.upload_time} if file.upload_time else {}),
                }
            )
        doc = {"meta": {"api-version": "1.1"}, "name": project, "versions": [], "files": files}
        return json.dumps(doc).encode()

    def answer(self, handler: Any) -> None:
        path: str = handler.path
        if path.startswith("/simple/") and path.endswith("/"):
            project = path[len("/simple/") : -1]
            if project not in self.projects:
                handler._send(404, b"not found", "text/plain")
                return
            body = self.page(project)
            etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
            if handler.headers.get("If-None-Match") == etag:
                self.not_modified += 1
                handler._send(304, b"", "application/vnd.pypi.simple.v1+json", {"ETag": etag})
                return
            handler._send(200, body, "application/vnd.pypi.simple.v1+json", {"ETag": etag})
            return
        if path.startswith("/files/"):
            name = path[len("/files/") :]
            metadata = name.endswith(".metadata")
            for files in self.projects.values():
                for file in files:
                    if file.filename == name.removesuffix(".metadata"):
                        body = wheel_metadata(file.path) if metadata else file.data
                        if body is not None:
                            handler._send(200, body, "application/octet-stream")
                            return
        handler._send(404, b"not found", "text/plain")


class StaticTree(_Server):
    """A PEP 503 tree of plain files (simple/<name>/index.html, files/...) served by http.server."""

    def __init__(self, root: Path) -> None:
        self.dir = root
        (root / "simple").mkdir(parents=True, exist_ok=True)
        (root / "files").mkdir(exist_ok=True)
        tree = self

        class Handler(_Quiet, SimpleHTTPRequestHandler):
            def do_GET(self) -> None:
                tree.count(self.path)
                super().do_GET()

        super().__init__(partial(Handler, directory=str(root)))

    @property
    def url(self) -> str:
        return f"{self.root}/simple/"

    def add(self, project: str, *files: Hosted) -> None:
        anchors = []
        for file in files:
            (self.dir / "files" / file.filename).write_bytes(file.data)
            metadata = wheel_metadata(file.path)
            attrs = [f'href="../../files/{file.filename}#sha256={file.sha256}"']
            if metadata is not None:
                (self.dir / "files" / f"{file.filename}.metadata").write_bytes(metadata)
                attrs.append(f'data-dist-info-metadata="sha256={hashlib.sha256(metadata).hexdigest()}"')
            if file.requires_python:
                attrs.append(f'data-requires-python="{html.escape(file.requires_python)}"')
            if file.yanked is not False:
                attrs.append(f'data-yanked="{html.escape(file.yanked if isinstance(file.yanked, str) else "")}"')
            anchors.append(f"<a {' '.join(attrs)}>{file.filename}</a>")
        page = self.dir / "simple" / project
        page.mkdir(exist_ok=True)
        (page / "index.html").write_text("<html><body>\n" + "\n".join(anchors) + "\n</body></html>\n")


def version_of(filename: str) -> str:
    return str(parse_filename(filename).version)


@contextmanager
def running(server: _Server) -> Iterator[_Server]:
    try:
        yield server
    finally:
        server.stop()


# A PEP 517 build backend small enough to live in a test wheel: it builds a pure wheel of the sdist's one module,
# named and versioned by its PKG-INFO. Served only upstream, it stands for setuptools in the proxy's tests.
TINY_BACKEND = """
import base64, hashlib, os, zipfile
from email.parser import Parser

def _record(path, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    with open("PKG-INFO", encoding="utf-8") as fh:
        info = Parser().parse(fh)
    name, version = info["Name"], info["Version"]
    module = name.replace("-", "_").replace(".", "_").lower()
    dist_info = f"{module}-{version}.dist-info"
    with open(os.path.join(module, "__init__.py"), "rb") as fh:
        files = {f"{module}/__init__.py": fh.read()}
    files[f"{dist_info}/METADATA"] = f"Metadata-Version: 2.1\\nName: {name}\\nVersion: {version}\\n".encode()
    files[f"{dist_info}/WHEEL"] = b"Wheel-Version: 1.0\\nGenerator: tiny\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"
    record = "\\n".join(_record(p, d) for p, d in files.items()) + f"\\n{dist_info}/RECORD,,\\n"
    filename = f"{module}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, filename), "w") as zf:
        for path, data in files.items():
            zf.writestr(path, data)
        zf.writestr(f"{dist_info}/RECORD", record)
    return filename
"""


class Clock:
    """Wall time a test sets: the cooldown's clock (`use_clock`)."""

    def __init__(self, when: str) -> None:
        self.now = datetime.fromisoformat(when).timestamp()

    def set(self, when: str) -> None:
        self.now = datetime.fromisoformat(when).timestamp()

    def __call__(self) -> float:
        return self.now


def use_clock(testapp: Any, clock: Clock) -> None:
    """The app's upstream cooldown (and its exceptions' expiry) judged by `clock`."""
    pages = services(testapp.app).upstream
    assert pages is not None, "the app has no upstream"
    proxy = pages.proxy
    proxy.cooldown = replace(proxy.cooldown, clock=clock)
