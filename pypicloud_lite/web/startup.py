"""What the server checks and says before and as it starts: the listen address (bound before anything is
created or printed), configuration errors as one line naming the key and where it came from, a missing
admin, and the banner with the web UI's address.
"""

from __future__ import annotations

import difflib
import errno
import logging
import os
import re
import socket
import sys
from collections.abc import Collection, Mapping
from typing import TextIO

from waitress.adjustments import Adjustments

from pypicloud_lite.access.base import AccessBackend
from pypicloud_lite.config import Settings
from pypicloud_lite.config_environ import env_name
from pypicloud_lite.errors import BackendCredentialsError, BackendUnavailable, ConfigError
from pypicloud_lite.storage.base import Storage

logger = logging.getLogger(__name__)

DEFAULT_LISTEN = "127.0.0.1:6543"
LISTEN_VARIABLE = "PPC_LISTEN"
_KEY = re.compile(r"setting '([^']+)'")  # every ConfigError about one key names it so


class StartupError(Exception):
    """Start-up cannot go on: the message is the one line the operator reads (no traceback)."""

    def __init__(self, message: str, busy: bool = False) -> None:
        super().__init__(message)
        self.busy = busy  # another process listens there


def listen_address(server_options: Mapping[str, str], environ: Mapping[str, str]) -> str:
    """PPC_LISTEN, else the ini's [server:main] listen, else waitress's default here."""
    return (environ.get(LISTEN_VARIABLE) or server_options.get("listen") or DEFAULT_LISTEN).strip()


def bind(listen: str) -> list[socket.socket]:
    """Bound sockets for each of waitress's `listen` entries, or StartupError saying which one and why."""
    try:
        addresses = Adjustments(listen=listen).listen
    except (ValueError, OSError) as exc:
        raise StartupError(f"cannot listen on {listen!r}: {exc} (expected host:port, such as 127.0.0.1:8080)") from None
    sockets: list[socket.socket] = []
    for family, kind, proto, address in addresses:
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            sock.close()
            for bound in sockets:
                bound.close()
            shown = f"[{address[0]}]:{address[1]}" if family == socket.AF_INET6 else f"{address[0]}:{address[1]}"
            reason = "the address is already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
            raise StartupError(
                f"cannot listen on {shown}: {reason}; choose another port with `make run PORT=8080` "
                f"or {LISTEN_VARIABLE}=127.0.0.1:8080",
                busy=exc.errno == errno.EADDRINUSE,
            ) from None
        sockets.append(sock)
    return sockets


def check_port_free(listen: str) -> None:
    """StartupError now if another process listens on `listen` (pserve binds only after building the app);
    an address this host cannot bind at all is left for waitress to report."""
    try:
        sockets = bind(listen)
    except StartupError as exc:
        if exc.busy:
            raise
        return
    for sock in sockets:
        sock.close()


def config_error_line(
    error: ConfigError, ini: str, raw_keys: Collection[str] = (), environ: Mapping[str, str] | None = None
) -> str:
    """One line: where the bad value came from (the PPC_* variable that overrides it, else the ini), and why;
    a required key missing beside a key of the ini close to it names that one as the likely typo."""
    env = os.environ if environ is None else environ
    match = _KEY.search(error.message)
    if match and env_name(match.group(1)) in env:
        return f"configuration error in the environment variable {env_name(match.group(1))}: {error.message}"
    typo = ""
    if match and match.group(1) not in raw_keys:
        close = difflib.get_close_matches(match.group(1), sorted(raw_keys), n=1, cutoff=0.75)
        typo = f" (the file has {close[0]!r}: a typo?)" if close else ""
    return f"configuration error in {ini}: {error.message}{typo}"


def say(line: str, console: TextIO | None = None) -> None:
    """One line for the person who started the server, on stderr: the start banner and a refusal to start.
    Not a log record: it must read the same whatever `log.format` is, and come before logging is set up."""
    console = console or sys.stderr
    console.write(line + "\n")
    console.flush()


def fail(program: str, message: str, status: int, console: TextIO | None = None) -> SystemExit:
    """Say `program: message` on stderr and return the SystemExit to raise (no traceback)."""
    say(f"{program}: {message}", console)
    return SystemExit(status)


def admin_warning(settings: Settings, access: AccessBackend, ini: str) -> str | None:
    """The warning, with the command to run, when nobody can administer this index (None when someone can)."""
    if any(user.is_admin for user in access.list_users()):
        return None
    if settings.auth.backend == "sql":
        return (
            "no admin user exists in the access database; create one (its password is shown once) with: "
            f"PPC_AUTH_BOOTSTRAP_ADMIN=true ppc-serve {ini}"
        )
    return (
        f"no admin user exists; add one to {ini}: `auth.admins = admin` and `user.admin = HASH`, "
        "HASH being what `ppc-gen-password` prints"
    )


def banner(listen: str, public_url: str | None) -> str:
    """The addresses to open: the web UI and the simple index."""
    host = listen.split(maxsplit=1)[0]
    if host.startswith(("0.0.0.0:", "*:")):
        host = "127.0.0.1:" + host.rsplit(":", 1)[1]
    elif host.startswith("[::]:"):
        host = "[::1]:" + host.rsplit(":", 1)[1]
    base = public_url or f"http://{host}"
    return f"pypicloud_lite: serving on {listen}; web UI: {base}/ui/  simple index: {base}/simple/"


def check_storage(settings: Settings, storage: Storage) -> None:
    """At start, S3 storage is listed once: credentials it refuses (or none) stop the start
    (BackendCredentialsError); an outage is a warning, since it may end before the first request."""
    if settings.storage.backend != "s3":
        return
    try:
        storage.check_health()
    except BackendCredentialsError:
        raise
    except BackendUnavailable as exc:
        logger.warning("storage is not usable at start (serving anyway): %s", exc.message)
