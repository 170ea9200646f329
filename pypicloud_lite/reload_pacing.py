"""A large fill's processes slow down while other work wants the CPU they run on.

Niceness, SCHED_IDLE and a scheduling group of their own (reload_fill.apart) hand the CPU to a request thread
that wants it, but not at no cost: on a machine of two virtual cores serving pages under load, a process that
only hashes files at background priority still took 10 to 30% of the server's rate (bench/README.md, issue 15,
eleventh pass), whatever the kernel was told. So a fill process also measures, from the kernel's own account of
its thread (`/proc/thread-self/schedstat`: time run, time waited runnable), whether something else keeps it
waiting, while the server is answering requests; while both hold, the process rests twenty times as long as
each batch took: it then takes at most a twenty-first of what it could. Measured with `bench.fill_pages` (20,000
files, medians of 5 rounds, `/simple/` / project pages): resting 3 times kept 81% / 79% of the steady rate, 8 times
83% / 81%, 12 times 86% / 83%, 20 times 101% / 97% in one run and 89% / 77% in another: what the fill reads under
load, not a scheduler setting, is much of what the pages pay for; the rest was the listing the page cache read
again after each serial move (it now brings it up to date: 89 to 91% / 90 to 92%). On an idle server or an idle
machine it runs at full speed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

SCHEDSTAT = Path("/proc/thread-self/schedstat")
# How often the share of time waited is measured, and above which share other work is taken to want the CPU.
# Measured here: 0.00 to 0.02 with the machine otherwise idle, 0.64 to 0.74 beside a server under load.
WINDOW_SECONDS = 0.2
CONTENDED_SHARE = 0.3
# While contended: rest this many times each batch's time after it (see above).
REST_FACTOR = 20.0


class Shared(Protocol):
    """A flag another process sets (a multiprocessing RawValue)."""

    value: int


class Pacer:
    """After each batch (`rest_after`), rest in proportion to it while the kernel says other work is waiting.

    With `serving`, only while that flag also says the server is answering requests (the reload sets it): the
    fill's own work elsewhere on the machine (a local database applying its rows, a DynamoDB emulator) does not
    slow it down on an idle server.
    """

    def __init__(
        self,
        schedstat: Path = SCHEDSTAT,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        serving: Shared | None = None,
    ) -> None:
        self.schedstat, self.clock, self.sleep, self.serving = schedstat, clock, sleep, serving
        self.contended = False
        self.rested = 0.0
        self._last = self._read()
        self._measured = clock()

    def _read(self) -> tuple[int, int] | None:
        """(ns run, ns waited runnable) of this thread so far; None where the kernel does not say (not Linux)."""
        try:
            run, waited, *_ = self.schedstat.read_text().split()
            return int(run), int(waited)
        except (OSError, ValueError):
            return None

    def rest_after(self, started: float) -> None:
        """A batch that began at `started` (this pacer's clock) is done: measure, and rest if contended."""
        now = self.clock()
        if self._last is not None and now - self._measured >= WINDOW_SECONDS:
            current = self._read()
            if current is not None:
                run, waited = current[0] - self._last[0], current[1] - self._last[1]
                busy = self.serving is None or bool(self.serving.value)
                self.contended = busy and waited > CONTENDED_SHARE * max(run + waited, 1)
            self._last, self._measured = current, now
        if self.contended:
            pause = REST_FACTOR * max(now - started, 0.0)
            self.rested += pause
            self.sleep(pause)
