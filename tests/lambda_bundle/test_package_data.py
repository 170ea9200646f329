"""ppc-build-lambda-bundle needs only the installed package: its entry module and requirements are package data."""

from __future__ import annotations

import configparser
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

from pypicloud_lite.deploy.bundle import DEFAULT_LAMBDA_DIR, HANDLER_FILE
from tests.support.deploy import deploy_ini
from tests.support.handler_env import LAMBDA_DIR

REPOSITORY = Path(__file__).resolve().parents[2]
PACKAGE = REPOSITORY / "pypicloud_lite"


def test_lambda_folder_holds_the_packaged_entry_and_points_at_the_packaged_requirements() -> None:
    assert DEFAULT_LAMBDA_DIR.is_relative_to(PACKAGE)
    entry = (LAMBDA_DIR / HANDLER_FILE).read_bytes()
    assert entry == (DEFAULT_LAMBDA_DIR / HANDLER_FILE).read_bytes(), "lambda/s3_sync.py and the packaged one differ"
    for backend in ("sql", "dynamo"):
        pointer = LAMBDA_DIR / f"requirements-{backend}.txt"
        [include] = [line for line in pointer.read_text(encoding="utf-8").splitlines() if line.startswith("-r ")]
        # pip reads a nested -r relative to the file that names it.
        assert (pointer.parent / include[3:]).resolve() == DEFAULT_LAMBDA_DIR / f"requirements-{backend}.txt"


def install_like_a_wheel(target: Path) -> Path:
    """Copy what setup.cfg and setup.py ship: the packages' modules, the package data and the schema history."""
    for folder, _dirs, files in os.walk(PACKAGE):
        if "__init__.py" in files:
            for name in files:
                if name.endswith(".py"):
                    source = Path(folder, name)
                    copy = target / source.relative_to(REPOSITORY)
                    copy.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(source, copy)
    setup = configparser.ConfigParser()
    setup.read(REPOSITORY / "setup.cfg")
    for pattern in setup["options.package_data"]["pypicloud_lite"].split():
        for source in PACKAGE.glob(pattern):
            if source.is_file():
                copy = target / "pypicloud_lite" / source.relative_to(PACKAGE)
                copy.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, copy)
    # setup.py maps the schema history (alembic/) into the package (tests/test_wheel_install.py checks a real wheel).
    shutil.copytree(REPOSITORY / "alembic", target / "pypicloud_lite" / "db" / "migrations", ignore=IGNORED)
    return target


IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc")


_BUILD = """
import json, sys
from pathlib import Path
sys.path[:0] = [{site!r}, {purelib!r}]
import pypicloud_lite
from pypicloud_lite.config import load_settings
from pypicloud_lite.deploy.bundle import DEFAULT_LAMBDA_DIR, build_bundle
from pypicloud_lite.scripts.lambda_deploy import build_main

calls = []

def fake_pip(args):
    calls.append(list(args))
    Path(args[args.index("--target") + 1]).mkdir(parents=True)

settings = load_settings({{"storage.dir": "files", "cache.url": "postgresql+pg8000://u@h/db"}}, environ={{}})
build_bundle(settings, Path("with-pip.zip"), pip=fake_pip)
code = build_main([{ini!r}, "-o", "no-deps.zip", "--no-deps"])
found = {{"package": pypicloud_lite.__file__, "lambda_dir": str(DEFAULT_LAMBDA_DIR), "pip": calls, "code": code}}
found["web"] = [m for m in ("pyramid", "webob", "pypicloud_lite.web") if m in sys.modules]
print(json.dumps(found))
"""

_IMPORT = """
import json, sys
sys.path[:0] = [{root!r}, {purelib!r}]
import s3_sync
import pypicloud_lite
print(json.dumps({{"package": pypicloud_lite.__file__, "handler": s3_sync.handler.__module__}}))
"""


def _python(code: str, cwd: Path) -> dict[str, object]:
    """Run `code` without site (no .pth files, so no editable install): only the paths it sets."""
    done = subprocess.run(
        [sys.executable, "-S", "-c", code],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin"},
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_an_installed_package_builds_the_bundle_without_the_checkout(tmp_path: Path) -> None:
    site = install_like_a_wheel(tmp_path / "site")
    packaged = site / "pypicloud_lite" / "deploy" / "lambda_files"
    work = tmp_path / "elsewhere"  # the cwd: nothing of the checkout is reachable from here
    work.mkdir()
    ini = deploy_ini(tmp_path / "server.ini", {"storage.dir": str(tmp_path / "files"), "cache.backend": "dynamo"})
    purelib = sysconfig.get_paths()["purelib"]

    found = _python(_BUILD.format(site=str(site), purelib=purelib, ini=str(ini)), work)
    assert found["code"] == 0
    assert found["web"] == [], "the deploy commands import the web layer"
    assert str(found["package"]).startswith(str(site))
    assert Path(str(found["lambda_dir"])) == packaged
    [args] = found["pip"]  # type: ignore[misc]
    assert args[args.index("-r") + 1] == str(packaged / "requirements-sql.txt")

    bundle = work / "no-deps.zip"
    with zipfile.ZipFile(bundle) as zf:
        names = set(zf.namelist())
        assert zf.read(HANDLER_FILE) == (packaged / HANDLER_FILE).read_bytes()
        zf.extractall(tmp_path / "unpacked")
    assert "pypicloud_lite/s3_sync_handler.py" in names
    assert not [n for n in names if n.startswith(("pypicloud_lite/deploy/", "pypicloud_lite/web/"))]

    imported = _python(_IMPORT.format(root=str(tmp_path / "unpacked"), purelib=purelib), work)
    assert str(imported["package"]).startswith(str(tmp_path / "unpacked"))
    assert imported["handler"] == "pypicloud_lite.s3_sync_handler"
