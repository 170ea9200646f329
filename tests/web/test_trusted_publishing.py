"""Trusted Publishing through the web app: the exchange, its refusals, publishers, pending publishers, audits."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import webtest
from joserfc.jwk import ECKey

from pypicloud_lite.access.audit import AuditQuery
from pypicloud_lite.models import utcnow
from tests.support.apiutil import BOB, CAROL, PASSWORD, assert_error, call, creds, running, token_auth, upload_wheel
from tests.support.common import services
from tests.support.oidc_issuer import GITLAB_CONFIG, GITLAB_PROJECT, OWNER_ID, REPOSITORY, WORKFLOW, Issuer
from tests.support.owners import ui_login

pytestmark = pytest.mark.usefixtures("cheap_hashing")
AUDIENCE = "pypi-test"
GITHUB = {"kind": "github", "repository": REPOSITORY, "workflow": WORKFLOW}


def publishing_settings(sql_raw: dict[str, Any], issuer: Issuer, **more: str) -> dict[str, Any]:
    return {
        **sql_raw,
        "trusted_publishing.audience": AUDIENCE,
        "trusted_publishing.github_issuer": issuer.url,
        "trusted_publishing.gitlab_issuer": issuer.gitlab_url,
        **more,
    }


@pytest.fixture
def raw(sql_raw: dict[str, Any], oidc_issuer: Issuer) -> dict[str, Any]:
    return publishing_settings(sql_raw, oidc_issuer)


@pytest.fixture
def app(raw: dict[str, Any]) -> Iterator[webtest.TestApp]:
    with running(raw) as testapp:
        access = services(testapp.app).access
        access.create_user(BOB, PASSWORD)
        access.create_user(CAROL, PASSWORD)
        # Nobody writes by default (sql_raw): bob may create projects through this grant-less opening.
        yield testapp


@pytest.fixture
def widget(app: webtest.TestApp, dist_dir: Path) -> None:
    """Project `widget`, owned by bob (who may create projects: a group grant-less default would not let him)."""
    services(app.app).access.set_grant("widget", "user", BOB, "rwdo")
    upload_wheel(app, creds(BOB), dist_dir, "widget", "0.1")


def register(app: webtest.TestApp, project: str, fields: dict[str, Any], user: str = BOB) -> webtest.TestResponse:
    return call(app, "POST", f"/api/projects/{project}/publishers", creds(user), json=fields)


def mint(app: webtest.TestApp, token: str, path: str = "/_/oidc/mint-token") -> webtest.TestResponse:
    return call(app, "POST", path, json={"token": token})


def refused(resp: webtest.TestResponse, code: str, contains: str, status: int = 422) -> None:
    assert resp.status_int == status, resp.body
    assert resp.json["message"] == "Token request failed"
    [error] = resp.json["errors"]
    assert error["code"] == code
    assert contains.lower() in error["description"].lower(), error["description"]


def test_audience_is_configured_or_the_public_urls_host(app: webtest.TestApp, raw: dict[str, Any]) -> None:
    assert app.get("/_/oidc/audience").json == {"audience": AUDIENCE}
    derived = {**raw, "trusted_publishing.audience": "", "web.public_url": "https://pypi.example.com/base"}
    with running(derived) as other:
        assert other.get("/_/oidc/audience").json == {"audience": "pypi.example.com"}


def test_github_publisher_mints_a_token_for_its_project_only(
    app: webtest.TestApp, widget: None, oidc_issuer: Issuer, dist_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert register(app, "widget", {**GITHUB, "environment": "release", "owner_id": OWNER_ID}).status_int == 201
    caplog.set_level(logging.INFO)
    claims = oidc_issuer.github_claims(AUDIENCE, environment="Release")
    resp = mint(app, oidc_issuer.sign(claims), "/_/oidc/github/mint-token")
    assert resp.status_int == 200, resp.body
    assert resp.json["success"] is True
    lifetime = resp.json["expires"] - utcnow().timestamp()
    assert 800 < lifetime <= 900
    token = token_auth(resp.json["token"])
    [listed] = call(app, "GET", "/api/tokens", creds(BOB)).json["tokens"]
    assert (listed["projects"], listed["read_only"], listed["user"]) == (["widget"], False, BOB)
    assert (
        listed["publisher"]
        == call(app, "GET", "/api/projects/widget/publishers", creds(BOB)).json["publishers"][0]["id"]
    )
    upload_wheel(app, token, dist_dir, "widget", "1.0")
    upload_wheel(app, token, dist_dir, "other", "1.0", status=403)
    audits = [r.getMessage() for r in caplog.records if r.getMessage().startswith("audit:")]
    expected = f"repository={REPOSITORY} workflow={claims['job_workflow_ref']} run=4242/1"
    assert any("minted token" in line and expected in line for line in audits), audits
    assert any("widget-1.0" in line and expected in line for line in audits), audits
    # One record each in the trail, by the user the publisher acts as.
    trail = services(app.app).access.audit
    [minted] = trail.find(AuditQuery(action="token.mint"))
    [uploaded] = [e for e in trail.find(AuditQuery(action="file.upload")) if e.target == "widget-1.0-py3-none-any.whl"]
    assert (minted.actor, uploaded.actor, uploaded.target) == (BOB, BOB, "widget-1.0-py3-none-any.whl")
    assert minted.target == listed["id"] and expected in (uploaded.detail or "")


def test_gitlab_publisher_checks_the_ci_config_path(app: webtest.TestApp, widget: None, oidc_issuer: Issuer) -> None:
    fields = {"kind": "gitlab", "repository": GITLAB_PROJECT, "workflow": GITLAB_CONFIG}
    assert register(app, "widget", fields).status_int == 201
    assert mint(app, oidc_issuer.sign(oidc_issuer.gitlab_claims(AUDIENCE))).status_int == 200
    other_config = oidc_issuer.gitlab_claims(AUDIENCE)
    other_config["ci_config_ref_uri"] = other_config["ci_config_ref_uri"].replace(GITLAB_CONFIG, "other.yml")
    refused(mint(app, oidc_issuer.sign(other_config)), "invalid-publisher", "workflow")


def test_pending_publisher_creates_the_project_owned_by_its_registrant(
    app: webtest.TestApp, oidc_issuer: Issuer, dist_dir: Path
) -> None:
    services(app.app).access.set_grant("fresh", "user", BOB, "rw")  # bob may create `fresh`
    resp = register(app, "Fresh", GITHUB)
    assert resp.status_int == 201, resp.body
    assert resp.json["pending"] is True
    assert register(app, "fresh", GITHUB, user=CAROL).status_int == 403  # carol may not create it
    minted = mint(app, oidc_issuer.sign(oidc_issuer.github_claims(AUDIENCE)))
    assert minted.status_int == 200, minted.body
    upload_wheel(app, token_auth(minted.json["token"]), dist_dir, "fresh", "1.0")
    owners = services(app.app).access.owners("fresh")
    assert [(g.kind, g.name) for g in owners] == [("user", BOB)]
    listed = call(app, "GET", "/api/projects/fresh/publishers", creds(BOB)).json["publishers"]
    assert [p["pending"] for p in listed] == [False]


@pytest.mark.parametrize(
    ("change", "code", "message"),
    [
        ({"repository": "acme/other"}, "invalid-publisher", "no trusted publisher matches"),
        ({"workflow": "ci.yml"}, "invalid-publisher", "workflow"),
        ({"environment": "staging"}, "invalid-publisher", "environment"),
        ({"repository_owner_id": "666"}, "invalid-publisher", "owner id is '666', not '1001'"),
        ({"exp": -60}, "invalid-token", "expired"),
        ({"nbf": 600, "iat": 600}, "invalid-token", "not valid yet"),
        ({"aud": "someone-else"}, "invalid-token", "audience"),
    ],
)
def test_refusals(
    app: webtest.TestApp, widget: None, oidc_issuer: Issuer, change: dict[str, Any], code: str, message: str
) -> None:
    assert register(app, "widget", {**GITHUB, "environment": "release", "owner_id": 1001}).status_int == 201
    claims = oidc_issuer.github_claims(AUDIENCE, environment="release")
    for name in ("exp", "nbf", "iat"):
        if name in change:
            change = {**change, name: claims[name] + change[name] + (0 if name != "exp" else -300)}
    token = oidc_issuer.sign(oidc_issuer.github_claims(AUDIENCE, **{"environment": "release", **change}))
    refused(mint(app, token), code, message)


def test_unsigned_hs256_and_unknown_keys_are_refused(app: webtest.TestApp, widget: None, oidc_issuer: Issuer) -> None:
    register(app, "widget", GITHUB)
    claims = oidc_issuer.github_claims(AUDIENCE)
    refused(mint(app, Issuer.unsigned(claims)), "invalid-token", "'none' is refused")
    refused(mint(app, Issuer.hs256(claims)), "invalid-token", "'HS256' is refused")
    # A key the issuer never published; then its own signature over other claims.
    stolen = oidc_issuer.sign(claims, key=ECKey.generate_key("P-256", parameters={"kid": "stolen"}))
    refused(mint(app, stolen), "invalid-token", "not in the issuer's key set")
    header, _payload, signature = oidc_issuer.sign(claims).split(".")
    other = oidc_issuer.sign({**claims, "repository": "acme/widget-fork"}).split(".")[1]
    refused(mint(app, f"{header}.{other}.{signature}"), "invalid-token", "signature")
    refused(mint(app, oidc_issuer.sign({**claims, "iss": "https://evil.example"})), "invalid-token", "not trusted")
    refused(call(app, "POST", "/_/oidc/mint-token", body=b"{not json"), "invalid-payload", "token")
    assert mint(app, oidc_issuer.sign(claims)).status_int == 200  # the same claims, properly signed


def test_each_token_is_exchanged_once_across_processes(
    app: webtest.TestApp, raw: dict[str, Any], widget: None, oidc_issuer: Issuer
) -> None:
    register(app, "widget", GITHUB)
    token = oidc_issuer.sign(oidc_issuer.github_claims(AUDIENCE))
    assert mint(app, token).status_int == 200
    refused(mint(app, token), "invalid-reuse-token", "already exchanged")
    with running(raw) as second_process:  # another server on the same databases
        refused(mint(second_process, token), "invalid-reuse-token", "already exchanged")


def test_key_rotation_needs_no_restart(app: webtest.TestApp, widget: None, oidc_issuer: Issuer) -> None:
    register(app, "widget", GITHUB)
    assert mint(app, oidc_issuer.sign(oidc_issuer.github_claims(AUDIENCE))).status_int == 200
    oidc_issuer.rotate()
    resp = mint(app, oidc_issuer.sign(oidc_issuer.github_claims(AUDIENCE)))
    assert resp.status_int == 200, resp.body
    assert oidc_issuer.requests.count("/jwks") == 2


def test_minted_token_expires(
    app: webtest.TestApp, widget: None, oidc_issuer: Issuer, dist_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    register(app, "widget", GITHUB)
    token = token_auth(mint(app, oidc_issuer.sign(oidc_issuer.github_claims(AUDIENCE))).json["token"])
    later = utcnow() + timedelta(minutes=16)
    monkeypatch.setattr("pypicloud_lite.access.base.utcnow", lambda: later)
    upload_wheel(app, token, dist_dir, "widget", "2.0", status=401)


def test_burn_token_revokes_a_minted_token(app: webtest.TestApp, widget: None, oidc_issuer: Issuer) -> None:
    register(app, "widget", GITHUB)
    secret = mint(app, oidc_issuer.sign(oidc_issuer.github_claims(AUDIENCE))).json["token"]
    assert call(app, "POST", "/_/oidc/burn-token", json={"token": secret}).status_int == 202
    assert services(app.app).access.list_tokens(BOB) == []


def test_publishers_are_managed_by_owners(app: webtest.TestApp, widget: None) -> None:
    assert_error(register(app, "widget", GITHUB, user=CAROL), 403, "owner")
    assert_error(register(app, "widget", {**GITHUB, "workflow": "../x"}), 400, "workflow")
    assert_error(register(app, "widget", {**GITHUB, "owner_id": "acme"}), 400, "owner_id")
    assert_error(register(app, "widget", {"kind": "oidc", "issuer": "https://x.example", "claims": {"sub": "a"}}), 400)
    added = register(app, "widget", GITHUB).json
    assert_error(register(app, "widget", GITHUB), 409, "already has")
    assert_error(call(app, "GET", "/api/projects/widget/publishers", creds(CAROL)), 403)
    assert call(app, "DELETE", f"/api/projects/widget/publishers/{added['id']}", creds(CAROL)).status_int == 403
    assert call(app, "DELETE", f"/api/projects/widget/publishers/{added['id']}", creds(BOB)).status_int == 200
    assert call(app, "GET", "/api/projects/widget/publishers", creds(BOB)).json == {"publishers": []}


def test_generic_oidc_publisher_requires_its_claims(
    sql_raw: dict[str, Any], oidc_issuer: Issuer, dist_dir: Path
) -> None:
    raw = publishing_settings(sql_raw, oidc_issuer, **{"trusted_publishing.issuers": f"{oidc_issuer.url}/other"})
    with running(raw) as app:
        services(app.app).access.create_user(BOB, PASSWORD)
        services(app.app).access.set_grant("tool", "user", BOB, "rw")
        fields = {"kind": "oidc", "issuer": f"{oidc_issuer.url}/other", "claims": {"sub": "deploy:tool"}}
        assert register(app, "tool", fields).status_int == 201
        claims = {**oidc_issuer.github_claims(AUDIENCE), "iss": f"{oidc_issuer.url}/other", "sub": "deploy:tool"}
        assert mint(app, oidc_issuer.sign(claims)).status_int == 200
        refused(mint(app, oidc_issuer.sign({**claims, "sub": "x", "jti": "2"})), "invalid-publisher", "no trusted")


def test_static_access_has_no_trusted_publishing(raw_settings: dict[str, Any]) -> None:
    with running(raw_settings) as app:
        refused(call(app, "GET", "/_/oidc/audience"), "not-enabled", "not enabled", 403)
        refused(mint(app, "a.b.c"), "not-enabled", "not enabled")


def test_pep_807_discovery(app: webtest.TestApp, raw: dict[str, Any]) -> None:
    resp = app.get("/.well-known/pytp", params={"discover": "/legacy/"})
    assert resp.json == {
        "audience-endpoint": "http://localhost/_/oidc/audience",
        "token-mint-endpoint": "http://localhost/_/oidc/mint-token",
    }
    missing = app.get("/.well-known/pytp", params={"discover": "/nothing/"}, status=404)
    assert missing.content_type == "application/problem+json"
    with running({**raw, "web.public_url": "https://pypi.example.com/base"}) as prefixed:
        found = prefixed.get("/.well-known/pytp", params={"discover": "/base/legacy/"}).json
        assert found["token-mint-endpoint"] == "https://pypi.example.com/_/oidc/mint-token"
        prefixed.get("/.well-known/pytp", params={"discover": "/legacy/"}, status=404)


def test_ui_adds_lists_and_removes_publishers(app: webtest.TestApp, widget: None) -> None:
    ui_login(app, BOB)
    assert 'href="http://localhost/ui/publishers?project=widget"' in app.get("/ui/projects/widget").text
    page = app.get("/ui/publishers", params={"project": "widget"})
    assert 'id="no-publishers"' in page.text
    form = page.forms["publisher-form"]
    assert form["project"].value == "widget"
    form["kind"] = "gitlab"
    form["gitlab_repository"], form["gitlab_workflow"] = GITLAB_PROJECT, "ci/release.yml"
    listed = form.submit().follow()
    assert "Added publisher gitlab:acme/tools/widget ci/release.yml to widget" in listed.text
    assert "<code>gitlab:acme/tools/widget ci/release.yml</code>" in listed.text
    [publisher] = services(app.app).access.list_publishers("widget")
    assert (publisher.repository, publisher.workflow, publisher.environment) == (GITLAB_PROJECT, "ci/release.yml", None)
    [remove] = [f for f in listed.forms.values() if f.action.endswith(f"/publishers/{publisher.id}/delete")]
    removed = remove.submit().follow()
    assert 'id="no-publishers"' in removed.text
    assert services(app.app).access.list_publishers() == []
