"""A local OIDC issuer for the Trusted Publishing tests: keys made here, served over HTTP on 127.0.0.1.

It serves its discovery document and JWKS, signs GitHub- and GitLab-shaped ID tokens, and stands in for
GitHub Actions' ID-token endpoint (`ACTIONS_ID_TOKEN_REQUEST_URL`), as uv and the `id` library call it.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, OctKey, RSAKey

REQUEST_TOKEN = "actions-request-token"
REPOSITORY = "acme/widget"
WORKFLOW = "release.yml"
OWNER_ID = "1001"
GITLAB_PROJECT = "acme/tools/widget"
GITLAB_CONFIG = ".gitlab-ci.yml"


DISCOVERY = "/.well-known/openid-configuration"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _first_key() -> RSAKey:
    # RSA (what GitHub signs with) costs a noticeable fraction of a second to generate: one per session.
    if not _FIRST_KEY:
        _FIRST_KEY.append(RSAKey.generate_key(2048, parameters={"kid": "key-1"}))
    return _FIRST_KEY[0]


_FIRST_KEY: list[RSAKey] = []


class Issuer:
    def __init__(self) -> None:
        self.signing: RSAKey | ECKey = _first_key()
        self.published: list[RSAKey | ECKey] = [self.signing]
        self.requests: list[str] = []
        # What the Actions stand-in signs for uv and `id` (the audience comes from their request).
        self.actions_claims: dict[str, Any] = {}
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    # -- keys --------------------------------------------------------------------------------

    def rotate(self) -> None:
        """A new signing key, and only it in the JWKS from now on (the old one is withdrawn)."""
        self.signing = ECKey.generate_key("P-256", parameters={"kid": f"key-{len(self.published) + 1}"})
        self.published = [self.signing]

    def jwks(self) -> dict[str, Any]:
        return KeySet(list(self.published)).as_dict(private=False)

    # -- tokens ------------------------------------------------------------------------------

    def sign(self, claims: dict[str, Any], key: RSAKey | ECKey | None = None) -> str:
        key = key or self.signing
        algorithm = "RS256" if isinstance(key, RSAKey) else "ES256"
        return jwt.encode({"alg": algorithm, "kid": key.kid, "typ": "JWT"}, claims, key)

    def github_claims(self, audience: str, **changes: Any) -> dict[str, Any]:
        now = int(time.time())
        repository = changes.pop("repository", REPOSITORY)
        workflow = changes.pop("workflow", WORKFLOW)
        ref = f"{repository}/.github/workflows/{workflow}@refs/tags/v1.0"
        claims = {
            "iss": self.url,
            "aud": audience,
            "sub": f"repo:{repository}:ref:refs/tags/v1.0",
            "jti": secrets.token_hex(16),
            "iat": now,
            "nbf": now - 5,
            "exp": now + 300,
            "repository": repository,
            "repository_owner": repository.split("/")[0],
            "repository_owner_id": OWNER_ID,
            "workflow_ref": ref,
            "job_workflow_ref": ref,
            "ref": "refs/tags/v1.0",
            "run_id": "4242",
            "run_attempt": "1",
        }
        return {**claims, **changes}

    @property
    def gitlab_url(self) -> str:
        return f"{self.url}/gitlab"

    def gitlab_claims(self, audience: str, **changes: Any) -> dict[str, Any]:
        now = int(time.time())
        project = changes.pop("project_path", GITLAB_PROJECT)
        host = self.gitlab_url.removeprefix("http://")
        claims = {
            "iss": self.gitlab_url,
            "aud": audience,
            "sub": f"project_path:{project}:ref_type:tag:ref:v1.0",
            "jti": secrets.token_hex(16),
            "iat": now,
            "nbf": now - 5,
            "exp": now + 300,
            "project_path": project,
            "namespace_path": project.rsplit("/", 1)[0],
            "ci_config_ref_uri": f"{host}/{project}//{GITLAB_CONFIG}@refs/tags/v1.0",
            "pipeline_id": "777",
            "job_id": "778",
        }
        return {**claims, **changes}

    @staticmethod
    def unsigned(claims: dict[str, Any]) -> str:
        """`alg: none`: a header, the claims, and no signature at all."""
        header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
        return f"{header}.{_b64(json.dumps(claims).encode())}."

    @staticmethod
    def hs256(claims: dict[str, Any]) -> str:
        """HS256 with a key the attacker chose (a verifier trusting the header would take the JWKS 'key')."""
        return jwt.encode({"alg": "HS256", "kid": "key-1"}, claims, OctKey.import_key(secrets.token_bytes(32)))

    # -- HTTP --------------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                issuer.requests.append(parts.path)
                if parts.path.endswith(DISCOVERY):
                    # One server, two issuers: its root (GitHub's stand-in) and /gitlab.
                    name = issuer.url + parts.path.removesuffix(DISCOVERY)
                    self._send(200, {"issuer": name, "jwks_uri": f"{issuer.url}/jwks"})
                elif parts.path == "/jwks":
                    self._send(200, issuer.jwks())
                elif parts.path == "/actions-token":
                    self._actions_token(parse_qs(parts.query))
                else:
                    self._send(404, {"message": "not found"})

            def _actions_token(self, query: dict[str, list[str]]) -> None:
                # As GitHub: a bearer request token, and the audience in the query string.
                if self.headers.get("Authorization", "").lower() != f"bearer {REQUEST_TOKEN}":
                    self._send(401, {"message": "bad request token"})
                    return
                audience = query.get("audience", [""])[0]
                claims = issuer.github_claims(audience, **issuer.actions_claims)
                self._send(200, {"count": 1, "value": issuer.sign(claims)})

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler

    def actions_env(self) -> dict[str, str]:
        """GitHub Actions' variables for an `id-token: write` job, pointing at this stand-in."""
        return {
            "GITHUB_ACTIONS": "true",
            "ACTIONS_ID_TOKEN_REQUEST_URL": f"{self.url}/actions-token?api-version=2.0",
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN": REQUEST_TOKEN,
        }

    @contextmanager
    def serving(self) -> Iterator[Issuer]:
        self._thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()
