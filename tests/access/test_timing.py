"""With real argon2 costs: unknown users cost what wrong passwords cost, and a right one is hashed once per TTL."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import pytest

from pypicloud_lite.access import base as access_base
from pypicloud_lite.access import passwords
from pypicloud_lite.access.base import AccessBackend
from pypicloud_lite.access.static import StaticAccess
from pypicloud_lite.access.throttle import VerifiedCache
from pypicloud_lite.config import load_settings
from tests.support.common import UPLOADER, UPLOADER_HASH, UPLOADER_PASSWORD

ROUNDS = 7
# Deliberately wide: this catches a skipped hash (a ~100x gap), not scheduler noise.
MAX_RATIO = 3.0


def static_access(tmp_path: Path, **raw: str) -> AccessBackend:
    settings = load_settings(
        {
            "storage.dir": str(tmp_path / "packages"),
            "cache.url": "sqlite://",
            f"user.{UPLOADER}": UPLOADER_HASH,  # hashed with the real (default) argon2 parameters
            "auth.max_failed_logins": "0",  # dozens of failures on purpose
            **raw,
        },
        environ={},
    )
    access, _ = StaticAccess.from_settings(settings.auth)
    return access


@pytest.fixture
def access(tmp_path: Path) -> AccessBackend:
    return static_access(tmp_path)


@pytest.fixture
def verifications(monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    """The stored hashes argon2 was asked to check, in order (wrapping the name authenticate() calls)."""
    calls: list[str | None] = []
    real = passwords.verify_password

    def counting(hashed: str | None, password: str) -> bool:
        calls.append(hashed)
        return real(hashed, password)

    monkeypatch.setattr(access_base, "verify_password", counting)
    return calls


def elapsed(access: AccessBackend, username: str, password: str) -> float:
    start = time.perf_counter()
    assert access.authenticate(username, password) is None
    return time.perf_counter() - start


def test_an_unknown_user_costs_about_what_a_wrong_password_costs(access: AccessBackend) -> None:
    elapsed(access, "nobody", "warm-up")
    elapsed(access, UPLOADER, "warm-up")
    unknown: list[float] = []
    wrong: list[float] = []
    for i in range(ROUNDS):  # interleaved, so drifts in machine load hit both alike
        unknown.append(elapsed(access, f"nobody-{i}", f"guess-{i}"))
        wrong.append(elapsed(access, UPLOADER, f"guess-{i}"))
    slow, fast = (
        max(statistics.median(unknown), statistics.median(wrong)),
        min(statistics.median(unknown), statistics.median(wrong)),
    )
    assert slow / fast < MAX_RATIO, f"unknown user {unknown}, wrong password {wrong}"


def test_each_failure_costs_one_argon2_check(access: AccessBackend, verifications: list[str | None]) -> None:
    for _ in range(2):
        assert access.authenticate("nobody", UPLOADER_PASSWORD) is None
        assert access.authenticate(UPLOADER, "wrong") is None
    # Failures are never cached, and unknown users are checked against the dummy hash.
    assert verifications == [None, UPLOADER_HASH, None, UPLOADER_HASH]


def test_a_right_password_is_hashed_once_per_ttl(
    access: AccessBackend, verifications: list[str | None], monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [0.0]
    ttl = access.settings.credential_cache_seconds
    assert ttl > 0
    monkeypatch.setattr(access, "_verified", VerifiedCache(ttl, clock=lambda: now[0]))

    for _ in range(5):
        identity = access.authenticate(UPLOADER, UPLOADER_PASSWORD)
        assert identity is not None
        assert identity.username == UPLOADER
    assert len(verifications) == 1

    assert access.authenticate(UPLOADER, UPLOADER_PASSWORD + "x") is None  # a wrong one is checked
    assert len(verifications) == 2

    now[0] += ttl + 1
    assert access.authenticate(UPLOADER, UPLOADER_PASSWORD) is not None
    assert access.authenticate(UPLOADER, UPLOADER_PASSWORD) is not None
    assert len(verifications) == 3


def test_a_zero_ttl_hashes_every_time(tmp_path: Path, verifications: list[str | None]) -> None:
    access = static_access(tmp_path, **{"auth.credential_cache_seconds": "0"})
    for _ in range(3):
        assert access.authenticate(UPLOADER, UPLOADER_PASSWORD) is not None
    assert len(verifications) == 3
