"""The verified-credential cache and the failed-login limiter, alone and through AccessBackend.authenticate."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from pypicloud_lite.access import passwords
from pypicloud_lite.access.base import AccessBackend
from pypicloud_lite.access.sql import SQLAccess
from pypicloud_lite.access.static import StaticAccess
from pypicloud_lite.access.throttle import FailureLimiter, VerifiedCache
from pypicloud_lite.config import load_settings
from pypicloud_lite.errors import TooManyAttempts

CHEAP = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
PASSWORDS = {"bob": "bob pw", "carol": "carol pw"}
HASHES = {name: CHEAP.hash(password) for name, password in PASSWORDS.items()}
BAD_TOKEN = "ppc_0123456789abcdef_" + "0" * 48


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(autouse=True)
def cheap_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(passwords, "_hasher", CHEAP)
    monkeypatch.setattr(passwords, "_DUMMY_HASH", CHEAP.hash("dummy"))


# -- VerifiedCache -----------------------------------------------------------------


def test_a_verified_credential_is_remembered_for_the_ttl(clock: Clock) -> None:
    cache = VerifiedCache(60, clock=clock)
    assert cache.hit("k") is False
    cache.add("k")
    assert cache.hit("k") is True
    assert cache.hit("other") is False
    clock.advance(59.9)
    assert cache.hit("k") is True
    clock.advance(0.2)
    assert cache.hit("k") is False
    assert cache.hit("k") is False  # gone, not revived


def test_adding_again_renews_the_ttl(clock: Clock) -> None:
    cache = VerifiedCache(60, clock=clock)
    cache.add("k")
    clock.advance(50)
    cache.add("k")
    clock.advance(50)
    assert cache.hit("k") is True
    clock.advance(11)
    assert cache.hit("k") is False


def test_a_zero_ttl_remembers_nothing(clock: Clock) -> None:
    cache = VerifiedCache(0, clock=clock)
    cache.add("k")
    assert cache.hit("k") is False


def test_the_oldest_entries_are_evicted_past_max_entries(clock: Clock) -> None:
    cache = VerifiedCache(60, max_entries=3, clock=clock)
    for key in ("a", "b", "c"):
        cache.add(key)
        clock.advance(1)
    cache.add("a")  # renewed: now the newest
    cache.add("d")
    assert [key for key in "abcd" if cache.hit(key)] == ["a", "c", "d"]
    for key in ("e", "f", "g"):
        cache.add(key)
    assert [key for key in "abcdefg" if cache.hit(key)] == ["e", "f", "g"]


def test_keys_are_whole_tuples() -> None:
    cache = VerifiedCache(60)
    cache.add(("bob", "$argon2id$old", "sha"))
    assert cache.hit(("bob", "$argon2id$old", "sha")) is True
    assert cache.hit(("bob", "$argon2id$new", "sha")) is False
    assert cache.hit(("bob", "$argon2id$old", "other")) is False


# -- FailureLimiter ----------------------------------------------------------------

ATTACKER, OWNER = "198.51.100.7", "203.0.113.9"


def retry_after(limiter: FailureLimiter, username: str, client: str | None = None) -> int:
    with pytest.raises(TooManyAttempts) as caught:
        limiter.check(username, client)
    assert f"{caught.value.retry_after} seconds" in caught.value.message
    return caught.value.retry_after


def fail(limiter: FailureLimiter, username: str, client: str | None, times: int) -> None:
    for _ in range(times):
        limiter.check(username, client)
        limiter.failed(username, client)


def test_n_failures_block_the_pair_with_a_retry_after_that_counts_down(clock: Clock) -> None:
    limiter = FailureLimiter(3, 60, clock=clock)
    for _ in range(3):
        limiter.check("bob", ATTACKER)
        limiter.failed("bob", ATTACKER)
        clock.advance(1)
    first = retry_after(limiter, "bob", ATTACKER)
    assert 1 <= first <= 60
    limiter.check("carol", ATTACKER)  # other users from that address are not affected

    clock.advance(20)
    later = retry_after(limiter, "bob", ATTACKER)
    assert later <= first - 19
    assert later >= 1

    clock.advance(later)  # waiting as long as told is always enough
    limiter.check("bob", ATTACKER)


def test_another_address_never_locks_the_user_out(clock: Clock) -> None:
    limiter = FailureLimiter(3, 60, clock=clock)
    for _ in range(20):
        try:
            fail(limiter, "alice", ATTACKER, 1)
        except TooManyAttempts:
            clock.advance(1)
    retry_after(limiter, "alice", ATTACKER)
    limiter.check("alice", OWNER)
    limiter.check("alice", None)


def test_each_block_of_a_pair_lasts_twice_as_long_up_to_the_cap(clock: Clock) -> None:
    limiter = FailureLimiter(3, 60, clock=clock, max_backoff=300)
    waits = []
    for _ in range(5):
        fail(limiter, "alice", ATTACKER, 3)
        wait = retry_after(limiter, "alice", ATTACKER)
        waits.append(wait)
        clock.advance(wait)
        limiter.check("alice", ATTACKER)
    assert waits == [60, 120, 240, 300, 300]
    # Quiet for the whole cap: the strikes are forgiven.
    clock.advance(301)
    fail(limiter, "alice", ATTACKER, 3)
    assert retry_after(limiter, "alice", ATTACKER) == 60


def test_an_address_trying_many_users_is_blocked_as_a_whole(clock: Clock) -> None:
    limiter = FailureLimiter(3, 60, clock=clock, address_limit=5)
    for i in range(5):
        fail(limiter, f"user{i}", ATTACKER, 1)
    assert retry_after(limiter, "someone-else", ATTACKER) == 60
    limiter.check("someone-else", OWNER)  # another address
    clock.advance(60)
    for i in range(5):
        fail(limiter, f"more{i}", ATTACKER, 1)
    assert retry_after(limiter, "someone-else", ATTACKER) == 120  # and it grows too


def test_the_retry_after_is_at_least_one_second(clock: Clock) -> None:
    limiter = FailureLimiter(1, 10, clock=clock)
    limiter.failed("bob", None)
    clock.advance(9.99)
    assert retry_after(limiter, "bob") == 1


def test_the_count_window_slides(clock: Clock) -> None:
    limiter = FailureLimiter(3, 60, clock=clock)
    for at in (0, 30, 61):  # the failure at 0 left the window before the third came
        clock.now = 1000 + at
        limiter.failed("bob", "192.0.2.1")
    limiter.check("bob", "192.0.2.1")
    limiter.failed("bob", "192.0.2.1")  # 30, 61, 61
    retry_after(limiter, "bob", "192.0.2.1")


def test_a_success_resets_the_pair_but_not_the_address(clock: Clock) -> None:
    limiter = FailureLimiter(3, 60, clock=clock, address_limit=4)
    limiter.failed("bob", "192.0.2.1")
    limiter.failed("bob", "192.0.2.1")
    limiter.succeeded("bob", "192.0.2.1")
    limiter.failed("bob", "192.0.2.1")
    limiter.check("bob", "192.0.2.1")
    # One valid account must not let an address reset its own counter between guesses.
    limiter.failed("carol", "192.0.2.1")
    retry_after(limiter, "dave", "192.0.2.1")


def test_a_zero_limit_never_blocks(clock: Clock) -> None:
    limiter = FailureLimiter(0, 60, clock=clock, address_limit=5)
    for i in range(50):
        limiter.failed(f"user{i}", "192.0.2.1")
        limiter.check(f"user{i}", "192.0.2.1")
    # A zero address limit leaves the per-user count.
    limiter = FailureLimiter(3, 60, clock=clock, address_limit=0)
    for i in range(50):
        fail(limiter, f"user{i}", "192.0.2.1", 2)


def test_a_disabled_limiter_keeps_no_failures(clock: Clock) -> None:
    limiter = FailureLimiter(0, 60, clock=clock, address_limit=0)
    for i in range(100):
        limiter.failed(f"user{i}", f"10.0.0.{i}")
    assert len(limiter._failures) == 0  # nothing will ever read them


def test_quiet_keys_are_forgotten(clock: Clock) -> None:
    # Usernames are the caller's choice: a stream of made-up names must not grow memory forever.
    limiter = FailureLimiter(3, 60, clock=clock, max_backoff=600)
    for i in range(1000):
        limiter.failed(f"made-up-{i}", "198.51.100.7")
    clock.advance(3600)
    for i in range(10):
        limiter.failed(f"later-{i}", None)
        limiter.check(f"later-{i}", None)
    assert len(limiter._failures) <= 20


# -- through AccessBackend.authenticate --------------------------------------------


@pytest.fixture
def static(tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> AccessBackend:
    raw = {
        "storage.dir": str(tmp_path / "packages"),
        "cache.url": "sqlite://",
        "auth.max_failed_logins": "3",
        "auth.failed_login_window": "300",
        **{f"user.{name}": hashed for name, hashed in HASHES.items()},
    }
    access, _ = StaticAccess.from_settings(load_settings(raw, environ={}).auth)
    limiter = access._limiter
    assert (limiter.limit, limiter.window, limiter.address_limit, limiter.max_backoff) == (3, 300, 30, 3600)
    monkeypatch.setattr(access, "_limiter", FailureLimiter(3, 300, clock=clock, max_backoff=3600))
    return access


def test_authenticate_blocks_the_guessing_address_not_the_owner(static: AccessBackend, clock: Clock) -> None:
    for _ in range(3):
        assert static.authenticate("bob", "wrong", client=ATTACKER) is None
    # Blocked at that address even with the right password: the guesser learns nothing.
    with pytest.raises(TooManyAttempts) as caught:
        static.authenticate("bob", PASSWORDS["bob"], client=ATTACKER)
    assert 1 <= caught.value.retry_after <= 300
    # The owner, elsewhere, is not locked out; nor is another user at the guessing address.
    assert static.authenticate("bob", PASSWORDS["bob"], client=OWNER) is not None
    assert static.authenticate("carol", PASSWORDS["carol"], client=ATTACKER) is not None

    clock.advance(300)
    assert static.authenticate("bob", PASSWORDS["bob"], client=ATTACKER) is not None


def test_an_attacker_hammering_the_admin_is_backed_off_ever_longer(static: AccessBackend, clock: Clock) -> None:
    waits = []
    for _ in range(3):
        for _ in range(3):
            assert static.authenticate("bob", "wrong", client=ATTACKER) is None
        with pytest.raises(TooManyAttempts) as caught:
            static.authenticate("bob", "wrong", client=ATTACKER)
        waits.append(caught.value.retry_after)
        assert static.authenticate("bob", PASSWORDS["bob"], client=OWNER) is not None
        clock.advance(caught.value.retry_after)
    assert waits == [300, 600, 1200]


def test_unknown_users_are_blocked_the_same_way(static: AccessBackend) -> None:
    for _ in range(3):
        assert static.authenticate("mallory", "guess") is None
    with pytest.raises(TooManyAttempts):
        static.authenticate("mallory", "guess")


def test_a_good_login_resets_the_pairs_count(static: AccessBackend) -> None:
    for _ in range(3):
        assert static.authenticate("bob", "wrong", client=OWNER) is None
        assert static.authenticate("bob", "wrong", client=OWNER) is None
        assert static.authenticate("bob", PASSWORDS["bob"], client=OWNER) is not None


def test_the_limit_comes_from_the_settings(tmp_path: Path) -> None:
    raw = {
        "storage.dir": str(tmp_path / "packages"),
        "cache.url": "sqlite://",
        "auth.max_failed_logins": "0",
        **{f"user.{name}": hashed for name, hashed in HASHES.items()},
    }
    access, _ = StaticAccess.from_settings(load_settings(raw, environ={}).auth)
    for _ in range(20):
        assert access.authenticate("bob", "wrong", client="198.51.100.7") is None
    assert access.authenticate("bob", PASSWORDS["bob"], client="198.51.100.7") is not None


@pytest.fixture
def sql(tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> Iterator[SQLAccess]:
    raw = {
        "storage.dir": str(tmp_path / "packages"),
        "cache.url": f"sqlite:///{tmp_path / 'access.sqlite'}",
        "cache.migrate_on_start": "true",
        "auth.backend": "sql",
        "auth.max_failed_logins": "3",
    }
    settings = load_settings(raw, environ={})
    access, _ = SQLAccess.from_settings(settings.auth, settings.cache)
    monkeypatch.setattr(access, "_limiter", FailureLimiter(3, 300, clock=clock))
    for name, password in PASSWORDS.items():
        access.create_user(name, password)
    try:
        yield access
    finally:
        access.close()


def test_bad_tokens_from_one_address_do_not_lock_out_every_token(sql: SQLAccess) -> None:
    good = sql.create_token("bob")
    for _ in range(3):
        assert sql.authenticate("__token__", BAD_TOKEN, client=ATTACKER) is None
    # Every token arrives as user __token__: a limit on that name would let anyone lock out all CI.
    identity = sql.authenticate("__token__", good.secret, client=ATTACKER)
    assert identity is not None
    assert identity.username == "bob"
    assert sql.authenticate("__token__", good.secret, client=OWNER) is not None
    assert sql.authenticate("bob", PASSWORDS["bob"], client=OWNER) is not None


def test_guesses_at_one_token_block_that_token_at_that_address(sql: SQLAccess, clock: Clock) -> None:
    target, bystander = sql.create_token("bob"), sql.create_token("carol")
    token_id = target.token.id
    for i in range(3):
        assert sql.authenticate("__token__", f"ppc_{token_id}_{i:048x}", client=ATTACKER) is None
    with pytest.raises(TooManyAttempts):
        sql.authenticate("__token__", target.secret, client=ATTACKER)
    assert sql.authenticate("__token__", bystander.secret, client=ATTACKER) is not None
    assert sql.authenticate("__token__", target.secret, client=OWNER) is not None
    clock.advance(301)
    assert sql.authenticate("__token__", target.secret, client=ATTACKER) is not None


def test_malformed_tokens_are_throttled_too(sql: SQLAccess) -> None:
    for _ in range(3):
        assert sql.authenticate("__token__", "not a token") is None
    with pytest.raises(TooManyAttempts):
        sql.authenticate("__token__", "still not a token")
