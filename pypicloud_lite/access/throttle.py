"""In-process helpers of authentication: a short cache of verified passwords and a failed-login limiter."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable

from pypicloud_lite.errors import TooManyAttempts


class VerifiedCache:
    """Remembers credentials argon2 already verified, so pip's per-request Basic auth costs one hash per TTL.

    Keys include the stored hash: a changed password or deleted user misses at once.
    """

    def __init__(self, ttl: float, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[Hashable, float] = OrderedDict()
        self._lock = threading.Lock()

    def hit(self, key: Hashable) -> bool:
        with self._lock:
            expires = self._entries.get(key)
            if expires is None:
                return False
            if expires < self._clock():
                del self._entries[key]
                return False
            return True

    def add(self, key: Hashable) -> None:
        if self.ttl <= 0:
            return
        with self._lock:
            self._entries[key] = self._clock() + self.ttl
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)


class FailureLimiter:
    """At most `limit` failed logins per user and per client address in a sliding window."""

    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._next_sweep = clock() + window
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        failures = self._failures.get(key)
        if failures is None:
            return deque()
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if not failures:
            del self._failures[key]
        return failures

    def check(self, username: str, client: str | None) -> None:
        if self.limit <= 0:
            return
        now = self._clock()
        with self._lock:
            for key in self._keys(username, client):
                failures = self._recent(key, now)
                if len(failures) >= self.limit:
                    retry_after = max(1, int(failures[0] + self.window - now) + 1)
                    raise TooManyAttempts(
                        f"Too many failed logins; try again in {retry_after} seconds.", retry_after=retry_after
                    )

    def failed(self, username: str, client: str | None) -> None:
        if self.limit <= 0:
            return
        now = self._clock()
        with self._lock:
            # Once a window, forget every expired key: made-up user names must not grow memory.
            if now >= self._next_sweep:
                for key in list(self._failures):
                    self._recent(key, now)
                self._next_sweep = now + self.window
            for key in self._keys(username, client):
                self._recent(key, now)
                self._failures.setdefault(key, deque()).append(now)

    def succeeded(self, username: str) -> None:
        with self._lock:
            self._failures.pop(f"user:{username}", None)

    @staticmethod
    def _keys(username: str, client: str | None) -> list[str]:
        return [f"user:{username}"] + ([f"client:{client}"] if client else [])
