"""The servers the page benchmark drives: pypicloud_lite and the references, each on one corpus folder.

Each reference is installed from the package index into its own venv under
`bench/.venvs/` (once; reused by later runs), and started with its defaults apart from
the port, the package folder and the permission to upload anonymously.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VENVS = ROOT / "bench" / ".venvs"
PPC_BIN = Path(sys.executable).parent

# name -> pip requirements of its venv
REFERENCE_REQUIREMENTS = {
    "pypiserver": ["pypiserver==2.4.2", "watchdog", "waitress"],
    "devpi": ["devpi-server>=6,<7"],
    "pypicloud": ["pypicloud==1.3.12", "SQLAlchemy<2", "waitress"],
}


# pypicloud 1.3's pyramid_duh calls inspect.getargspec, which Python 3.11 removed: that venv gets
# it back (the old ArgSpec, built from getfullargspec) from a module its .pth file imports.
REFERENCE_SHIMS = {
    "pypicloud": (
        "import collections, inspect\n"
        "ArgSpec = collections.namedtuple('ArgSpec', 'args varargs keywords defaults')\n"
        "def getargspec(func):\n"
        "    spec = inspect.getfullargspec(func)\n"
        "    return ArgSpec(spec.args, spec.varargs, spec.varkw, spec.defaults)\n"
        "if not hasattr(inspect, 'getargspec'):\n"
        "    inspect.getargspec = getargspec\n"
    ),
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def venv(name: str) -> Path:
    """The bin folder of a reference's venv, created and filled on first use."""
    folder = VENVS / name
    stamp = folder / ".installed"
    if not stamp.exists():
        shutil.rmtree(folder, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
        pip = [str(folder / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        subprocess.run([*pip, *REFERENCE_REQUIREMENTS[name]], check=True)
        if name in REFERENCE_SHIMS:
            site = subprocess.run(
                [str(folder / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                check=True,
                capture_output=True,
                text=True,
            ).stdout.strip()
            (Path(site) / "ppc_bench_compat.py").write_text(REFERENCE_SHIMS[name])
            (Path(site) / "ppc_bench_compat.pth").write_text("import ppc_bench_compat\n")
        stamp.touch()
    return folder / "bin"


def rss_peak_kb(pid: int) -> int:
    """VmHWM: the most resident memory the process has had."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """The user and system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def wait_http(url: str, timeout: float, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{url}: the server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=30) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer 200 within {timeout:.0f} s")


@dataclass
class Server:
    """One running server; `simple` is its simple index URL (with the trailing slash)."""

    name: str
    folder: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    upload_auth: tuple[str, str] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def simple(self) -> str:
        return f"{self.base}/simple/"

    @property
    def upload_url(self) -> str:
        return f"{self.base}/"

    @property
    def pids(self) -> list[int]:
        """The processes whose memory counts (nginx: the master and its worker)."""
        return [self.process.pid] if self.process else []

    def spawn(self, args: list[str], env: dict[str, str] | None = None) -> None:
        log = open(self.folder / f"{self.name}.log", "wb")  # noqa: SIM115 - lives as long as the server
        self.process = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True
        )

    def ready(self, url: str, timeout: float) -> Server:
        """This server, once `url` answers 200; stopped if it never does."""
        try:
            wait_http(url, timeout, self.process)
        except BaseException as exc:
            self.stop()
            raise RuntimeError(f"{self.name} did not start: {exc}\n{self.log_tail()}") from exc
        return self

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of its output."""
        log = self.folder / f"{self.name}.log"
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""

    def peak_rss_mb(self) -> float:
        return max((rss_peak_kb(pid) for pid in self.pids), default=0) / 1024

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def write_ppc_ini(
    server: Server, storage: Path, cache_url: str, user: str, password: str, *, extra: dict[str, str] | None = None
) -> Path:
    """The embedded default's settings (development.ini) on the seeded folder and cache, waitress on server.port."""
    from pypicloud_lite.access.passwords import hash_password

    more = "".join(f"        {key} = {value}\n" for key, value in (extra or {}).items())
    ini = server.folder / "ppc.ini"
    ini.write_text(
        textwrap.dedent(f"""\
        [app:main]
        use = egg:pypicloud_lite
        storage.backend = local
        storage.dir = {storage}
        cache.backend = sql
        cache.url = {cache_url}
        cache.migrate_on_start = true
        upload.max_size = 1GB
        upload.spool_dir = {server.folder / "spool"}
        user.{user} = {hash_password(password)}
        pypi.default_read = everyone
        pypi.default_write = authenticated
{more}
        [server:main]
        use = egg:waitress#main
        listen = 127.0.0.1:{server.port}
        threads = 8
        inbuf_overflow = 1048576
        max_request_body_size = 1073741824
        """)
    )
    return ini


def start_ppc(
    folder: Path, storage: Path, cache_url: str, user: str, password: str, *, extra: dict[str, str] | None = None
) -> Server:
    """pypicloud_lite with the embedded default's settings (development.ini), on the seeded folder and cache.

    `extra`: more settings of the app (`auth.admins`, ...).
    """
    server = Server("pypicloud_lite", folder, upload_auth=(user, password))
    server.spawn([str(PPC_BIN / "pserve"), str(write_ppc_ini(server, storage, cache_url, user, password, extra=extra))])
    return server.ready(server.simple, 120)


def start_ppc_gunicorn(folder: Path, storage: Path, cache_url: str, workers: int) -> Server:
    """The same app under gunicorn with the repository's config file and `workers` worker processes."""
    server = Server(f"gunicorn-{workers}", folder)
    ini = write_ppc_ini(server, storage, cache_url, "bench", "bench")
    conf = ROOT / "deploy" / "gunicorn" / "gunicorn.conf.py"
    bind = f"127.0.0.1:{server.port}"
    # HOME: where gunicorn puts its control socket.
    env = {**os.environ, "HOME": str(folder)}
    server.spawn([str(PPC_BIN / "gunicorn"), "-c", str(conf), "--paste", str(ini), "-w", str(workers), "-b", bind], env)
    return server.ready(server.simple, 120)


@dataclass(frozen=True)
class RenderedPage:
    headers: list[tuple[str, str]]
    body: bytes


BARE_APP = """
import json, sys
from waitress import serve
pages = {}
for path, (headers, body) in json.load(open(sys.argv[1])).items():
    body = body.encode()
    pages[path] = ([*map(tuple, headers), ("Content-Length", str(len(body)))], body)
def app(environ, start_response):
    page = pages.get(environ["PATH_INFO"])
    if page is None:
        start_response("404 Not Found", [("Content-Length", "0")])
        return [b""]
    start_response("200 OK", page[0])
    return [page[1]]
serve(app, listen="127.0.0.1:" + sys.argv[2], threads=8)
"""


def start_bare(folder: Path, pages: dict[str, RenderedPage]) -> Server:
    """A bare waitress app returning the same responses (headers and body) from a dict: the ceiling for
    a Python server on this stack."""
    server = Server("bare waitress", folder)
    (folder / "pages.json").write_text(json.dumps({p: (r.headers, r.body.decode()) for p, r in pages.items()}))
    (folder / "bare_app.py").write_text(BARE_APP)
    server.spawn([sys.executable, str(folder / "bare_app.py"), str(folder / "pages.json"), str(server.port)])
    return server.ready(server.simple, 60)


@dataclass
class NginxServer(Server):
    def __post_init__(self) -> None:
        self.name = "nginx static"

    @property
    def pids(self) -> list[int]:
        if self.process is None:
            return []
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        workers = [int(pid) for pid in children.read_text().split()] if children.exists() else []
        return [self.process.pid, *workers]


def start_nginx(folder: Path, pages: dict[str, RenderedPage]) -> Server | None:
    """nginx serving the same pages as files (when nginx is installed)."""
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if nginx is None:
        return None
    server = NginxServer("nginx", folder)
    root = folder / "www"
    for path, page in pages.items():
        target = root / path.lstrip("/") / "index.html"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(page.body)
    conf = folder / "nginx.conf"
    conf.write_text(
        textwrap.dedent(f"""\
        daemon off;
        {"user root;" if os.geteuid() == 0 else ""}
        worker_processes 1;
        pid {folder / "nginx.pid"};
        error_log {folder / "nginx.error.log"};
        events {{ worker_connections 1024; }}
        http {{
            access_log off;
            default_type text/html;
            client_body_temp_path {folder / "nginx-tmp"};
            server {{
                listen 127.0.0.1:{server.port};
                root {root};
                index index.html;
            }}
        }}
        """)
    )
    (folder / "nginx-tmp").mkdir(exist_ok=True)
    server.spawn([nginx, "-c", str(conf), "-p", str(folder)])
    return server.ready(server.simple, 30)


def start_pypiserver(folder: Path, packages: Path) -> Server:
    """pypiserver 2.4 in cached-dir mode (its fastest), uploads without authentication."""
    server = Server("pypiserver", folder)
    bin_ = venv("pypiserver")
    server.spawn(
        [
            str(bin_ / "pypi-server"),
            "run",
            "-p",
            str(server.port),
            "-i",
            "127.0.0.1",
            "--backend",
            "cached-dir",
            # auto: waitress, which its venv has (bottle's adapter order).
            "--server",
            "auto",
            "-a",
            ".",
            "-P",
            ".",
            "--disable-fallback",
            str(packages),
        ]
    )
    return server.ready(server.simple, 600)


def start_pypicloud(folder: Path, packages: Path, user: str, password: str) -> Server:
    """pypicloud 1.3 with file storage and its SQL cache on SQLite, rebuilt from storage at start."""
    server = PypicloudServer("pypicloud", folder, upload_auth=(user, password))
    bin_ = venv("pypicloud")
    # Its own password hashing (passlib, as its ppc-gen-password does).
    hashed = subprocess.run(
        [
            str(bin_ / "python"),
            "-c",
            "import sys; from passlib.hash import sha512_crypt; print(sha512_crypt.hash(sys.argv[1]))",
            password,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    ini = folder / "pypicloud.ini"
    ini.write_text(
        textwrap.dedent(f"""\
        [app:main]
        use = egg:pypicloud
        pyramid.reload_templates = False
        pypi.default_read = everyone
        pypi.default_write = authenticated
        user.{user} = {hashed}
        pypi.storage = file
        storage.dir = {packages}
        pypi.db = sql
        db.url = sqlite:///{folder / "pypicloud.sqlite"}
        session.encrypt_key = {base64.b64encode(os.urandom(32)).decode()}
        session.validate_key = {base64.b64encode(os.urandom(32)).decode()}
        session.secure = false

        [server:main]
        use = egg:waitress#main
        host = 127.0.0.1
        port = {server.port}
        """)
    )
    server.spawn([str(bin_ / "pserve"), str(ini)])
    return server.ready(server.simple, 1800)


class PypicloudServer(Server):
    @property
    def upload_url(self) -> str:
        return f"{self.base}/simple/"


class DevpiServer(Server):
    @property
    def simple(self) -> str:
        return f"{self.base}/bench/dev/+simple/"

    @property
    def upload_url(self) -> str:
        return f"{self.base}/bench/dev/"


# The fields of a release's metadata in a devpi export (devpi-server 6, dumpversion 2).
_DEVPI_METADATA_FIELDS = (
    *("home_page", "author", "author_email", "maintainer", "maintainer_email", "license", "description"),
    *("keywords", "download_url", "comment", "description_content_type", "license_expression"),
)
_DEVPI_LIST_FIELDS = (
    *("platform", "classifiers", "supported_platform", "provides", "requires", "obsoletes", "project_urls"),
    *("provides_dist", "obsoletes_dist", "requires_dist", "requires_external", "provides_extras", "dynamic"),
    "license_file",
)


def devpi_export(files: list[tuple[str, str, str, bytes, str, str]], folder: Path, user: str) -> Path:
    """A devpi export (as `devpi-export` writes it) of one private index `<user>/dev` holding these files.

    `files`: (project, version, filename, data, summary, requires_python). Uploading 20,000 files
    to devpi one by one takes hours on this machine; importing an export takes minutes.
    """
    projects: dict[str, dict[str, dict[str, object]]] = {}
    entries = []
    now = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime())
    for project, version, filename, data, summary, requires_python in files:
        metadata: dict[str, object] = dict.fromkeys(_DEVPI_METADATA_FIELDS, "")
        metadata.update({field: [] for field in _DEVPI_LIST_FIELDS})
        metadata.update(
            name=project, version=version, metadata_version="2.1", summary=summary, requires_python=requires_python
        )
        projects.setdefault(project, {})[version] = metadata
        relpath = f"{user}/dev/{project}/{version}/{filename}"
        target = folder / relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        sha256 = hashlib.sha256(data).hexdigest()
        entries.append(
            {
                "version": version,
                "entrymapping": {
                    "last_modified": now,
                    "hash_spec": f"sha256={sha256}",
                    "hashes": {"sha256": sha256},
                    "project": project,
                    "version": version,
                },
                "log": [],
                "type": "releasefile",
                "projectname": project,
                "relpath": relpath,
            }
        )
    index = {
        "indexconfig": {
            "bases": [],
            "mirror_whitelist": [],
            "mirror_whitelist_inheritance": "intersection",
            "acl_toxresult_upload": [":ANONYMOUS:"],
            "acl_upload": [user],
            "volatile": True,
            "type": "stage",
        },
        "projects": projects,
        "files": entries,
    }
    dump = {
        "users": {user: {"username": user, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}},
        "indexes": {f"{user}/dev": index},
        "dumpversion": "2",
        "pythonversion": list(sys.version_info),
        "devpi_server": "6",
    }
    (folder / "dataindex.json").write_text(json.dumps(dump))
    return folder


def start_devpi(folder: Path, export: Path | None = None) -> Server:
    """devpi-server 6 with one private index `bench/dev` (no PyPI mirror): imported from `export`, or empty."""
    server = DevpiServer("devpi", folder)
    bin_ = venv("devpi")
    serverdir = folder / "devpi"
    if export is not None:
        subprocess.run(
            [str(bin_ / "devpi-import"), "--serverdir", str(serverdir), "--no-root-pypi", "--no-events", str(export)],
            check=True,
            capture_output=True,
        )
    else:
        subprocess.run(
            [str(bin_ / "devpi-init"), "--serverdir", str(serverdir), "--no-root-pypi"],
            check=True,
            capture_output=True,
        )
    server.spawn(
        [str(bin_ / "devpi-server"), "--serverdir", str(serverdir), "--host", "127.0.0.1", "--port", str(server.port)]
    )
    server.ready(f"{server.base}/+api", 600)
    password = "bench-password"
    if export is None:
        _devpi(server, "PUT", "/bench", {"password": password})
    else:
        # An imported user has no password: set one as root (whose password is empty).
        root = _devpi(server, "POST", "/+login", {"user": "root", "password": ""})["result"]["password"]
        root_auth = base64.b64encode(f"root:{root}".encode()).decode()
        _devpi(server, "PATCH", "/bench", {"password": password}, {"X-Devpi-Auth": root_auth})
    token = _devpi(server, "POST", "/+login", {"user": "bench", "password": password})["result"]["password"]
    auth = base64.b64encode(f"bench:{token}".encode()).decode()
    if export is None:
        _devpi(server, "PUT", "/bench/dev", {"type": "stage", "bases": [], "volatile": True}, {"X-Devpi-Auth": auth})
    server.upload_auth = ("bench", password)
    return server


def _devpi(
    server: Server, method: str, path: str, body: object, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    request = urllib.request.Request(
        server.base + path,
        data=json.dumps(body).encode(),
        method=method,
        headers={"Content-Type": "application/json", "Accept": "application/json", **(headers or {})},
    )
    with urllib.request.urlopen(request, timeout=60) as resp:
        result: dict[str, Any] = json.load(resp)
        return result


def stop_all(servers: Iterable[Server]) -> None:
    for server in servers:
        server.stop()
