"""ppc-serve: run the ini's app on waitress. The listen address (PPC_LISTEN, else [server:main] listen) is bound
first, so a busy port stops the start before a first admin is created or its password printed; every
configuration error is one line naming the key and the file (or variable) it came from.
"""

from __future__ import annotations

import argparse
import configparser
import logging.config
import os
from pathlib import Path

import waitress

from pypicloud_lite.config import read_ini
from pypicloud_lite.errors import ConfigError
from pypicloud_lite.web import start_app
from pypicloud_lite.web.startup import StartupError, bind, fail, listen_address

PROGRAM = "ppc-serve"
# [server:main] keys that are not waitress options, or that ppc-serve sets itself.
_NOT_OPTIONS = frozenset({"use", "listen", "host", "port", "here", "__file__"})


def _server_options(ini: Path) -> dict[str, str]:
    try:
        return read_ini(ini, "server:main")
    except ConfigError:
        return {}


def _configure_logging(ini: Path) -> None:
    parser = configparser.ConfigParser()
    parser.read(ini)
    if parser.has_section("loggers"):
        defaults = {"here": str(ini.parent), "__file__": str(ini)}
        logging.config.fileConfig(ini, defaults=defaults, disable_existing_loggers=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROGRAM, description=__doc__)
    parser.add_argument("ini", nargs="?", default="development.ini", help="the ini file (default development.ini)")
    args = parser.parse_args(argv)
    ini = Path(args.ini).resolve()
    try:
        raw = read_ini(ini)
    except ConfigError as exc:
        raise fail(PROGRAM, exc.message, 2) from None
    options = _server_options(ini)
    listen = listen_address(options, os.environ)
    try:
        sockets = bind(listen)
    except StartupError as exc:
        raise fail(PROGRAM, str(exc), 1) from None
    _configure_logging(ini)
    app = start_app(raw, listen, args.ini, PROGRAM)
    server_options = {key: value for key, value in options.items() if key not in _NOT_OPTIONS}
    waitress.serve(app, sockets=sockets, **server_options)
    return 0
