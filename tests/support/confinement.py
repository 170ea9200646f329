"""A test may not touch files beside the repository: what it needs must be in the repository (tests/data).

The folders beside a checkout (for a git worktree, beside its main checkout too) are where a CI machine keeps
things a user's clone lacks, e.g. a folder of sample events: a test reading from there passes in CI
and fails after `git clone`. An audit hook (installed once per session by tests/conftest.py, and never removable)
sees every open, listing, glob, mkdir, remove and rename; one on a path in those folders but outside the
repository raises OutsideRepository (a PermissionError, as a sandbox would) and is recorded, and
`checked()` fails the test phase in which it happened even if the code under test swallowed the error.

Not watched: the repository itself, entries whose name starts with a dot directly beside it (tool folders
such as ~/.cache or ~/.aws when the repository sits in the home folder), the temporary folder, the Python
installation and its site-packages, /proc, /dev and /sys, a worktree's git metadata in the main checkout,
and a filesystem root as the parent. The nearer folder decides: a clone in /tmp/ci/ has /tmp/ci/samples
watched, although /tmp/ is exempt. Paths are normalized, not resolved: a symlink from elsewhere into the watched
folders is not noticed.
"""

from __future__ import annotations

import os
import site
import sys
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

# Audit event -> (indexes of its path arguments, index of its dir_fd argument or None).
EVENTS: dict[str, tuple[tuple[int, ...], int | None]] = {
    "open": ((0,), None),
    "os.listdir": ((0,), None),
    "os.scandir": ((0,), None),
    "glob.glob": ((0,), None),
    "glob.glob/2": ((0,), 3),
    "os.mkdir": ((0,), 2),
    "os.remove": ((0,), 1),
    "os.rmdir": ((0,), 1),
    "os.rename": ((0, 1), 2),
}


class OutsideRepository(PermissionError):
    """A test touched a file beside the repository."""


def main_checkout(repo: Path) -> Path | None:
    """The main checkout of `repo` if it is a git worktree (its `.git` is a file naming the worktree's git dir)."""
    dot_git = repo / ".git"
    if not dot_git.is_file():
        return None
    text = dot_git.read_text(encoding="utf-8").strip()
    if not text.startswith("gitdir:"):
        return None
    git_dir = repo / text.removeprefix("gitdir:").strip()
    common = git_dir / "commondir"
    if not common.is_file():
        return None
    return (git_dir / common.read_text(encoding="utf-8").strip()).resolve().parent


def default_exempt() -> list[str]:
    """Folders a test may use wherever they are: the temporary folder, the Python installation, the kernel's."""
    found = [tempfile.gettempdir(), sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix]
    found += [*site.getsitepackages(), site.getusersitepackages(), "/proc", "/dev", "/sys"]
    return found


def _prefix(path: Path | str) -> str:
    return os.path.normpath(os.fspath(path)).rstrip("/") + "/"


class Confinement:
    """Decides whether a path is beside the repository, records those that are, and fails the test for them."""

    def __init__(self, repo: Path, watched: Iterable[Path], exempt: Iterable[Path | str] = ()) -> None:
        self.repo = _prefix(repo)
        # A filesystem root is never watched: everything (the system, the temporary folder) is in it.
        self.watched = tuple(p for p in {_prefix(w) for w in watched} if p != "/")
        self.exempt = tuple(_prefix(e) for e in exempt)
        self.found: list[str] = []

    @classmethod
    def of(cls, repo: Path, exempt: Iterable[Path | str] = ()) -> Confinement:
        """Watch beside `repo`, and beside its main checkout if it is a git worktree."""
        main = main_checkout(repo)
        if main is None:
            return cls(repo, [repo.parent], [*default_exempt(), *exempt])
        # The worktree's git metadata lives in the main checkout's .git: reading it is no test's business, but no harm.
        return cls(repo, [repo.parent, main.parent], [*default_exempt(), main / ".git", *exempt])

    def violation(self, path: str) -> str | None:
        """`path` (absolute, or relative to the working folder) normalized if it is beside the repository."""
        if not path.startswith("/"):
            path = os.path.join(os.getcwd(), path)
        # Fast paths first: this runs on every open of the session.
        if not (path + "/").startswith(self.watched):
            return None
        if path.startswith(self.repo) and "/.." not in path:
            return None
        path = os.path.normpath(path)
        inside = path + "/"
        if inside.startswith(self.repo):
            return None
        watched = max((folder for folder in self.watched if inside.startswith(folder)), key=len, default=None)
        if watched is None:
            return None
        # The nearer folder decides: the temporary folder is exempt, but a clone in /tmp/ci/ still has
        # /tmp/ci/samples beside it (watched /tmp/ci/ is nearer than exempt /tmp/).
        exempt = max((folder for folder in self.exempt if inside.startswith(folder)), key=len, default="")
        if len(exempt) >= len(watched):
            return None
        if path[len(watched) :].startswith("."):
            return None  # a tool's folder beside the repository: ~/.cache, ~/.aws, ...
        return path

    def audit(self, event: str, args: tuple[Any, ...]) -> None:
        spec = EVENTS.get(event)
        if spec is None:
            return
        indexes, dir_fd = spec
        if dir_fd is not None and len(args) > dir_fd and args[dir_fd] not in (None, -1):
            return  # relative to an open folder this hook cannot name
        for index in indexes:
            raw = args[index]
            if isinstance(raw, int) or raw is None:
                continue
            try:
                path = os.fsdecode(raw)
                if event == "glob.glob/2" and args[2] is not None:
                    path = os.path.join(os.fsdecode(args[2]), path)
                found = self.violation(path)
            except (TypeError, ValueError, OSError):
                continue
            if found is not None:
                self.found.append(f"{event} {found}")
                raise OutsideRepository(f"a test may not touch {found}: it is beside the repository ({event})")

    @contextmanager
    def checked(self) -> Iterator[None]:
        """Fail (after the block) if the block touched anything beside the repository, caught or not."""
        start = len(self.found)
        yield
        new = self.found[start:]
        if new:
            listed = "\n  ".join(new)
            pytest.fail(f"touched files beside the repository (put what the test needs in tests/data):\n  {listed}")


class Watch:
    """The confinement the audit hook reports to (None until install()); a test may swap it for a fake."""

    active: Confinement | None = None
    hooked = False


WATCH = Watch()


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event in EVENTS and WATCH.active is not None:
        WATCH.active.audit(event, args)


def install(repo: Path, exempt: Iterable[Path | str] = ()) -> Confinement:
    """Watch from now on (the audit hook is added once per process: it cannot be removed)."""
    WATCH.active = Confinement.of(repo, exempt)
    if not WATCH.hooked:
        sys.addaudithook(_audit)
        WATCH.hooked = True
    return WATCH.active
