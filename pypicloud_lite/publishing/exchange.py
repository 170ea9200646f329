"""The Trusted Publishing exchange: a CI job's OIDC token in, a short-lived upload token of this index out.

The token is verified (an asymmetric signature by a key its issuer publishes now; issuer, audience, expiry
and not-before with a small leeway; a `jti`), matched against the registered publishers, and used once:
its `jti` is claimed in the shared cache until it expires, so no process of this index accepts it again.
The upload token is an ordinary API token of the publisher's registrant, limited to the matched projects.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidClaimError,
    InvalidKeyIdError,
    JoseError,
    MissingClaimError,
)
from joserfc.jws import extract_compact

from pypicloud_lite.access.base import AccessBackend, Identity
from pypicloud_lite.access.publishers import Publisher, describe_run
from pypicloud_lite.cache.base import Cache
from pypicloud_lite.errors import PypicloudLiteError
from pypicloud_lite.models import utcnow
from pypicloud_lite.publishing.keys import IssuerKeys, IssuerUnavailable
from pypicloud_lite.publishing_settings import PublishingSettings

logger = logging.getLogger(__name__)

# Asymmetric signatures only: with HS256 the "key" would be public, and `none` is no signature at all.
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]
MAX_JWT = 16 * 1024


class MintRefused(PypicloudLiteError):
    """Why no token was minted: a PyPI error code, a description, and the HTTP status to answer with."""

    def __init__(self, code: str, description: str, status: int = 422) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.status = status


@dataclass(frozen=True)
class Minted:
    token: str
    expires: datetime
    publisher: Publisher
    projects: tuple[str, ...]
    run: str


def _invalid(description: str) -> MintRefused:
    return MintRefused("invalid-token", description)


class TrustedPublishing:
    def __init__(
        self, settings: PublishingSettings, access: AccessBackend, cache: Cache, keys: IssuerKeys | None = None
    ) -> None:
        self.settings = settings
        self.access = access
        self.cache = cache
        self.keys = keys or IssuerKeys()

    @property
    def enabled(self) -> bool:
        """Publishers and minted tokens live in the access database: a read-only (static) one has neither."""
        return self.settings.enabled and not self.access.read_only

    def mint(self, raw: Any, audience: str, address: str | None = None) -> Minted:
        """Exchange the JWT `raw` (the `token` of the request body, sent from `address`) for an upload token;
        MintRefused says why not."""
        if not self.enabled:
            raise MintRefused("not-enabled", "Trusted publishing is not enabled on this index.")
        if not isinstance(raw, str) or not raw or len(raw) > MAX_JWT:
            raise MintRefused("invalid-payload", 'The body must be JSON: {"token": "<the OIDC token>"}.')
        claims = self._verify(raw, audience)
        kind, matched = self._publishers(claims)
        run = describe_run(kind, claims)
        username, projects = self._registrant_projects(matched)
        self._use_once(claims)
        expires = utcnow() + timedelta(seconds=self.settings.token_lifetime)
        publisher = next(p for p in matched if p.added_by == username)
        new = self.access.create_token(
            username,
            description=f"trusted publisher {publisher.id}: {run}",
            projects=list(projects),
            expires=expires,
            publisher=publisher.id,
        )
        self.access.audit.record(
            "token.mint",
            username,
            address,
            target=new.token.id,
            detail=f"trusted publisher {publisher.id} ({publisher.label()}) minted token {new.token.id} for "
            f"{', '.join(projects)}: {run}",
        )
        return Minted(new.secret, expires, publisher, projects, run)

    # -- the steps -----------------------------------------------------------------

    def _verify(self, raw: str, audience: str) -> dict[str, Any]:
        try:
            unverified = extract_compact(raw.encode())
            header = unverified.headers()
            payload = json.loads(unverified.payload)
        except (JoseError, ValueError, TypeError):
            raise _invalid("The token is not a JWT (header.payload.signature).") from None
        algorithm = header.get("alg")
        if algorithm not in ALGORITHMS:
            raise _invalid(f"Algorithm {algorithm!r} is refused: only asymmetric signatures ({', '.join(ALGORITHMS)}).")
        issuer = payload.get("iss") if isinstance(payload, dict) else None
        if issuer not in self.settings.known_issuers():
            raise _invalid(f"Issuer {issuer!r} is not trusted by this index.")
        kid = header.get("kid") if isinstance(header.get("kid"), str) else None
        try:
            keys = self.keys.key_set(issuer, kid)
        except IssuerUnavailable as exc:
            logger.warning("trusted publishing: issuer %s unavailable: %s", issuer, exc)
            raise MintRefused("invalid-token", f"The issuer's keys cannot be fetched now: {exc}", 503) from exc
        try:
            token = jwt.decode(raw, keys, algorithms=ALGORITHMS)
        except InvalidKeyIdError:
            raise _invalid(f"Key {kid!r} is not in the issuer's key set (JWKS).") from None
        except BadSignatureError:
            raise _invalid("The token's signature does not verify with the issuer's keys.") from None
        except (JoseError, ValueError) as exc:
            raise _invalid(f"The token cannot be verified: {exc}") from None
        registry = jwt.JWTClaimsRegistry(
            leeway=self.settings.leeway,
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "value": audience},
            exp={"essential": True},
            jti={"essential": True},
        )
        try:
            registry.validate(token.claims)
        except ExpiredTokenError:
            raise _invalid("The token has expired.") from None
        except MissingClaimError as exc:
            raise _invalid(f"The token lacks a required claim: {exc.description}") from None
        except InvalidClaimError as exc:
            if exc.claim == "aud":
                given = token.claims.get("aud")
                raise _invalid(f"The token's audience is {given!r}, not this index's {audience!r}.") from None
            if exc.claim in ("nbf", "iat"):
                raise _invalid("The token is not valid yet (nbf or iat is in the future).") from None
            raise _invalid(f"Claim {exc.claim!r} is invalid.") from None
        return dict(token.claims)

    def _publishers(self, claims: dict[str, Any]) -> tuple[str, list[Publisher]]:
        """The publishers this identity is (one kind), or MintRefused naming what did not match."""
        candidates = [p for p in self.access.list_publishers() if p.issuer_url(self.settings) == claims["iss"]]
        matched = [p for p in candidates if p.mismatch(claims, self.settings) is None]
        if matched:
            return matched[0].kind, matched
        # Say what differs only against publishers of the token's own repository: the configuration of
        # other projects' publishers is none of this caller's business.
        reasons = sorted({str(p.mismatch(claims, self.settings)) for p in candidates if _same_repository(p, claims)})
        detail = f": {'; '.join(reasons)}" if reasons else ""
        raise MintRefused(
            "invalid-publisher", f"No trusted publisher matches this token ({_identity(claims)}){detail}."
        )

    def _registrant_projects(self, matched: list[Publisher]) -> tuple[str, tuple[str, ...]]:
        """Who the token belongs to (the oldest match's registrant) and the projects that user may publish."""
        username = matched[0].added_by
        user = self.access.get_user(username)
        projects = []
        if user is not None:
            identity = Identity(user.name, is_admin=user.is_admin, groups=user.groups)
            for publisher in matched:
                if publisher.added_by != username or publisher.project in projects:
                    continue
                exists = self.cache.get_project(publisher.project) is not None
                allowed = self.access.can_write if exists else self.access.can_create
                if allowed(identity, publisher.project):
                    projects.append(publisher.project)
        if not projects:
            raise MintRefused(
                "invalid-publisher",
                f"The publisher's registrant {username!r} may no longer upload to {matched[0].project!r}.",
            )
        return username, tuple(projects)

    def _use_once(self, claims: dict[str, Any]) -> None:
        remaining = float(claims["exp"]) - time.time() + self.settings.leeway
        key = hashlib.sha256(f"{claims['iss']}\0{claims['jti']}".encode()).hexdigest()[:56]
        if not self.cache.claim_once(key, max(remaining, 1.0)):
            raise MintRefused("invalid-reuse-token", "This token was already exchanged: each token is used once.")


def _same_repository(publisher: Publisher, claims: dict[str, Any]) -> bool:
    if publisher.kind == "oidc":
        return str(claims.get("sub", "")) == dict(publisher.claims).get("sub")
    claim = "repository" if publisher.kind == "github" else "project_path"
    return str(claims.get(claim, "")).lower() == publisher.repository.lower()


def _identity(claims: dict[str, Any]) -> str:
    for name in ("repository", "project_path", "sub"):
        if name in claims:
            return f"{name} {claims[name]!r}"
    return f"issuer {claims.get('iss')!r}"
