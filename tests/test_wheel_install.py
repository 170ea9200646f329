"""The release as users get it: sdist, then a wheel from it, installed into a fresh venv, migrating and serving."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

import pytest
from sqlalchemy import create_engine, inspect, text

from pypicloud_lite.db import migrate
from pypicloud_lite.db.tables import Base
from tests.support.cache import fresh_database
from tests.support.common import UPLOADER_PASSWORD
from tests.support.data import REPO_ROOT
from tests.support.distbuilder import build_wheel
from tests.support.harness import Clients, clean_env, free_port, http_get, launch
from tests.support.settings import HERE, server_settings, write_ini

BUILD_TIMEOUT = 600
# pip resolves pyramid, SQLAlchemy, psycopg and the rest from the registry on a cold cache.
INSTALL_TIMEOUT = 900
# Checkout folders that are not the project's sources: never copied into the build.
_NOT_SOURCES_AT_TOP = {".git", ".venv", "var", "build", "dist", "bench/.venvs"}
_NOT_SOURCES_ANYWHERE = ("__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".import_linter_cache")
PROBE = "ppc-wheel-probe"


@dataclass(frozen=True)
class Installed:
    """A wheel built from the sdist, installed with the postgres extra into a venv of its own."""

    wheel: Path
    venv: Path
    # Where the installed commands run: outside the checkout, so nothing of it is importable from the cwd.
    workdir: Path

    def bin(self, name: str) -> Path:
        return self.venv / "bin" / name


def _registry_env() -> dict[str, str]:
    """This environment, pip's configuration included, but nothing that makes Python import the checkout."""
    return {
        key: value for key, value in os.environ.items() if not key.upper().startswith(("PYTHON", "VIRTUAL_ENV", "PPC_"))
    }


def _run(args: list[str | Path], *, cwd: Path, env: dict[str, str], timeout: float) -> str:
    """stdout and stderr together; fails the test with them on a non-zero exit."""
    argv = [str(arg) for arg in args]
    proc = subprocess.run(
        argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout, check=False
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(argv)} exited with {proc.returncode}:\n{output}"
    return output


def _copy_sources(dest: Path) -> Path:
    """The checkout's sources, so building writes its egg-info into the copy and never into the checkout."""

    def ignore(folder: str, names: list[str]) -> set[str]:
        relative = Path(folder).relative_to(REPO_ROOT)
        return {
            name
            for name in names
            if name in _NOT_SOURCES_ANYWHERE
            or name.endswith(".egg-info")
            or (relative / name).as_posix() in _NOT_SOURCES_AT_TOP
        }

    return Path(shutil.copytree(REPO_ROOT, dest, ignore=ignore))


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    root = tmp_path_factory.mktemp("wheel-install")
    assert not root.resolve().is_relative_to(REPO_ROOT), "the install must live outside the checkout"
    workdir = root / "work"
    workdir.mkdir()
    sources = _copy_sources(root / "src")
    dist = root / "dist"
    # With neither --sdist nor --wheel, build makes the sdist and then the wheel from the unpacked sdist:
    # whatever MANIFEST.in forgets is missing from the wheel too.
    _run(
        [sys.executable, "-m", "build", "--outdir", dist, sources],
        cwd=workdir,
        env=_registry_env(),
        timeout=BUILD_TIMEOUT,
    )
    (_sdist,) = dist.glob("pypicloud_lite-*.tar.gz")
    (wheel,) = dist.glob("pypicloud_lite-*.whl")
    venv = root / "venv"
    _run([sys.executable, "-m", "venv", venv], cwd=workdir, env=_registry_env(), timeout=BUILD_TIMEOUT)
    _run(
        [venv / "bin" / "python", "-m", "pip", "install", "--no-input", f"{wheel}[postgres]"],
        cwd=workdir,
        env=_registry_env(),
        timeout=INSTALL_TIMEOUT,
    )
    yield Installed(wheel=wheel, venv=venv, workdir=workdir)
    # pytest keeps the last few runs' temporary folders; a venv and a source copy each are not worth keeping.
    shutil.rmtree(root, ignore_errors=True)


def _installed_env() -> dict[str, str]:
    env = clean_env()
    # clean_env drops every PYTHON* variable; say so here, since this test is about exactly that.
    assert "PYTHONPATH" not in env and "VIRTUAL_ENV" not in env
    return env


