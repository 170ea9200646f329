"""Trusted publishers: which CI workflow (GitHub, GitLab, or any OIDC issuer) may mint upload tokens for a project.

A publisher names the identity a CI job's OIDC token must prove (repository, workflow file, environment, or
required claims); `mismatch()` says why a verified token's claims are not that identity, and `describe_run()`
names the repository, workflow and run for the audit records. A publisher for a project that does not exist
yet is "pending": its first publish creates the project, owned by whoever registered the publisher.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from pypicloud_lite.errors import InvalidInput
from pypicloud_lite.naming import normalize
from pypicloud_lite.publishing_settings import PublishingSettings

KINDS = ("github", "gitlab", "oidc")
_GITHUB_REPOSITORY = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}\Z")
_GITHUB_WORKFLOW = re.compile(r"^[A-Za-z0-9._-]{1,200}\.ya?ml\Z")
_GITLAB_REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]{1,255}(?:/[A-Za-z0-9_.-]{1,255}){1,20}\Z")
_GITLAB_CONFIG_PATH = re.compile(r"^(?:[A-Za-z0-9_.-]+/)*[A-Za-z0-9_.-]+\.ya?ml\Z")
_OWNER_ID = re.compile(r"^[0-9]{1,20}\Z")
_ENVIRONMENT = re.compile(r"^[^\x00-\x1f\x7f]{1,255}\Z")
_CLAIM_NAME = re.compile(r"^[A-Za-z0-9_:.-]{1,100}\Z")
# Claims a generic publisher may not require: the exchange itself checks them on every token.
_CHECKED_CLAIMS = frozenset({"iss", "aud", "exp", "nbf", "iat", "jti"})


@dataclass(frozen=True)
class Publisher:
    id: str
    project: str  # normalized
    kind: str  # github | gitlab | oidc
    added_by: str
    created: datetime
    # github: owner/repository; gitlab: namespace/project (empty for oidc).
    repository: str = ""
    # github: the workflow's file name in .github/workflows/; gitlab: the CI config file's path.
    workflow: str = ""
    environment: str | None = None
    # github only, optional: the numeric id of the repository's owner, as the token's `repository_owner_id`
    # says (a repository deleted and re-created under the same name by someone else has another owner id).
    owner_id: str | None = None
    # oidc only: the issuer, and the claims its tokens must carry, each with exactly this value.
    issuer: str | None = None
    claims: tuple[tuple[str, str], ...] = field(default=())

    def to_config(self) -> dict[str, Any]:
        """What a backend stores beside id, project, kind, added_by and created."""
        config: dict[str, Any] = {"repository": self.repository, "workflow": self.workflow}
        config |= {"environment": self.environment, "issuer": self.issuer, "claims": dict(self.claims)}
        if self.owner_id is not None:
            config["owner_id"] = self.owner_id
        return config

    def with_config(self, config: dict[str, Any]) -> Publisher:
        """This publisher (id, project, kind, added_by, created) with the identity `to_config()` stored."""
        return replace(
            self,
            repository=config.get("repository") or "",
            workflow=config.get("workflow") or "",
            environment=config.get("environment"),
            owner_id=config.get("owner_id"),
            issuer=config.get("issuer"),
            claims=tuple(sorted((config.get("claims") or {}).items())),
        )

    def issuer_url(self, settings: PublishingSettings) -> str:
        if self.kind == "github":
            return settings.github_issuer
        if self.kind == "gitlab":
            return settings.gitlab_issuer
        return self.issuer or ""

    def label(self) -> str:
        """How people name it: `github:owner/repo release.yml (env pypi)`."""
        if self.kind == "oidc":
            wanted = ", ".join(f"{name}={value}" for name, value in self.claims)
            return f"oidc:{self.issuer} ({wanted})"
        environment = f" (environment {self.environment})" if self.environment else ""
        return f"{self.kind}:{self.repository} {self.workflow}{environment}"

    def mismatch(self, claims: dict[str, Any], settings: PublishingSettings) -> str | None:
        """None when a verified token with these claims is this publisher's; else why it is not."""
        if claims.get("iss") != self.issuer_url(settings):
            return f"the token's issuer is not {self.issuer_url(settings)}"
        if self.kind == "oidc":
            return next(
                (
                    f"claim {name!r} is {claims.get(name)!r}, not {value!r}"
                    for name, value in self.claims
                    if str(claims.get(name, "")) != value
                ),
                None,
            )
        return self._ci_mismatch(claims, settings)

    def _ci_mismatch(self, claims: dict[str, Any], settings: PublishingSettings) -> str | None:
        repository_claim = "repository" if self.kind == "github" else "project_path"
        repository = str(claims.get(repository_claim, ""))
        if repository.lower() != self.repository.lower():
            return f"the token's repository is {repository!r}, not {self.repository!r}"
        owner_id = str(claims.get("repository_owner_id", ""))
        if self.owner_id is not None and owner_id != self.owner_id:
            return f"the token's repository owner id is {owner_id!r}, not {self.owner_id!r}"
        if not self._workflow_matches(claims, settings):
            return f"the token's workflow is {_workflow_claim(self.kind, claims)!r}, not {self.workflow!r}"
        if self.environment is not None:
            environment = str(claims.get("environment", ""))
            if environment.lower() != self.environment.lower():
                return f"the token's environment is {environment!r}, not {self.environment!r}"
        return None

    def _workflow_matches(self, claims: dict[str, Any], settings: PublishingSettings) -> bool:
        if self.kind == "github":
            # The job's own workflow (a reusable one) or the calling workflow: either file may be the publisher's.
            refs = [str(claims.get(name, "")) for name in ("job_workflow_ref", "workflow_ref")]
            prefix = f"{self.repository}/.github/workflows/{self.workflow}@"
        else:
            issuer = urlsplit(settings.gitlab_issuer)
            refs = [str(claims.get("ci_config_ref_uri", ""))]
            prefix = f"{issuer.netloc}{issuer.path}/{self.repository}//{self.workflow}@"
        # Owners and repositories are case-insensitive on both forges; the file path is not.
        split = len(prefix) - len(self.workflow) - 1
        return any(
            ref[:split].lower() == prefix[:split].lower() and ref[split : len(prefix)] == prefix[split:] for ref in refs
        )


