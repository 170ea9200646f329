"""The container's entry point and configuration path, run outside a container (no image can be built here).

deploy/docker/entrypoint.sh runs as the image runs it, with the image's paths moved to a temporary folder: the
built-in ini configured by PPC_* variables serves, uploads and answers the health check; a mounted ini wins over
it; a named ini that is missing stops the start. The Dockerfile and the compose file are checked against the
repository's files and settings.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import yaml

from pypicloud_lite.config import load_settings, read_ini
from tests.support.data import REPO_ROOT
from tests.support.distbuilder import build_wheel
from tests.support.harness import BIN, Clients, clean_env, free_port, launch
from tests.support.settings import server_settings, write_ini

DOCKER = REPO_ROOT / "deploy" / "docker"
ENTRYPOINT = DOCKER / "entrypoint.sh"
EX_CONFIG = 78


def image_env(tmp_path: Path, port: int, **extra: str) -> dict[str, str]:
    """The container's environment, its paths under `tmp_path`: the share folder as the Dockerfile fills it."""
    share = tmp_path / "share"
    share.mkdir(exist_ok=True)
    shutil.copy(DOCKER / "container.ini", share)
    shutil.copy(REPO_ROOT / "deploy" / "gunicorn" / "gunicorn.conf.py", share)
    return clean_env(
        PATH=f"{BIN}:{os.environ['PATH']}",
        HOME=str(tmp_path / "data"),
        PYPICLOUD_LITE_SHARE=str(share),
        PYPICLOUD_LITE_MOUNTED_INI=str(tmp_path / "etc" / "pypicloud-lite.ini"),
        PYPICLOUD_LITE_HOST="127.0.0.1",
        PORT=str(port),
        WEB_CONCURRENCY="1",
        **extra,
    )


def entrypoint(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(ENTRYPOINT), *args],
        cwd=tmp_path / "data",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_builtin_ini_with_ppc_variables_serves_uploads_and_health(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    port = free_port()
    env = image_env(
        tmp_path,
        port,
        PPC_STORAGE_DIR=str(data / "packages-here"),
        PPC_CACHE_URL=f"sqlite:///{data / 'cache-here.sqlite'}",
        PPC_UPLOAD_SPOOL_DIR=str(data / "spool"),
    )
    command = ["sh", str(ENTRYPOINT)]  # `serve`, the image's CMD, is the default
    server = launch(data, tmp_path / "share" / "container.ini", port, command=command, env=env)
    try:
        assert entrypoint(tmp_path, env, "health").returncode == 0
        assert f"serving {tmp_path / 'share' / 'container.ini'} on 127.0.0.1:{port}" in server.stderr()
        # The built-in ini's first admin, its password written beside the data as the image's README says.
        password = (data / "bootstrap-admin.password").read_text(encoding="utf-8").strip()
        wheel = build_wheel(tmp_path / "dist", "boxed", "1.0")
        Clients(server, tmp_path / "home").twine(wheel, username="admin", password=password).check()
        assert (data / "packages-here" / "boxed" / wheel.name).is_file()
        assert (data / "cache-here.sqlite").is_file()
    finally:
        server.stop()
    unhealthy = entrypoint(tmp_path, env, "health")
    assert unhealthy.returncode != 0 and "unhealthy" in unhealthy.stderr


def test_a_mounted_ini_wins_and_a_missing_named_one_stops_the_start(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    mounted = tmp_path / "etc" / "pypicloud-lite.ini"
    mounted.parent.mkdir()
    (tmp_path / "mounted").mkdir()  # the mounted volume the ini's database lives in
    write_ini(mounted, server_settings(tmp_path / "mounted"))
    env = image_env(tmp_path, free_port())
    done = entrypoint(tmp_path, env, "migrate")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "mounted" / "cache.sqlite").is_file()

    missing = tmp_path / "etc" / "other.ini"
    refused = entrypoint(tmp_path, {**env, "PYPICLOUD_LITE_INI": str(missing)}, "serve")
    assert refused.returncode == EX_CONFIG
    assert f"PYPICLOUD_LITE_INI names {missing}, which is not a file" in refused.stderr


def test_the_dockerfile_and_compose_file_match_the_repository() -> None:
    dockerfile = (DOCKER / "Dockerfile").read_text(encoding="utf-8")
    for sources in re.findall(r"^COPY (?!--from)(.+) \S+$", dockerfile, re.MULTILINE):
        for source in sources.split():
            assert (REPO_ROOT / source).exists(), f"the Dockerfile copies {source}, which is gone"
    assert re.search(r"^USER ppc$", dockerfile, re.MULTILINE) and "--uid 10001" in dockerfile
    assert (
        'HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 CMD ["ppc-entrypoint", "health"]'
        in (dockerfile)
    )
    assert "COPY deploy/docker/entrypoint.sh /usr/local/bin/ppc-entrypoint" in dockerfile

    # The compose file's settings, over the built-in ini, are settings the server accepts: S3 and PostgreSQL.
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text(encoding="utf-8"))
    assert {"server", "postgres", "minio", "bucket", "migrate"} <= compose["services"].keys()
    # ${NAME:-default} gives its default, ${NAME:?message} (a secret to set) gives "x".
    defaults = {key: re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value) for key, value in compose["x-settings"].items()}
    environ = {key: re.sub(r"\$\{\w+:\?[^}]*\}", "x", value) for key, value in defaults.items()}
    settings = load_settings(read_ini(DOCKER / "container.ini"), environ)
    assert (settings.storage.backend, settings.cache.url) == (
        "s3",
        "postgresql+psycopg://pypicloud:x@postgres:5432/pypicloud",
    )
    assert settings.storage.s3 is not None and settings.storage.s3.endpoint_url == "http://minio:9000"
