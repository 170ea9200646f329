"""Single-flight across server processes: one lease in the shared cache per upstream fetch, renewed while it runs.

A process that wants a page or a file first looks at what the last fetch left (its lease's final progress,
or the row it wrote); if that will do, no upstream request is made. Otherwise it takes the lease and fetches,
or, while another process holds the lease, waits for its result, at most `upstream.wait` seconds. A holder
renews its lease every third of `upstream.lease_ttl`, so a live fetch keeps it however long it takes and a
dead process's lease lapses within `lease_ttl`, after which a waiter takes it over.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from pypicloud_lite.cache.base import Leases
from pypicloud_lite.errors import PypicloudLiteError

logger = logging.getLogger(__name__)

T = TypeVar("T")
Progress = dict[str, object]
# What a fetch answers (a value, or the error to raise) and what its lease keeps for the other processes.
Outcome = tuple[T | BaseException, Progress]

# A waiter looks again after this long at first, doubling up to MAX_PAUSE.
FIRST_PAUSE = 0.02
MAX_PAUSE = 0.25


def lease_name(key: str) -> str:
    """The lease of one fetch (`key`: a project name, or `file:<filename>`), short enough for every backend."""
    return f"upstream:{hashlib.sha256(key.encode()).hexdigest()[:48]}"


def age_of(progress: Progress | None, outcome: str, now: float) -> float | None:
    """Seconds since a fetch ended with `outcome` (None: the last fetch ended otherwise, or none has ended)."""
    if progress is None or progress.get("outcome") != outcome:
        return None
    at = progress.get("at")
    return now - at if isinstance(at, int | float) else None


class SharedFlights:
    def __init__(self, leases: Leases, ttl: float, wait: float, wall: Callable[[], float] = time.time) -> None:
        self.leases = leases
        self.ttl = ttl
        self.wait = wait
        # Leases expire by the wall clock (every process's), so the ages of outcomes are read by it too.
        self.wall = wall
        self._lock = threading.Lock()
        self._waiting: Counter[str] = Counter()

    def run(
        self,
        name: str,
        settled: Callable[[Progress | None], T | None],
        work: Callable[[Progress | None], Outcome[T]],
        gave_up: Callable[[], T],
    ) -> T:
        """`settled(progress)`: the answer the last fetch left, if it will do (it may raise its error);
        `work(progress)`: fetch, holding the lease; `gave_up()`: the answer once `wait` has passed."""
        deadline = time.monotonic() + self.wait
        pause = FIRST_PAUSE
        waited = False
        try:
            while True:
                held, progress = self.leases.lock_state(name)
                done = settled(progress)
                if done is not None:
                    return done
                # A fetch that starts and ends between this look and this take costs one more upstream
                # request, never a wrong answer.
                if not held:
                    holder = uuid.uuid4().hex
                    if self.leases.acquire_lock(name, holder, self.ttl):
                        return self._lead(name, holder, progress, work)
                if time.monotonic() >= deadline:
                    logger.warning("gave up waiting %.0f s for another process's upstream fetch (%s)", self.wait, name)
                    return gave_up()
                if not waited:
                    waited = True
                    with self._lock:
                        self._waiting[name] += 1
                time.sleep(min(pause, max(deadline - time.monotonic(), 0.0)))
                pause = min(pause * 2, MAX_PAUSE)
        finally:
            if waited:
                with self._lock:
                    self._waiting[name] -= 1
                    if not self._waiting[name]:
                        del self._waiting[name]

    def waiting(self, name: str) -> int:
        """How many requests of this process wait on another process's fetch under the lease `name`."""
        with self._lock:
            return self._waiting[name]

    def _lead(self, name: str, holder: str, seen: Progress | None, work: Callable[[Progress | None], Outcome[T]]) -> T:
        try:
            with self._renewed(name, holder):
                answer, record = work(seen)
        except BaseException:
            self._release(name, holder, {"outcome": "error", "at": self.wall()})
            raise
        self._release(name, holder, {**record, "at": self.wall()})
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def _release(self, name: str, holder: str, progress: Progress) -> None:
        try:
            self.leases.release_lock(name, holder, progress)
        except PypicloudLiteError as exc:
            # The fetch's answer stands; its lease lapses within lease_ttl and the others fetch again.
            logger.warning("could not release the upstream lease %s: %s", name, exc)

    @contextmanager
    def _renewed(self, name: str, holder: str) -> Iterator[None]:
        stop = threading.Event()

        def renew() -> None:
            while not stop.wait(self.ttl / 3):
                try:
                    if not self.leases.update_lock(name, holder, self.ttl, {"outcome": "running"}):
                        logger.warning("the upstream lease %s lapsed while its fetch ran", name)
                        return
                except PypicloudLiteError as exc:
                    logger.warning("could not renew the upstream lease %s: %s", name, exc)

        beat = threading.Thread(target=renew, name="ppc-upstream-lease", daemon=True)
        beat.start()
        try:
            yield
        finally:
            stop.set()
            beat.join()
