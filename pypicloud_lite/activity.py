"""How many requests this process has begun to answer: a reload's fill rests while they keep coming
(reload.ReloadRun._fill_in_processes, reload_pacing.Pacer)."""

from __future__ import annotations

import itertools

# next() on a count is atomic under the GIL: threads never lose one.
_requests = itertools.count(1)
_seen = [0]


def note_request() -> None:
    _seen[0] = next(_requests)


def requests_begun() -> int:
    return _seen[0]
