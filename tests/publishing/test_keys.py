"""IssuerKeys: discovery then JWKS, cached; a new key id fetched at once, but not more than once a refetch interval."""

from __future__ import annotations

from typing import Any

import pytest
from joserfc.jwk import ECKey, KeySet

from pypicloud_lite.publishing.keys import IssuerKeys, IssuerUnavailable

ISSUER = "https://issuer.example"


class FakeIssuer:
    """Answers discovery and JWKS from memory, counting the JWKS fetches; a clock the test moves."""

    def __init__(self) -> None:
        self.keys = [ECKey.generate_key("P-256", parameters={"kid": "one"})]
        self.discovery: dict[str, Any] = {"issuer": ISSUER, "jwks_uri": f"{ISSUER}/jwks"}
        self.jwks_fetches = 0
        self.now = 1000.0

    def fetch(self, url: str) -> dict[str, Any]:
        if url == f"{ISSUER}/.well-known/openid-configuration":
            return self.discovery
        self.jwks_fetches += 1
        return KeySet(list(self.keys)).as_dict(private=False)

    def clock(self) -> float:
        return self.now


def kids(keys: KeySet) -> list[str | None]:
    return [key.kid for key in keys.keys]


@pytest.fixture
def issuer() -> FakeIssuer:
    return FakeIssuer()


@pytest.fixture
def keys(issuer: FakeIssuer) -> IssuerKeys:
    return IssuerKeys(issuer.fetch, max_age=3600, refetch_interval=60, clock=issuer.clock)


def test_keys_are_cached_until_they_age(keys: IssuerKeys, issuer: FakeIssuer) -> None:
    assert kids(keys.key_set(ISSUER, "one")) == ["one"]
    assert kids(keys.key_set(ISSUER, "one")) == ["one"]
    assert issuer.jwks_fetches == 1
    issuer.now += 3600
    keys.key_set(ISSUER, "one")
    assert issuer.jwks_fetches == 2


def test_an_unknown_key_id_fetches_again_at_most_once_an_interval(keys: IssuerKeys, issuer: FakeIssuer) -> None:
    keys.key_set(ISSUER, "one")
    issuer.keys.append(ECKey.generate_key("P-256", parameters={"kid": "two"}))
    assert kids(keys.key_set(ISSUER, "two")) == ["one", "two"]  # rotated: fetched at once
    for made_up in ("x", "y", "z"):
        assert kids(keys.key_set(ISSUER, made_up)) == ["one", "two"]
    assert issuer.jwks_fetches == 2  # made-up key ids within the interval cost no fetch
    issuer.now += 60
    keys.key_set(ISSUER, "w")
    assert issuer.jwks_fetches == 3


def test_a_discovery_document_for_another_issuer_is_refused(keys: IssuerKeys, issuer: FakeIssuer) -> None:
    issuer.discovery["issuer"] = "https://elsewhere.example"
    with pytest.raises(IssuerUnavailable, match="names issuer"):
        keys.key_set(ISSUER, "one")


def test_symmetric_keys_in_a_jwks_are_ignored(issuer: FakeIssuer) -> None:
    def fetch(url: str) -> dict[str, Any]:
        document = issuer.fetch(url)
        if "keys" in document:
            document["keys"].append({"kty": "oct", "kid": "shared", "k": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"})
        return document

    assert kids(IssuerKeys(fetch).key_set(ISSUER, "shared")) == ["one"]
