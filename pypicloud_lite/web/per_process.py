"""One app per process: a server that forks after loading the app (gunicorn --preload) gets a new one in each child.

make_app opens database engines, AWS clients and timer threads. None of them survives a fork: a pooled
connection would be shared by two processes, and a thread does not exist in the child. gunicorn without
--preload loads the app in each worker, after the fork; with it, or any server that forks after loading,
the first request in a new process builds that process's own app (the start-up a worker would have run),
and the inherited one is never used there.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from typing import Any


class PerProcess:
    """WSGI app that builds its app with `build` in each process that calls it."""

    def __init__(self, build: Callable[[], Any]) -> None:
        self._build = build
        self._lock = threading.Lock()
        self._app = build()
        self._pid = os.getpid()

    @property
    def registry(self) -> Any:
        """The Pyramid registry of this process's app (tests and tools reach it through the app)."""
        return self._current().registry

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        result: Iterable[bytes] = self._current()(environ, start_response)
        return result

    def _current(self) -> Any:
        if self._pid != os.getpid():
            # Only a new process's first requests get here; the parent never held this lock when forking,
            # since it takes it only while rebuilding after a fork of its own.
            with self._lock:
                if self._pid != os.getpid():
                    self._app = self._build()
                    self._pid = os.getpid()
        return self._app
