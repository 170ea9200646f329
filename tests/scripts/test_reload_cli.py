"""ppc-reload: reloads an ini's cache from its storage, printing when files are visible and then the result."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pypicloud_lite.cache.sql import SQLCache
from pypicloud_lite.config import load_ini
from pypicloud_lite.reload import LOCK_NAME, ReloadRun, begin_reload
from pypicloud_lite.scripts import reload as cli
from pypicloud_lite.storage.local import LocalStorage
from tests.support.aws import Moto
from tests.support.distbuilder import build_sdist, build_wheel
from tests.support.legacy import wheel_metadata
from tests.support.reload import key_of, put_raw, rows_of, sha256

LOCAL_INI = """\
[app:main]
storage.dir = %(here)s/packages
cache.url = sqlite:///%(here)s/cache.sqlite
cache.migrate_on_start = true
"""


@pytest.fixture
def ini(tmp_path: Path) -> Path:
    path = tmp_path / "server.ini"
    path.write_text(LOCAL_INI, encoding="utf-8")
    return path


@pytest.fixture
def dists(ini: Path, tmp_path: Path) -> list[Path]:
    """A wheel and an sdist put straight into the ini's storage folder."""
    storage = LocalStorage(ini.parent / "packages")
    paths = [build_wheel(tmp_path / "dist", "Demo", "1.0"), build_sdist(tmp_path / "dist", "Demo", "1.0")]
    for path in paths:
        put_raw(storage, key_of(path), path.read_bytes())
    return paths


@pytest.fixture
def cache(ini: Path) -> Iterator[SQLCache]:
    """The ini's cache, opened as another process would."""
    opened = SQLCache.from_settings(load_ini(ini, environ={}).cache)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def held(ini: Path, cache: SQLCache) -> Iterator[ReloadRun]:
    """A reload that another process has begun (it holds the lease)."""
    run = begin_reload(LocalStorage(ini.parent / "packages"), cache)
    yield run
    if cache.lock_state(LOCK_NAME)[0]:
        run.execute()


def parse_output(out: str) -> tuple[dict[str, object], dict[str, object]]:
    """(the progress on the `visible after` line, the final result)."""
    lines = out.strip().splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith("visible after ")
    seconds, _, visible = lines[0].removeprefix("visible after ").partition("s: ")
    float(seconds)
    return json.loads(visible), json.loads(lines[1])


def test_reload_prints_when_visible_and_the_result(
    ini: Path, dists: list[Path], cache: SQLCache, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    assert cli.main([str(ini)]) == 0

    captured = capsys.readouterr()
    visible, result = parse_output(captured.out)
    # Not a terminal: plain lines (here only the last one, the reload being quicker than LINE_SECONDS).
    assert re.fullmatch(r"ppc-reload: done: 2 of 2 files \(100%\), \d+ s elapsed\n", captured.err), captured.err
    # The static access backend keeps no trail but the log's: the reload's one audit line.
    [audit] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("audit:")]
    assert audit.startswith("audit: cli:") and "reload.start" in audit, audit
    assert (visible["listed"], visible["added"], visible["hashed"]) == (2, 2, 0)
    assert (result["state"], result["added"], result["hashed"], result["failed"]) == ("done", 2, 2, 0)
    assert isinstance(result["complete_seconds"], float)
    assert "holder" not in result
    rows = rows_of(cache)
    assert {name: row.sha256 for name, row in rows.items()} == {p.name: sha256(p.read_bytes()) for p in dists}

    assert cli.main([str(ini)]) == 0
    _visible, again = parse_output(capsys.readouterr().out)
    assert (again["added"], again["unchanged"], again["hashed"]) == (0, 2, 0)


