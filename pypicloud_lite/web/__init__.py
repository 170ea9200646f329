"""The Pyramid application: the only package that imports pyramid, webob, transaction or zope."""

from __future__ import annotations

import configparser
import logging
import os
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any, TextIO

from pyramid.config import Configurator

from pypicloud_lite.access.static import GeneratedAdmin
from pypicloud_lite.config import Settings, load_settings
from pypicloud_lite.config_checks import ConsultedEnviron, warn_unknown_variables
from pypicloud_lite.config_environ import ENV_PREFIX
from pypicloud_lite.errors import BackendUnavailable, ConfigError, Conflict
from pypicloud_lite.log_format import configure as configure_logging
from pypicloud_lite.web.admin_tasks import run_in_background
from pypicloud_lite.web.decoding import DecodingRequest
from pypicloud_lite.web.errors import ALLOWED_METHODS_KEY
from pypicloud_lite.web.observe import RequestObserver
from pypicloud_lite.web.per_process import PerProcess
from pypicloud_lite.web.public_address import PublicAddress
from pypicloud_lite.web.security import BasicAuthPolicy
from pypicloud_lite.web.services import REGISTRY_KEY, AppServices, build_services
from pypicloud_lite.web.session import LazySessionFactory, SessionLedger
from pypicloud_lite.web.simple_serving import SimpleFastPath
from pypicloud_lite.web.startup import (
    StartupError,
    admin_warning,
    banner,
    check_port_free,
    check_storage,
    config_error_line,
    fail,
    say,
)

logger = logging.getLogger(__name__)

CDN_TIMER_KEY = "ppc.cdn_timer"


def make_app(
    settings: Settings,
    raw_settings: dict[str, Any] | None = None,
    server_url: str = "http://127.0.0.1:6543",
    listen: str = "",
) -> PublicAddress:
    """The WSGI app; `server_url` is where the first admin is told to point clients (web.public_url wins),
    `listen` waitress's listen entries (their hosts are allowed by default).
    """
    app_services, generated = build_services(settings)
    config = Configurator(settings=raw_settings or {})
    config.registry[REGISTRY_KEY] = app_services
    ledger = SessionLedger(app_services.index.storage, settings.web.session_absolute_max_age)
    config.set_request_factory(DecodingRequest)
    config.set_security_policy(BasicAuthPolicy(app_services.access, ledger))
    config.set_session_factory(LazySessionFactory(settings.web, app_services.index.storage))
    config.include("pyramid_jinja2")
    config.add_jinja2_search_path("pypicloud_lite.web:templates", name=".jinja2")
    config.include("pypicloud_lite.web.routes")
    config.scan("pypicloud_lite.web.views")
    config.scan("pypicloud_lite.web.errors")
    config.scan("pypicloud_lite.web.csrf")
    config.scan("pypicloud_lite.web.forms")
    config.scan("pypicloud_lite.web.observe")
    config.commit()
    config.registry[ALLOWED_METHODS_KEY] = _allowed_methods(config)
    # Before anything starts: a web.public_url whose prefix the routes would mistake for a path stops here.
    inner: Any = SimpleFastPath(config.make_wsgi_app(), app_services)
    if settings.ops.access_log != "off" or settings.ops.metrics_enabled:
        inner = RequestObserver(inner, settings.ops)
    app = PublicAddress(inner, settings.web, listen)
    # What a process killed mid-upload left: every worker starting sweeps it, none touches a live file.
    app_services.index.remove_stale_temporary_files()
    if generated is not None:
        _announce(generated, settings.web.public_url or server_url)
    if settings.reload.on_start:
        _reload_on_start(app_services)
    if settings.cdn.enabled:
        from pypicloud_lite.cdn import start_flush_timer

        config.registry[CDN_TIMER_KEY] = start_flush_timer(app_services.index.cache, settings.cdn)
    return app


def _reload_on_start(app_services: AppServices) -> None:
    try:
        run = app_services.index.begin_reload(app_services.settings.reload.workers)
    except Conflict:
        logger.info("reload on start skipped: another process is reloading")
        return
    # The server answers from the current cache meanwhile: a reload never empties it.
    run_in_background(run)


def _allowed_methods(config: Configurator) -> dict[str, str]:
    """Route name -> the methods its views answer, for `405 Method Not Allowed` and `Allow`."""
    allowed: dict[str, set[str]] = defaultdict(set)
    for entry in config.registry.introspector.get_category("views"):
        view = entry["introspectable"]
        methods = view["request_methods"]
        if view["route_name"] and methods:
            methods = {methods} if isinstance(methods, str) else set(methods)
            allowed[view["route_name"]] |= methods | ({"HEAD"} if "GET" in methods else set())
    return {route: ", ".join(sorted(methods)) for route, methods in allowed.items()}


