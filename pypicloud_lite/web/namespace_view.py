"""PEP 752 namespaces as the JSON API shows them: the project-detail field and the namespace endpoints' bodies."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from pypicloud_lite.access.base import AccessBackend
from pypicloud_lite.errors import NotFound
from pypicloud_lite.models import Grant
from pypicloud_lite.namespaces import Namespace, children_of, matching, parent_of
from pypicloud_lite.web.simple_pages import NamespacesField

# How long a process shows the namespaces it read (and each project's field) before reading them again.
# Pages carry them, and pages are already kept by clients and CDNs for minutes; reading the access backend
# on every JSON page costs more than the page itself. Upload checks never read from here.
MAX_AGE = 5.0
# Projects whose field is kept at once; past it the kept fields are dropped, not the namespaces.
MAX_FIELDS = 10_000


class NamespaceView:
    """The namespaces the pages show, read at most every `max_age` seconds; this process's changes show at once.

    `max_age` is at least MAX_AGE, longer when `cache.serial_max_age` (the staleness pages already accept) is.
    """

    def __init__(
        self, access: AccessBackend, max_age: float = MAX_AGE, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.access = access
        self.max_age = max(max_age, MAX_AGE)
        self.clock = clock
        self._lock = threading.Lock()
        self._known: tuple[float, list[Namespace]] | None = None
        self._fields: dict[str, NamespacesField] = {}

    def current(self) -> list[Namespace]:
        now = self.clock()
        known = self._known
        if known is not None and now - known[0] < self.max_age:
            return known[1]
        found = self.access.list_namespaces()
        with self._lock:
            self._known = (now, found)
            self._fields = {}
        return found

    def forget(self) -> None:
        with self._lock:
            self._known = None
            self._fields = {}

    def project_field(self, project: str) -> NamespacesField:
        """PEP 752's `namespaces` of a project: null outside every namespace, else name and `owned` per namespace."""
        found = matching(self.current(), project)
        if not found:
            return None
        fields = self._fields
        if project in fields:
            return fields[project]
        owners = self.access.owners(project)
        field: NamespacesField = [{"name": ns.name, "owned": self._owned(ns, owners)} for ns in found]
        with self._lock:
            if len(fields) >= MAX_FIELDS:
                fields.clear()
            fields[project] = field
        return field

    def _owned(self, namespace: Namespace, owners: list[Grant]) -> bool:
        """Is one of the project's owners an owner of the namespace (the user, the group, or a member of it)?"""
        for grant in owners:
            if (grant.kind, grant.name) == (namespace.kind, namespace.owner):
                return True
            if namespace.kind == "group" and grant.kind == "user":
                user = self.access.get_user(grant.name)
                if user is not None and namespace.owner in user.groups:
                    return True
        return False

    def listing(self) -> list[dict[str, str]]:
        """`/namespaces`: every namespace, by its normalized name."""
        return [{"name": ns.name} for ns in self.current()]

    def detail(self, name: str) -> dict[str, object]:
        """`/namespace/<name>` (normalized): name, parent, direct children and owner; NotFound if not reserved."""
        every = self.current()
        namespace = next((ns for ns in every if ns.name == name), None)
        if namespace is None:
            raise NotFound(f"No namespace {name!r} in this index.")
        return {
            "name": namespace.name,
            "parent": parent_of(every, name),
            "children": children_of(every, name),
            "owner": namespace.principal,
        }
