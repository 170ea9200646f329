"""In-process helpers of authentication: a short cache of verified passwords and a failed-login limiter."""

from __future__ import annotations

import math
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


class _Strikes:
    """One key's recent failures and how often it has been blocked lately."""

    __slots__ = ("blocked_until", "failures", "last", "strikes")

    def __init__(self) -> None:
        self.failures: deque[float] = deque()
        self.strikes = 0
        self.blocked_until = 0.0
        self.last = 0.0


class FailureLimiter:
    """Failed logins counted per (user, client address) and per client address, with growing back-off.

    `limit` failures for one user from one address within `window` seconds block that pair
    (and only that pair) for `window` seconds, then twice as long at each further block, up
    to `max_backoff`. `address_limit` failures from one address, whatever the user names,
    block the address as a whole the same way. A user is never blocked by failures from
    another address: an attacker cannot lock the owner out, only themselves.
    """

    def __init__(
        self,
        limit: int,
        window: float,
        clock: Callable[[], float] = time.monotonic,
        address_limit: int | None = None,
        max_backoff: float | None = None,
    ) -> None:
        self.limit = limit
        self.window = window
        self.address_limit = limit * 3 if address_limit is None else address_limit
        self.max_backoff = max(window, max_backoff if max_backoff is not None else window * 12)
        self._clock = clock
        self._failures: dict[tuple[str, ...], _Strikes] = {}
        self._next_sweep = clock() + window
        self._lock = threading.Lock()

    def _keys(self, username: str, client: str | None) -> list[tuple[tuple[str, ...], int]]:
        # A zero `limit` turns the limiter off, the per-address count too (as it always has).
        if self.limit <= 0:
            return []
        keys: list[tuple[tuple[str, ...], int]] = [(("pair", username, client or ""), self.limit)]
        if client and self.address_limit > 0:
            keys.append((("client", client), self.address_limit))
        return keys

    def _forgettable(self, state: _Strikes, now: float) -> bool:
        # Quiet for a whole max_backoff since its last failure or block: the strikes are forgiven.
        return max(state.last, state.blocked_until) <= now - self.max_backoff

    def check(self, username: str, client: str | None) -> None:
        now = self._clock()
        with self._lock:
            for key, _ in self._keys(username, client):
                state = self._failures.get(key)
                if state is not None and state.blocked_until > now:
                    retry_after = max(1, math.ceil(state.blocked_until - now))
                    raise TooManyAttempts(
                        f"Too many failed logins; try again in {retry_after} seconds.", retry_after=retry_after
                    )

    def failed(self, username: str, client: str | None) -> None:
        now = self._clock()
        with self._lock:
            # Once a window, forget quiet keys: made-up user names and addresses must not grow memory.
            if now >= self._next_sweep:
                for old in [k for k, s in self._failures.items() if self._forgettable(s, now)]:
                    del self._failures[old]
                self._next_sweep = now + self.window
            for key, limit in self._keys(username, client):
                state = self._failures.get(key)
                if state is None or self._forgettable(state, now):
                    state = self._failures[key] = _Strikes()
                state.last = now
                if state.blocked_until > now:
                    continue  # a request that raced the block; it must not lengthen it
                failures = state.failures
                while failures and failures[0] <= now - self.window:
                    failures.popleft()
                failures.append(now)
                if len(failures) >= limit:
                    state.strikes += 1
                    state.blocked_until = now + min(self.max_backoff, self.window * 2 ** (state.strikes - 1))
                    failures.clear()

    def succeeded(self, username: str, client: str | None) -> None:
        # Only the pair: one valid account must not let an address reset its own count between guesses.
        with self._lock:
            self._failures.pop(("pair", username, client or ""), None)