def main(global_config: dict[str, Any], **raw_settings: Any) -> PerProcess:
    """paste.app_factory entry point (`use = egg:pypicloud_lite` in the ini), as pserve and gunicorn run it;
    each process builds its own app."""
    listen = _listen(global_config)
    # Under gunicorn the arbiter has bound its own address before any worker loads the app.
    if "gunicorn.arbiter" not in sys.modules:
        try:
            check_port_free(listen)
        except StartupError as exc:
            raise fail("pserve", str(exc), 1) from None
    ini = global_config.get("__file__") or "the ini file"
    return PerProcess(lambda: start_app(raw_settings, listen, ini, "pserve"))


def start_app(raw_settings: dict[str, Any], listen: str, ini: str, program: str) -> PublicAddress:
    """The app, with configuration errors as one line and exit status 2; warns when no admin exists, then
    prints the banner with the web UI's address."""
    environ = ConsultedEnviron(os.environ)
    try:
        settings = load_settings(raw_settings, environ)
        # pserve has set up logging from the ini by now: its handlers get the chosen format and the redaction.
        configure_logging(settings.ops.log_format)
        # At start only (not in every tool and test that loads settings): the PPC_* variables no setting read.
        warn_unknown_variables(os.environ, environ.consulted, ENV_PREFIX)
        app = make_app(settings, raw_settings, f"http://{listen.split(maxsplit=1)[0]}", listen)
        check_storage(settings, app.registry[REGISTRY_KEY].index.storage)
        warning = admin_warning(settings, app.registry[REGISTRY_KEY].access, ini)
    except ConfigError as exc:
        raise fail(program, config_error_line(exc, ini, raw_settings), 2) from None
    except BackendUnavailable as exc:
        raise fail(program, exc.message, 1) from None
    if warning:
        logger.warning("%s", warning)
    say(banner(listen, settings.web.public_url))
    return app


def _listen(global_config: dict[str, Any]) -> str:
    """waitress's `listen` in the ini's [server:main] (its default when there is none)."""
    parser = configparser.ConfigParser()
    ini = global_config.get("__file__")
    if ini and parser.read(ini) and parser.has_section("server:main"):
        return parser.get("server:main", "listen", fallback="127.0.0.1:6543").strip() or "127.0.0.1:6543"
    return "127.0.0.1:6543"


# Where the first admin's password goes when nobody watches the console: the SQL backend has no file of its own.
SQL_PASSWORD_FILE = "bootstrap-admin.password"  # noqa: S105 (a file name)


def password_file(generated: GeneratedAdmin) -> Path:
    """Beside the bootstrap admin file (static), or in the current folder (sql: pserve's is the ini's)."""
    if generated.path is not None:
        return generated.path.with_name(generated.path.name + ".password")
    return Path(SQL_PASSWORD_FILE).resolve()


def write_private(path: Path, text: str) -> None:
    """Create `path` readable by its owner alone; never through an existing file or a planted symlink."""
    path.unlink(missing_ok=True)  # a previous admin's password, no longer valid
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        os.fchmod(fh.fileno(), 0o600)  # whatever the umask
        fh.write(text)


def _announce(generated: GeneratedAdmin, server_url: str, console: TextIO | None = None) -> None:
    # Deliberately not a log record, and the password itself only on an interactive terminal:
    # stderr that is not one (systemd, a container, `2>>log`) ends up in log files.
    console = console or sys.stderr
    stored = (
        f"It is stored hashed in {generated.path} (delete that file to generate a new one).\n"
        if generated.path
        else "It is stored hashed in the access database; change it with PUT /api/users/"
        f'{generated.username} and a JSON body {{"password": "..."}}.\n'
    )
    usage = (
        f"Install with:\n\n    pip install --index-url {server_url}/simple/ PROJECT\n\nUpload with:\n\n"
        f"    twine upload --repository-url {server_url}/legacy/ -u {generated.username} "
    )
    if console.isatty():
        console.write(
            "\n"
            f"pypicloud_lite: created the admin user {generated.username!r}; its password is shown only now:\n\n"
            f"    {generated.password}\n\n" + stored + usage + f"-p '{generated.password}' dist/*\n\n"
        )
        console.flush()
        return
    path = password_file(generated)
    try:
        write_private(path, generated.password + "\n")
    except OSError as exc:
        console.write(
            f"\npypicloud_lite: created the admin user {generated.username!r}, but could not write its password "
            f"to {path} ({exc.strerror}); start the server on a terminal to see it once.\n" + stored
        )
        console.flush()
        return
    console.write(
        "\n"
        f"pypicloud_lite: created the admin user {generated.username!r}; this is not a terminal, so its password "
        f"is in {path} (readable by its owner only): read it, then delete that file.\n"
        + stored
        + usage
        + f'-p "$(cat {path})" dist/*\n\n'
    )
    console.flush()
