"""PEP 752 namespaces: reserved project-name prefixes, which names they cover, and how they may nest."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from pypicloud_lite.errors import Conflict, InvalidInput
from pypicloud_lite.naming import is_valid_project_name, normalize

# PEP 752 asks repositories for a depth limit: `a-b-c-d` (three hyphens) is the deepest namespace here.
MAX_HYPHENS = 3
MAX_LENGTH = 100
_OWNER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_@+-]{0,99}\Z")  # access.base.USER_NAME


@dataclass(frozen=True)
class Namespace:
    """A reserved prefix: `name` normalized (what matching uses), `display_name` as it was reserved."""

    name: str
    display_name: str
    kind: str  # "user" or "group": who owns it
    owner: str
    created: datetime | None = None  # None: from the ini

    @property
    def principal(self) -> str:
        return f"{self.kind}:{self.owner}"

    def covers(self, project: str) -> bool:
        """The namespace itself and every name starting with it and a hyphen (`corp`: `corp-tool`, not `corptool`)."""
        return project == self.name or project.startswith(self.name + "-")


def check_namespace_name(name: str) -> str:
    """The normalized namespace, or InvalidInput: a valid project name, within the depth limit."""
    if not name or len(name) > MAX_LENGTH or not is_valid_project_name(name):
        raise InvalidInput(
            f"Invalid namespace {name!r}: a namespace is a valid project name "
            f"(letters, digits, and . _ - inside; {MAX_LENGTH} characters at most)."
        )
    normalized = normalize(name)
    if normalized.count("-") > MAX_HYPHENS:
        raise InvalidInput(f"Namespace {name!r} is too deep: {MAX_HYPHENS} hyphens at most.")
    return normalized


def parse_owner(text: str) -> tuple[str, str]:
    """`user:<name>` or `group:<name>` as (kind, name): who may own a namespace."""
    kind, _, name = text.strip().partition(":")
    if kind not in ("user", "group") or not _OWNER_NAME.match(name) or name in ("everyone", "authenticated"):
        raise InvalidInput(f"A namespace owner is user:<name> or group:<name> (not a built-in group), got {text!r}.")
    return kind, name


def matching(namespaces: Iterable[Namespace], project: str) -> list[Namespace]:
    """Every namespace covering this project name, broadest first."""
    name = normalize(project)
    return sorted((ns for ns in namespaces if ns.covers(name)), key=lambda ns: len(ns.name))


def governing(namespaces: Iterable[Namespace], project: str) -> Namespace | None:
    """The namespace that decides who may create `project`: the deepest one covering it (a child grant)."""
    found = matching(namespaces, project)
    return found[-1] if found else None


def check_new_namespace(existing: Iterable[Namespace], proposed: Namespace) -> None:
    """Conflict when `proposed` is reserved already, or would cover another owner's namespace.

    PEP 752's overlap rule: a namespace that an existing one starts with (hyphens appended to both) is
    possible only for the existing one's owner. A narrower namespace inside another's (a child) is not an
    overlap: the deepest namespace governs the names it covers.
    """
    for ns in existing:
        if ns.name == proposed.name:
            raise Conflict(f"Namespace {ns.name!r} is already reserved (owner {ns.principal}).")
        if (ns.name + "-").startswith(proposed.name + "-") and ns.principal != proposed.principal:
            raise Conflict(
                f"Namespace {proposed.name!r} would cover namespace {ns.name!r} of {ns.principal}: "
                "only that owner may reserve it."
            )


def parent_of(namespaces: Iterable[Namespace], name: str) -> str | None:
    """The deepest other namespace covering `name`, or None."""
    parents = [ns.name for ns in namespaces if ns.name != name and ns.covers(name)]
    return max(parents, key=len) if parents else None


def children_of(namespaces: Iterable[Namespace], name: str) -> list[str]:
    """The namespaces whose parent is `name`, sorted."""
    every = list(namespaces)
    return sorted(ns.name for ns in every if ns.name != name and parent_of(every, ns.name) == name)
