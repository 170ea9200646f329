"""The password policy: the auth.password_* settings (parsed by config.py) and the check of a new password.

A new password (set by its user, by an admin, or by ppc-make-config) must be at least
`auth.password_min_length` characters, must not be the user's name, and must not be in the list of common
passwords `auth.common_passwords` names: `bundled` (pypicloud_lite/common_passwords.txt), a file with one
password a line (`#` starts a comment), or `none`. Passwords already set are not checked again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Protocol

from pypicloud_lite.config_values import parse_count
from pypicloud_lite.errors import ConfigError, InvalidInput

BUNDLED = "bundled"
DEFAULT_MIN_LENGTH = 8  # PyPI's and NIST SP 800-63B's minimum


def _read_list(text: str) -> frozenset[str]:
    lines = (line.strip() for line in text.splitlines())
    return frozenset(line.casefold() for line in lines if line and not line.startswith("#"))


def bundled_list() -> frozenset[str]:
    return _read_list(resources.files("pypicloud_lite").joinpath("common_passwords.txt").read_text("utf-8"))


@dataclass(frozen=True)
class PasswordPolicy:
    min_length: int = DEFAULT_MIN_LENGTH
    common: frozenset[str] = field(default_factory=bundled_list, repr=False)

    def check(self, password: str, username: str) -> None:
        """InvalidInput saying what is wrong with `password` as `username`'s new password."""
        if len(password) < self.min_length:
            raise InvalidInput(f"The password is too short: use at least {self.min_length} characters.")
        if password.casefold() == username.casefold():
            raise InvalidInput("The password must not be the user name.")
        if password.casefold() in self.common:
            raise InvalidInput("The password is one of the most common passwords: choose another.")


class _Reader(Protocol):
    def typed(self, key: str, parse: Callable[[str], int], default: str) -> int: ...

    def get(self, key: str, default: str | None = None) -> str | None: ...


def password_policy(r: _Reader) -> PasswordPolicy:
    """auth.password_min_length and auth.common_passwords (bundled, none, or a file)."""
    min_length = r.typed("auth.password_min_length", parse_count, str(DEFAULT_MIN_LENGTH))
    source = (r.get("auth.common_passwords", BUNDLED) or BUNDLED).strip()
    if source == BUNDLED:
        return PasswordPolicy(min_length)
    if source == "none":
        return PasswordPolicy(min_length, frozenset())
    try:
        return PasswordPolicy(min_length, _read_list(Path(source).expanduser().read_text("utf-8")))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"setting 'auth.common_passwords': cannot read {source!r} ({exc}); give bundled, none or a file"
        ) from None
