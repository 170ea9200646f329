"""A large fill's processes rest while other work keeps them waiting for the CPU, and only then."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import webtest

from pypicloud_lite import activity
from pypicloud_lite.reload_pacing import REST_FACTOR, WINDOW_SECONDS, Pacer


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class Flag:
    def __init__(self, value: int) -> None:
        self.value = value


def _pacer(tmp_path: Path, clock: Clock, serving: Flag | None = None) -> tuple[Pacer, Path]:
    schedstat = tmp_path / "schedstat"
    schedstat.write_text("1000000000 0 10\n")
    return Pacer(schedstat, clock=clock, sleep=clock.sleep, serving=serving), schedstat


def _batch(pacer: Pacer, clock: Clock, schedstat: Path, run_ns: int, waited_ns: int, seconds: float) -> None:
    """One batch of `seconds`, over which the kernel counted `run_ns` run and `waited_ns` waited."""
    started = clock.now
    clock.now += seconds
    run, waited, slices = (int(x) for x in schedstat.read_text().split())
    schedstat.write_text(f"{run + run_ns} {waited + waited_ns} {slices + 1}\n")
    pacer.rest_after(started)


def test_a_fill_process_waiting_for_the_cpu_rests_three_times_each_batch(tmp_path: Path) -> None:
    clock = Clock()
    pacer, schedstat = _pacer(tmp_path, clock)
    # Other work kept it waiting 70% of the time it wanted to run (as beside a server under load).
    _batch(pacer, clock, schedstat, 60_000_000, 140_000_000, WINDOW_SECONDS)
    assert clock.slept == [pytest.approx(REST_FACTOR * WINDOW_SECONDS)]
    # Still contended: each batch is followed by a rest in proportion to it.
    _batch(pacer, clock, schedstat, 5_000_000, 10_000_000, 0.01)
    assert clock.slept[-1] == pytest.approx(REST_FACTOR * 0.01)


def test_a_fill_process_on_an_idle_machine_never_rests(tmp_path: Path) -> None:
    clock = Clock()
    pacer, schedstat = _pacer(tmp_path, clock)
    for _ in range(5):
        _batch(pacer, clock, schedstat, 199_000_000, 1_000_000, WINDOW_SECONDS)
    assert clock.slept == [] and pacer.rested == 0


def test_a_fill_process_goes_back_to_full_speed_once_the_machine_is_idle_again(tmp_path: Path) -> None:
    clock = Clock()
    pacer, schedstat = _pacer(tmp_path, clock)
    _batch(pacer, clock, schedstat, 50_000_000, 150_000_000, WINDOW_SECONDS)
    assert pacer.contended
    # The rest after it counts in no measure: the kernel counts neither run nor wait while it sleeps.
    _batch(pacer, clock, schedstat, 200_000_000, 0, WINDOW_SECONDS)
    assert not pacer.contended
    rests = len(clock.slept)
    _batch(pacer, clock, schedstat, 10_000_000, 0, 0.01)
    assert len(clock.slept) == rests


def test_a_fill_process_waiting_for_the_cpu_rests_only_while_the_server_answers_requests(tmp_path: Path) -> None:
    """Waiting for the CPU on an idle server is the fill's own doing (a database on the same machine applying its
    rows): no rest then. Once requests come, the same wait means rest."""
    clock = Clock()
    serving = Flag(0)
    pacer, schedstat = _pacer(tmp_path, clock, serving)
    _batch(pacer, clock, schedstat, 60_000_000, 140_000_000, WINDOW_SECONDS)
    assert clock.slept == [] and not pacer.contended
    serving.value = 1
    _batch(pacer, clock, schedstat, 60_000_000, 140_000_000, WINDOW_SECONDS)
    assert clock.slept == [pytest.approx(REST_FACTOR * WINDOW_SECONDS)]


def test_every_request_the_app_begins_is_counted(testapp: webtest.TestApp) -> None:
    before = activity.requests_begun()
    for _ in range(3):
        testapp.get("/simple/", status="*")
    assert activity.requests_begun() == before + 3


def test_where_the_kernel_keeps_no_such_account_a_fill_never_rests(tmp_path: Path) -> None:
    clock = Clock()
    pacer = Pacer(tmp_path / "absent", clock=clock, sleep=clock.sleep)
    for _ in range(3):
        started = clock.now
        clock.now += WINDOW_SECONDS
        pacer.rest_after(started)
    assert clock.slept == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the kernel's account per thread is Linux's")
def test_this_kernel_keeps_the_account_the_pacer_reads() -> None:
    run, waited, *_ = Path("/proc/thread-self/schedstat").read_text().split()
    assert int(run) > 0 and int(waited) >= 0