def test_the_wheel_from_the_sdist_serves_uploads_from_its_own_venv(installed: Installed, tmp_path: Path) -> None:
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = set(wheel.namelist())
    expected = {
        "pypicloud_lite/py.typed",
        "pypicloud_lite/db/migrations/env.py",
        "pypicloud_lite/db/migrations/script.py.mako",
        *(f"pypicloud_lite/db/migrations/versions/{p.name}" for p in (REPO_ROOT / "alembic" / "versions").glob("*.py")),
        *(p.relative_to(REPO_ROOT).as_posix() for p in (REPO_ROOT / "pypicloud_lite" / "web").glob("templates/*")),
        *(p.relative_to(REPO_ROOT).as_posix() for p in (REPO_ROOT / "pypicloud_lite" / "web").glob("static/*")),
    }
    assert "pypicloud_lite/db/migrations/versions/0001_initial.py" in expected
    assert any(name.endswith(".jinja2") for name in expected) and any(name.endswith(".css") for name in expected)
    assert expected - names == set()
    # A top-level alembic/ in the wheel would shadow the alembic library itself.
    assert not [name for name in names if name.startswith("alembic/")]

    folder = tmp_path / "server"
    folder.mkdir()
    port = free_port()
    ini = write_ini(folder / "server.ini", server_settings(HERE), port)
    server = launch(folder, ini, port, ready="/health", env=_installed_env(), pserve=installed.bin("pserve"))
    try:
        # The process serving is the venv's interpreter (pserve's shebang), not the checkout's.
        cmdline = Path(f"/proc/{server.process.pid}/cmdline")
        if cmdline.exists():
            interpreter = Path(cmdline.read_bytes().split(b"\0")[0].decode())
            assert interpreter.parent == installed.venv / "bin", interpreter

        probe = build_wheel(tmp_path / "dists", PROBE, "1.0")
        Clients(server, tmp_path / "home").twine(probe).check()
        digest = hashlib.sha256(probe.read_bytes()).hexdigest()

        assert server.listed_files(PROBE) == {probe.name: digest}
        page = server.simple_url + f"{PROBE}/"
        status, _headers, html = http_get(page)
        assert status == 200 and f"{probe.name}</a>".encode() in html and f"sha256={digest}".encode() in html
        doc = server.project_json(PROBE)
        assert doc is not None
        status, _headers, body = http_get(urljoin(page, doc["files"][0]["url"]))
        assert status == 200 and body == probe.read_bytes()
    finally:
        server.stop()
    assert server.process.poll() is not None

    # What that interpreter imports from that folder and environment: the installed copy, schema history included.
    where = _run(
        [
            installed.bin("python"),
            "-c",
            "import pypicloud_lite; from pypicloud_lite.db.migrate import migrations_dir;"
            " print(pypicloud_lite.__file__); print(migrations_dir())",
        ],
        cwd=folder,
        env=_installed_env(),
        timeout=60,
    ).split()
    site_packages = (
        installed.venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    )
    assert where == [
        str(site_packages / "pypicloud_lite" / "__init__.py"),
        str(site_packages / "pypicloud_lite" / "db" / "migrations"),
    ]
    assert UPLOADER_PASSWORD not in server.stderr()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_database(request.param, tmp_path) as url:
        yield url


def test_the_installed_ppc_migrate_brings_an_empty_database_to_head(
    installed: Installed, database_url: str, tmp_path: Path
) -> None:
    # The URL's %-escapes (PostgreSQL's search_path option) must not read as ini interpolation.
    settings = server_settings(HERE, {"cache.url": database_url.replace("%", "%%")})
    ini = write_ini(tmp_path / "server.ini", settings, free_port())
    output = _run([installed.bin("ppc-migrate"), ini], cwd=installed.workdir, env=_installed_env(), timeout=120)
    head = migrate.head_revision()
    assert head is not None and head == max(
        p.name.split("_")[0] for p in (REPO_ROOT / "alembic" / "versions").glob("*.py")
    )
    assert f"SQL cache schema: empty -> {head}" in output.splitlines()

    engine = create_engine(database_url)
    try:
        assert set(inspect(engine).get_table_names()) >= {*Base.metadata.tables, "alembic_version"}
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == head
    finally:
        engine.dispose()
