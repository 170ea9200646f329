"""The reload's estimate: total, percentage, elapsed and time left, while listing, filling and done."""

from __future__ import annotations

from pypicloud_lite.reload_estimate import Estimate, estimate

START = 1_000_000.0


def test_listing_estimates_its_total_from_the_cache_and_never_says_100() -> None:
    listing = {"state": "listing", "listed": 250, "expected": 1000, "started": START}
    assert estimate(listing, START + 10) == Estimate("listing", 250, 1000, 25.0, 10.0, 30.0)
    assert estimate(listing, START + 10).line() == "listing: 250 of ~1000 files (25%), 10 s elapsed, about 30 s left"
    more = {**listing, "listed": 1200}
    assert estimate(more, START + 10).percent == 99.0  # more files than the cache had: not over yet
    empty = {"state": "listing", "listed": 3, "expected": 0, "started": START}
    assert estimate(empty, START + 1) == Estimate("listing", 3, 3, 99.0, 1.0, None)


def test_filling_counts_the_files_it_reads_from_when_files_became_visible() -> None:
    filling = {"state": "filling", "to_fill": 400, "filled": 100, "visible_seconds": 2.0, "started": START}
    assert estimate(filling, START + 6) == Estimate("filling", 100, 400, 25.0, 6.0, 12.0)
    assert estimate(filling, START + 6).line() == "filling: 100 of 400 files (25%), 6 s elapsed, about 12 s left"


def test_done_and_failed() -> None:
    done = {"state": "done", "listed": 7, "complete_seconds": 3.5, "started": START}
    assert estimate(done, START + 60) == Estimate("done", 7, 7, 100.0, 3.5, 0.0)
    assert estimate({"state": "failed", "listed": 2}, START).percent is None
