"""How far a reload is: done, total, percentage, elapsed time and time left, from its progress counts.

The counts (reload.ReloadProgress.as_dict(), also what the lock row holds for every process) are read as a
mapping, so the admin API, the admin page and ppc-reload show the same figures. While listing, the total is
an estimate: the package files the cache held when the reload began; while filling, it is exact.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Estimate:
    phase: str  # listing, filling, done, failed
    done: int
    total: int | None
    percent: float | None
    elapsed: float | None  # seconds
    remaining: float | None  # seconds left in this phase, when it can be told

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def line(self) -> str:
        """'filling: 1200 of 3000 files (40%), 3 s elapsed, about 5 s left'."""
        counted = (
            f"{self.done} of {'~' if self.phase == 'listing' else ''}{self.total}" if self.total else str(self.done)
        )
        parts = [f"{self.phase}: {counted} files" + (f" ({self.percent:.0f}%)" if self.percent is not None else "")]
        if self.elapsed is not None:
            parts.append(f"{self.elapsed:.0f} s elapsed")
        if self.remaining is not None and self.phase in ("listing", "filling"):
            parts.append(f"about {self.remaining:.0f} s left")
        return ", ".join(parts)


def _number(progress: Mapping[str, object], key: str) -> float:
    value = progress.get(key)
    return float(value) if isinstance(value, int | float) else 0.0


def estimate(progress: Mapping[str, object], now: float) -> Estimate:
    """The estimate of a reload's progress at wall-clock time `now`."""
    phase = str(progress.get("state") or "listing")
    started = _number(progress, "started")
    elapsed = max(now - started, 0.0) if started else None
    if phase in ("done", "failed"):
        done = int(_number(progress, "listed"))
        took = progress.get("complete_seconds")
        return Estimate(phase, done, done, 100.0 if phase == "done" else None, _float_or(took, elapsed), 0.0)
    phase_elapsed: float | None
    percent: float | None
    if phase == "filling":
        done, total = int(_number(progress, "filled")), int(_number(progress, "to_fill"))
        phase_elapsed = None if elapsed is None else max(elapsed - _number(progress, "visible_seconds"), 0.0)
        percent = 100.0 * done / total if total else 100.0
    else:
        done, total = int(_number(progress, "listed")), int(_number(progress, "expected"))
        total = max(total, done)
        phase_elapsed = elapsed
        # An estimate: never 100% before the listing ends.
        percent = min(100.0 * done / total, 99.0) if total else None
    remaining = None
    if phase_elapsed is not None and done and total and total > done:
        remaining = phase_elapsed * (total - done) / done
    return Estimate(phase, done, total or None, percent, elapsed, remaining)


def _float_or(value: object, default: float | None) -> float | None:
    return float(value) if isinstance(value, int | float) else default
