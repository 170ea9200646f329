"""One builder of the settings a test app or server starts from, and one writer of the inis the servers read."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pypicloud_lite.scripts.make_config import LOGGING_SECTIONS
from tests.support.common import UPLOADER, UPLOADER_HASH

# In an ini, the folder the ini is in (as PasteDeploy and pypicloud_lite.config.read_ini set it).
HERE = "%(here)s"
# Overrides for an app without the uploader: no `user.uploader`, no admins.
NO_UPLOADER: dict[str, str | None] = {f"user.{UPLOADER}": None, "auth.admins": None}
# The logging sections of a server ini, as ppc-make-config writes them.
LOGGING = "\n" + LOGGING_SECTIONS


def server_settings(root: Path | str, overrides: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """Local storage, an SQLite cache migrated on start and an upload spool under `root`, uploads up to 1 MB,
    and UPLOADER (password UPLOADER_PASSWORD) as the admin.

    `root` is a folder, or HERE in an ini. `overrides` replace or add settings; a None value removes one.
    """
    base: dict[str, str | None] = {
        "storage.backend": "local",
        "storage.dir": f"{root}/packages",
        "cache.backend": "sql",
        "cache.url": f"sqlite:///{root}/cache.sqlite",
        "cache.migrate_on_start": "true",
        "upload.max_size": "1MB",
        "upload.spool_dir": f"{root}/spool",
        f"user.{UPLOADER}": UPLOADER_HASH,
        "auth.admins": UPLOADER,
    }
    merged = {**base, **(overrides or {})}
    return {key: value for key, value in merged.items() if value is not None}


def write_ini(
    path: Path,
    settings: Mapping[str, str],
    port: int | None = None,
    *,
    threads: int = 4,
    waitress: str | None = None,
) -> Path:
    """A PasteDeploy ini: the app with `settings`, waitress (on 127.0.0.1:`port`, if given), and the logging.

    `waitress`: the server's options after `listen` (as make_config.waitress_options writes them) instead of
    `threads` alone. Values are written as they are: HERE stands for the ini's folder, and a literal `%` must
    be doubled.
    """
    app = {"use": "egg:pypicloud_lite", **settings}
    lines = ["[app:main]", *(f"{key} = {value}".rstrip() for key, value in app.items())]
    server = ["[server:main]", "use = egg:waitress#main"]
    if port is not None:
        server += [f"listen = 127.0.0.1:{port}"]
        server += [waitress.rstrip("\n")] if waitress is not None else [f"threads = {threads}"]
    path.write_text("\n".join(lines) + "\n\n" + "\n".join(server) + "\n" + LOGGING, encoding="utf-8")
    return path
