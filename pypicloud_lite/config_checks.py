"""Start-up checks of the configuration's names and URLs: unknown keys ("did you mean ..."), unknown PPC_*
environment variables, and database URLs spelled as other tools spell them.
"""

from __future__ import annotations

import difflib
import logging
import re
from collections.abc import Collection, Iterable, Iterator, Mapping

from pypicloud_lite.errors import ConfigError

logger = logging.getLogger(__name__)

# PPC_* variables that are not settings: ppc-serve's listen address (README "Running").
SERVER_VARIABLES = frozenset({"PPC_LISTEN"})
# Keys of the ini that are not ours but Pyramid's, its add-ons', or of our own open-ended families.
FOREIGN_PREFIXES = (
    "pyramid.",
    "jinja2.",
    "debugtoolbar.",
    "tm.",
    "retry.",
    "user.",
    "group.",
    "package.",
    "namespace.",
)
# postgres:// is what Heroku, libpq and many hosting panels write; SQLAlchemy knows only postgresql.
_POSTGRES = re.compile(r"^postgres(?:ql)?(\+[a-z0-9_]+)?://", re.IGNORECASE)


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the closest candidate, or '' when none is close."""
    match = difflib.get_close_matches(name, sorted(candidates), n=1, cutoff=0.75)
    return f" (did you mean {match[0]!r}?)" if match else ""


def check_unknown_keys(keys: Iterable[str], known: Collection[str], own_prefixes: tuple[str, ...]) -> None:
    """Refuse a key under one of our prefixes that no setting reads, or any other key that is close to one."""
    for key in keys:
        if key in known or key.startswith(FOREIGN_PREFIXES) or key in ("use", "here", "__file__"):
            continue
        hint = did_you_mean(key, known)
        if key.startswith(own_prefixes) or hint:
            raise ConfigError(f"unknown setting {key!r}{hint}")


def warn_unknown_variables(environ: Mapping[str, str], known: Collection[str], prefix: str) -> list[str]:
    """Log (and return) a warning for each `prefix`* variable that is neither a setting's nor the server's."""
    names = set(known) | SERVER_VARIABLES
    warnings = [
        f"the environment variable {name} is not a setting of pypicloud_lite and is ignored{did_you_mean(name, names)}"
        for name in sorted(environ)
        if name.startswith(prefix) and name not in names
    ]
    for warning in warnings:
        logger.warning("%s", warning)
    return warnings


class ConsultedEnviron(Mapping[str, str]):
    """The environment, remembering which variables were looked up: the settings' own, whatever they are."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.consulted: set[str] = set()

    def __getitem__(self, name: str) -> str:
        self.consulted.add(name)
        return self.environ[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.environ)

    def __len__(self) -> int:
        return len(self.environ)


def database_url(url: str) -> str:
    """postgres:// and postgresql:// (no driver) -> postgresql+psycopg://, the driver the postgres extra installs."""
    match = _POSTGRES.match(url)
    if match is None:
        return url
    return f"postgresql{match.group(1) or '+psycopg'}://" + url[match.end() :]
