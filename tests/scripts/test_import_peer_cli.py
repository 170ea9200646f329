"""ppc-import: the installed command moves a devpi export in, prints one line per file and a summary."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pypicloud_lite.cache.sql import SQLCache
from pypicloud_lite.config import load_ini
from pypicloud_lite.scripts import import_peer as cli
from tests.support.aws import Moto
from tests.support.distbuilder import build_wheel
from tests.support.peers import DEVPI_EXPORT, copy_devpi_export, pypicloud_s3_key, sha256

LOCAL_INI = """\
[app:main]
storage.dir = %(here)s/packages
cache.url = sqlite:///%(here)s/cache.sqlite
cache.migrate_on_start = true
"""
WHEEL = "alice/dev/hello-pkg/1.0/hello_pkg-1.0-py3-none-any.whl"
SDIST = "alice/dev/hello-pkg/1.0/hello_pkg-1.0.tar.gz"


def write_ini(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "server.ini"
    path.write_text(text, encoding="utf-8")
    return path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    script = shutil.which("ppc-import", path=str(Path(sys.executable).parent))
    assert script is not None, "ppc-import is not installed next to this interpreter"
    return subprocess.run([script, *args], capture_output=True, text=True, timeout=120, check=False)


def indexed(ini: Path) -> dict[str, tuple[str | None, str | None]]:
    """{filename: (sha256, uploader)} of the ini's index, read as another process would."""
    cache = SQLCache.from_settings(load_ini(ini, environ={}).cache)
    try:
        return {f.filename: (f.sha256, f.uploader) for f in cache.all_files()}
    finally:
        cache.close()


def test_ppc_import_of_a_devpi_export(tmp_path: Path) -> None:
    ini = write_ini(tmp_path / "server", LOCAL_INI)
    export = copy_devpi_export(tmp_path / "export")

    dry = run(str(ini), "devpi-export", str(export), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines()[-1] == "2 would import, 0 existing, 1 skipped, 0 failed"
    assert indexed(ini) == {}

    done = run(str(ini), "devpi-export", str(export), "--index", "alice/dev")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"{WHEEL}: imported",
        f"{SDIST}: imported",
        "alice/dev/hello-pkg-1.0.doc.zip: skipped: a devpi documentation zip, not a distribution",
        "2 imported, 0 existing, 1 skipped, 0 failed",
    ]
    assert indexed(ini) == {
        Path(WHEEL).name: (sha256(DEVPI_EXPORT / WHEEL), "alice"),
        Path(SDIST).name: (sha256(DEVPI_EXPORT / SDIST), "alice"),
    }

    # A file of the export now differs from the one imported: reported, the rest "existing", exit status 1.
    build_wheel(tmp_path / "other", "hello.pkg", "1.0", summary="Other bytes").replace(export / WHEEL)
    again = run(str(ini), "devpi-export", str(export))
    assert again.returncode == 1
    assert again.stdout.splitlines()[0].startswith(f"{WHEEL}: failed: File already exists")
    assert again.stdout.splitlines()[-1] == "0 imported, 1 existing, 1 skipped, 1 failed"


def test_unusable_sources_are_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ini = write_ini(tmp_path / "server", LOCAL_INI)
    assert cli.main([str(ini), "devpi-export", str(DEVPI_EXPORT), "--index", "bob/dev"]) == 1
    assert "ppc-import: no index 'bob/dev' in this export; it has: alice/dev (3 files)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main([str(ini), "pypiserver", str(tmp_path), "--index", "alice/dev"])
    assert "--index is for devpi-export only" in capsys.readouterr().err


def test_pypicloud_s3_takes_the_endpoint_from_the_ini(
    moto: Moto, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A server on S3 moving in from pypicloud's bucket on the same S3 endpoint."""
    settings: dict[str, Any] = {
        **moto.s3_settings(moto.new_bucket()),
        "cache.url": "sqlite:///%(here)s/c.sqlite",
        "cache.migrate_on_start": "true",
    }
    ini = write_ini(tmp_path / "server", "[app:main]\n" + "".join(f"{k} = {v}\n" for k, v in settings.items()))
    old = moto.new_bucket()
    wheel = build_wheel(tmp_path / "dist", "hello.pkg", "1.0")
    key = pypicloud_s3_key("pypi/", "hello-pkg", wheel.name)
    moto.client("s3").put_object(Bucket=old, Key=key, Body=wheel.read_bytes(), Metadata={"uploader": "alice"})
    assert cli.main([str(ini), "pypicloud-s3", f"s3://{old}/pypi/", "--uploader", "ops"]) == 0
    assert capsys.readouterr().out.splitlines() == [f"{key}: imported", "1 imported, 0 existing, 0 skipped, 0 failed"]
    assert indexed(ini) == {wheel.name: (sha256(wheel), "alice")}
