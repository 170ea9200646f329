"""ppc-serve and the start-up messages: one line each (no traceback), with the exit status a script can test."""

from __future__ import annotations

import io
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pypicloud_lite.access import build_access
from pypicloud_lite.access.base import AccessBackend
from pypicloud_lite.config import CacheSettings, load_ini, read_ini
from pypicloud_lite.config_checks import database_url
from pypicloud_lite.db.engine import create_db_engine
from pypicloud_lite.scripts import gen_password, make_config
from pypicloud_lite.web import main as web_main
from pypicloud_lite.web import serve
from tests.support.data import REPO_ROOT
from tests.support.harness import BIN, clean_env, free_port, launch
from tests.support.settings import HERE, NO_UPLOADER, server_settings

SQL_ADMIN = {**NO_UPLOADER, "auth.backend": "sql", "auth.bootstrap_admin": "true"}


def _ini(folder: Path, port: int, overrides: dict[str, str | None] | None = None, logging: bool = False) -> Path:
    """An ini for ppc-serve in `folder` (no logging sections unless `logging`: these tests read stderr)."""
    settings = {"use": "egg:pypicloud_lite", **server_settings(HERE, overrides)}
    lines = ["[app:main]", *(f"{key} = {value}" for key, value in settings.items())]
    lines += ["", "[server:main]", "use = egg:waitress#main", f"listen = 127.0.0.1:{port}", "threads = 2"]
    text = "\n".join(lines) + "\n"
    if logging:
        text += make_config.LOGGING_SECTIONS
    path = folder / "server.ini"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port another process listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def _fails(argv: list[str], status: int, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> str:
    """Run ppc-serve in this process; it must exit with `status` and print exactly one line on stderr."""
    monkeypatch.delenv("PPC_LISTEN", raising=False)
    with pytest.raises(SystemExit) as exited:
        serve.main(argv)
    assert exited.value.code == status
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
    return captured.err.rstrip("\n")


def test_a_busy_port_stops_the_start_before_the_admin_is_made(tmp_path: Path, busy_port: int) -> None:
    ini = _ini(tmp_path, busy_port, SQL_ADMIN, logging=True)
    done = subprocess.run(
        [BIN / "ppc-serve", ini], check=False, cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr == (
        f"ppc-serve: cannot listen on 127.0.0.1:{busy_port}: the address is already in use; choose another port "
        "with `make run PORT=8080` or PPC_LISTEN=127.0.0.1:8080\n"
    )
    # Nothing was created: the one-time password of a first admin is not lost.
    assert sorted(path.name for path in tmp_path.iterdir()) == ["server.ini"]


def test_ppc_listen_overrides_the_ini(
    tmp_path: Path, busy_port: int, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ini = _ini(tmp_path, free_port())
    monkeypatch.setenv("PPC_LISTEN", f"127.0.0.1:{busy_port}")
    with pytest.raises(SystemExit) as exited:
        serve.main([str(ini)])
    assert exited.value.code == 1
    assert f"cannot listen on 127.0.0.1:{busy_port}: the address is already in use" in capsys.readouterr().err


def test_make_run_takes_a_port() -> None:
    dry = subprocess.run(
        ["make", "-n", "run", "PORT=8080"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=30, check=True
    )
    assert "PPC_LISTEN=127.0.0.1:8080 .venv/bin/ppc-serve development.ini" in dry.stdout


@pytest.mark.parametrize(
    ("overrides", "line"),
    [
        (
            {"upload.max_size": None, "upload.max_sise": "1MB"},
            "unknown setting 'upload.max_sise' (did you mean 'upload.max_size'?)",
        ),
        ({"storage.dir": None, "storage.dri": "x"}, "setting 'storage.dir' is required with storage.backend = local"),
        ({"stoarge.backend": "local"}, "unknown setting 'stoarge.backend' (did you mean 'storage.backend'?)"),
        ({"web.page_max_age": "soon"}, "setting 'web.page_max_age': invalid literal for int() with base 10: 'soon'"),
    ],
    ids=["unknown-key", "typo-of-a-required-key", "typo-of-the-prefix", "bad-value"],
)
def test_a_configuration_error_is_one_line_naming_key_and_file(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    overrides: dict[str, str | None],
    line: str,
) -> None:
    ini = _ini(tmp_path, free_port(), overrides)
    typo = " (the file has 'storage.dri': a typo?)" if "storage.dri" in overrides else ""
    assert _fails([str(ini)], 2, capsys, monkeypatch) == f"ppc-serve: configuration error in {ini}: {line}{typo}"


def test_a_bad_environment_variable_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ini = _ini(tmp_path, free_port())
    monkeypatch.setenv("PPC_UPLOAD_MAX_SIZE", "huge")
    assert _fails([str(ini)], 2, capsys, monkeypatch) == (
        "ppc-serve: configuration error in the environment variable PPC_UPLOAD_MAX_SIZE: setting 'upload.max_size': "
        "expected a size such as 100MB or 1GiB, got 'huge'"
    )


def test_a_missing_sqlite_folder_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ini = _ini(tmp_path, free_port(), {"cache.url": f"sqlite:///{HERE}/nowhere/cache.sqlite"})
    assert _fails([str(ini)], 2, capsys, monkeypatch) == (
        f"ppc-serve: configuration error in {ini}: setting 'cache.url': the folder '{tmp_path}/nowhere' of the "
        f"SQLite database does not exist; create it (mkdir -p {tmp_path}/nowhere) or correct the URL"
    )
    assert not (tmp_path / "nowhere").exists()


def test_a_missing_ini_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _fails([str(tmp_path / "none.ini")], 2, capsys, monkeypatch) == (
        f"ppc-serve: cannot read ini file '{tmp_path}/none.ini'"
    )


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:p@db/x", "postgresql+psycopg://u:p@db/x"),
        ("postgresql://u@db/x", "postgresql+psycopg://u@db/x"),
        ("postgres+psycopg2://u@db/x", "postgresql+psycopg2://u@db/x"),
        ("mysql+pymysql://u@db/x", "mysql+pymysql://u@db/x"),
    ],
)
def test_postgres_urls_are_postgresql(given: str, expected: str) -> None:
    assert database_url(given) == expected


def test_a_postgres_url_makes_a_postgresql_engine() -> None:
    url = "postgres://u:p@127.0.0.1:9/x"  # nothing connects: create_engine only picks the dialect and driver
    engine = create_db_engine(CacheSettings(backend="sql", url=url, migrate_on_start=False, pool_size=1, echo=False))
    assert (engine.dialect.name, engine.dialect.driver) == ("postgresql", "psycopg")
    engine.dispose()


def test_the_banner_the_admin_warning_and_unknown_variables(tmp_path: Path) -> None:
    port = free_port()
    ini = _ini(tmp_path, free_port(), {**NO_UPLOADER, "auth.backend": "sql"}, logging=True)
    env = clean_env(PPC_LISTEN=f"127.0.0.1:{port}", PPC_UPLOAD_MAX_SIZ="5MB")
    server = launch(tmp_path, ini, port, env=env, pserve=BIN / "ppc-serve", ready="/ui/")
    try:
        lines = server.stderr().splitlines()
    finally:
        server.stop()
    assert any(
        line.endswith(
            "the environment variable PPC_UPLOAD_MAX_SIZ is not a setting of pypicloud_lite and is ignored "
            "(did you mean 'PPC_UPLOAD_MAX_SIZE'?)"
        )
        for line in lines
    )
    # A log record (it reads as the log does): the command to run ends the line.
    assert any(
        line.endswith(
            "no admin user exists in the access database; create one (its password is shown once) "
            f"with: PPC_AUTH_BOOTSTRAP_ADMIN=true ppc-serve {ini}"
        )
        for line in lines
    )
    base = f"http://127.0.0.1:{port}"
    assert f"pypicloud_lite: serving on 127.0.0.1:{port}; web UI: {base}/ui/  simple index: {base}/simple/" in lines
    assert not any("Traceback" in line for line in lines)


def test_make_config_keeps_an_existing_admins_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ini = tmp_path / "server.ini"
    args = [str(ini), "-y", "--access", "sql", "--password-stdin", "--force"]
    for password in ("first-password", "second-password"):
        monkeypatch.setattr("sys.stdin", io.StringIO(password + "\n"))
        assert make_config.main(args) == 0
    assert "its password is unchanged (run again with --reset-admin-password" in capsys.readouterr().out
    access = _access(ini)
    assert access.authenticate("admin", "first-password") is not None
    assert access.authenticate("admin", "second-password") is None
    monkeypatch.setattr("sys.stdin", io.StringIO("third-password\n"))
    assert make_config.main([*args, "--reset-admin-password"]) == 0
    assert _access(ini).authenticate("admin", "third-password") is not None


def _access(ini: Path) -> AccessBackend:
    access, _ = build_access(load_ini(ini, environ={}))
    return access


def test_gen_password_reads_stdin_without_a_terminal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("piped-password\n"))
    assert gen_password.main([]) == 0
    assert capsys.readouterr().out.startswith("$argon2id$")


def _dry_run(target: str) -> str:
    """What `make <target>` would run on a fresh clone (-B: every stamp out of date)."""
    done = subprocess.run(
        # --no-print-directory: under `make test` this make is a sub-make, which would print "make[1]: ...".
        ["make", "--no-print-directory", "-n", "-B", target],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout


def test_make_run_installs_only_what_running_needs() -> None:
    run = _dry_run("run")
    assert "pip install -q -e .\n" in run
    assert "[" not in run.split("ppc-serve")[0]  # no extras: neither the test and lint tools nor other backends
    test = _dry_run("test")
    assert "pip install -q -e '.[s3,dynamo,test,lint,postgres,mysql,gunicorn]'" in test
    assert test.index("pip install -q -e .\n") < test.index("[s3,dynamo,test")  # make test adds to what run has


def test_pserve_checks_the_port_and_the_settings_alike(
    tmp_path: Path, busy_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    ini = _ini(tmp_path, busy_port)
    raw = read_ini(ini)
    with pytest.raises(SystemExit) as exited:
        web_main({"__file__": str(ini)}, **raw)
    assert exited.value.code == 1
    assert capsys.readouterr().err == (
        f"pserve: cannot listen on 127.0.0.1:{busy_port}: the address is already in use; choose another port "
        "with `make run PORT=8080` or PPC_LISTEN=127.0.0.1:8080\n"
    )
    with pytest.raises(SystemExit) as exited:
        web_main({"__file__": str(ini)}, **{**raw, "web.page_max_ag": "1"})
    assert exited.value.code == 1  # the port is checked first
    free = _ini(tmp_path, free_port())
    with pytest.raises(SystemExit) as exited:
        web_main({"__file__": str(free)}, **{**raw, "web.page_max_ag": "1"})
    assert exited.value.code == 2
    assert capsys.readouterr().err.endswith(
        f"pserve: configuration error in {free}: unknown setting 'web.page_max_ag' (did you mean 'web.page_max_age'?)\n"
    )