def test_verify_sidecars_repairs_a_corrupt_sidecar(
    ini: Path, dists: list[Path], cache: SQLCache, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main([str(ini)]) == 0
    wheel = dists[0]
    sidecar = ini.parent / "packages" / (key_of(wheel) + ".metadata")
    good = wheel_metadata(wheel)
    sidecar.write_bytes(b"garbage")  # the reload wrote none (the record keeps the metadata): a corrupt one appears
    capsys.readouterr()

    assert cli.main([str(ini), "--verify-sidecars"]) == 0

    _visible, result = parse_output(capsys.readouterr().out)
    assert (result["state"], result["repaired"], result["failed"]) == ("done", 1, 0)
    assert sidecar.read_bytes() == good
    assert rows_of(cache)[wheel.name].metadata_sha256 == sha256(good)


def test_reload_exits_2_while_another_runs(
    ini: Path, dists: list[Path], held: ReloadRun, cache: SQLCache, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main([str(ini)]) == 2

    captured = capsys.readouterr()
    assert captured.out == ""
    assert "already running" in captured.err
    assert "--wait" in captured.err
    assert rows_of(cache) == {}
    assert cache.lock_state(LOCK_NAME)[0] is True, "the other reload keeps its lease"


def test_reload_wait_queues_behind_the_running_reload(
    ini: Path,
    dists: list[Path],
    held: ReloadRun,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(cli, "WAIT_POLL_SECONDS", 0.05)
    codes: list[int] = []
    waiting = threading.Thread(target=lambda: codes.append(cli.main([str(ini), "--wait"])))
    waiting.start()
    try:
        time.sleep(0.5)
        assert waiting.is_alive(), "--wait must wait while the other reload runs"
        assert capsys.readouterr().out == ""
        assert held.execute().added == 2
    finally:
        waiting.join(30)

    assert codes == [0]
    _visible, result = parse_output(capsys.readouterr().out)
    # Its own reload, after the other one: everything is there already.
    assert (result["state"], result["added"], result["unchanged"]) == ("done", 0, 2)


def test_reload_reports_a_failing_storage(moto: Moto, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = moto.s3_settings("ppc-no-such-bucket")
    ini = tmp_path / "s3.ini"
    ini.write_text(
        "[app:main]\n"
        + "".join(f"{key} = {value}\n" for key, value in settings.items())
        + "cache.url = sqlite:///%(here)s/cache.sqlite\ncache.migrate_on_start = true\n",
        encoding="utf-8",
    )

    assert cli.main([str(ini)]) == 1

    captured = capsys.readouterr()
    assert "NoSuchBucket" in captured.err
    assert captured.out.strip() == ""
    cache = SQLCache.from_settings(load_ini(ini, environ={}).cache)
    try:
        running, progress = cache.lock_state(LOCK_NAME)
        assert running is False
        assert progress is not None
        assert progress["state"] == "failed"
    finally:
        cache.close()


def test_reload_reports_a_bad_ini(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([str(tmp_path / "missing.ini")]) == 1
    assert capsys.readouterr().err.startswith("ppc-reload: ")


def test_console_script(ini: Path, dists: list[Path]) -> None:
    script = shutil.which("ppc-reload", path=str(Path(sys.executable).parent))
    assert script is not None, "ppc-reload is not installed next to this interpreter"

    done = subprocess.run([script, str(ini)], capture_output=True, text=True, timeout=60, check=False)

    assert done.returncode == 0, done.stderr
    _visible, result = parse_output(done.stdout)
    assert (result["state"], result["added"]) == ("done", 2)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_progress_bar(ini: Path, dists: list[Path]) -> None:
    settings = load_ini(ini, environ={})
    run = begin_reload(LocalStorage(ini.parent / "packages"), SQLCache.from_settings(settings.cache))
    console = _Terminal()
    with cli.progress_shown(run, console):
        run.execute()
    drawn = console.getvalue()
    assert drawn.startswith("\r") and drawn.endswith("\n")
    last = drawn.rstrip("\n").rsplit("\r", 1)[1]
    # tqdm's bar, full, at 2 of 2 files, with the phase before it and the estimate's line after.
    assert re.fullmatch(r"done: 100%\|\S+\| 2/2 \[.*, done: 2 of 2 files \(100%\), \d+ s elapsed\]", last), last
    assert run.progress.listed == 2