def _workflow_claim(kind: str, claims: dict[str, Any]) -> str:
    return str(claims.get("job_workflow_ref" if kind == "github" else "ci_config_ref_uri", ""))


def describe_run(kind: str, claims: dict[str, Any]) -> str:
    """Repository, workflow and run of a verified token, for the audit records (and the minted token's note)."""
    if kind == "github":
        run = f"{claims.get('run_id')}/{claims.get('run_attempt')}"
        return f"repository={claims.get('repository')} workflow={_workflow_claim(kind, claims)} run={run}"
    if kind == "gitlab":
        run = f"pipeline {claims.get('pipeline_id')} job {claims.get('job_id')}"
        return f"repository={claims.get('project_path')} workflow={_workflow_claim(kind, claims)} run={run}"
    return f"issuer={claims.get('iss')} subject={claims.get('sub')} run={claims.get('jti')}"


def _text(fields: dict[str, Any], name: str, pattern: re.Pattern[str], example: str, required: bool = True) -> str:
    value = fields.get(name)
    if value in (None, "") and not required:
        return ""
    if not isinstance(value, str) or not pattern.match(value.strip()):
        raise InvalidInput(f"A publisher's {name!r} must look like {example}.")
    return value.strip()


def _claims(value: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict) or not value:
        raise InvalidInput('An OIDC publisher needs "claims": {"sub": "...", ...}, the values its tokens must carry.')
    claims = []
    for name, wanted in value.items():
        if not isinstance(name, str) or not _CLAIM_NAME.match(name) or not isinstance(wanted, str) or not wanted:
            raise InvalidInput(f"Claim {name!r}: required claims are names mapped to non-empty strings.")
        if name in _CHECKED_CLAIMS:
            raise InvalidInput(f"Claim {name!r} is checked on every token: require the identity's claims instead.")
        claims.append((name, wanted))
    return tuple(sorted(claims))


def new_publisher(
    *,
    publisher_id: str,
    project: str,
    fields: dict[str, Any],
    added_by: str,
    created: datetime,
    settings: PublishingSettings,
) -> Publisher:
    """A publisher from the API's or the form's fields, checked; InvalidInput says what is wrong."""
    kind = fields.get("kind")
    if isinstance(fields.get("owner_id"), int):
        fields = {**fields, "owner_id": str(fields["owner_id"])}
    if kind not in KINDS:
        raise InvalidInput(f"A publisher's 'kind' is one of {', '.join(KINDS)}.")
    base = Publisher(publisher_id, normalize(project), kind, added_by, created)
    if kind == "oidc":
        issuer = str(fields.get("issuer") or "").strip().rstrip("/")
        if issuer not in settings.issuers:
            listed = ", ".join(settings.issuers) or "none are"
            raise InvalidInput(f"Issuer {issuer!r} is not one trusted_publishing.issuers lists ({listed}).")
        return replace(base, issuer=issuer, claims=_claims(fields.get("claims")))
    if kind == "github":
        repository = _text(fields, "repository", _GITHUB_REPOSITORY, "'owner/repository'")
        workflow = _text(fields, "workflow", _GITHUB_WORKFLOW, "'release.yml' (a file in .github/workflows/)")
        owner_id = _text(fields, "owner_id", _OWNER_ID, "a number (the owner's GitHub id)", required=False)
        base = replace(base, owner_id=owner_id or None)
    else:
        repository = _text(fields, "repository", _GITLAB_REPOSITORY, "'namespace/project'")
        workflow = _text(fields, "workflow", _GITLAB_CONFIG_PATH, "'.gitlab-ci.yml' (the CI config file's path)")
        if ".." in workflow.split("/"):
            raise InvalidInput("A publisher's 'workflow' may not contain '..'.")
    environment = _text(fields, "environment", _ENVIRONMENT, "an environment's name", required=False)
    return replace(base, repository=repository, workflow=workflow, environment=environment or None)
