"""Trusted Publishing end to end: `uv publish --trusted-publishing always` and pypa/gh-action-pypi-publish's
exchange, unmodified, against a real server behind HTTPS, with GitHub Actions' ID-token endpoint served by
the local OIDC issuer; then pip installs what they published."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import id as oidc_id
import pytest
import requests

from pypicloud_lite.access.publishers import new_publisher
from pypicloud_lite.access.sql import SQLAccess
from pypicloud_lite.config import Settings, load_settings
from pypicloud_lite.models import Grant, utcnow
from tests.support.apiutil import BOB, PASSWORD
from tests.support.distbuilder import build_wheel
from tests.support.harness import BIN, Server, run, start_server
from tests.support.oidc_issuer import GITLAB_CONFIG, GITLAB_PROJECT, REPOSITORY, WORKFLOW, Issuer
from tests.support.settings import server_settings
from tests.support.tls_proxy import TLSProxy


@dataclass(frozen=True)
class Index:
    server: Server
    proxy: TLSProxy
    home: Path
    settings: Settings


def owners(index: Index, project: str) -> list[Grant]:
    access = SQLAccess.connect(index.settings.auth, index.settings.cache)
    try:
        return access.owners(project)
    finally:
        access.close()


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    with Issuer().serving() as serving:
        yield serving


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory, issuer: Issuer) -> Iterator[Index]:
    """A server (SQL access) behind HTTPS at proxy.url, where bob registered publishers for projects that do not
    exist yet: GitHub ones for `trusty` (uv's) and `actioned` (the action's), a GitLab one for `labbed`."""
    tmp_path = tmp_path_factory.mktemp("trusted-publishing")
    folder = tmp_path / "server"
    folder.mkdir()
    proxy = TLSProxy(tmp_path)
    extra = {
        "auth.backend": "sql",
        "user.uploader": None,
        "auth.admins": None,
        "web.public_url": proxy.url,
        "trusted_publishing.github_issuer": issuer.url,
        "trusted_publishing.gitlab_issuer": issuer.gitlab_url,
    }
    settings = load_settings(server_settings(folder, extra), environ={})
    access = SQLAccess.connect(settings.auth, settings.cache)
    access.create_user(BOB, PASSWORD)
    github = {"kind": "github", "repository": REPOSITORY, "workflow": WORKFLOW}
    gitlab = {"kind": "gitlab", "repository": GITLAB_PROJECT, "workflow": GITLAB_CONFIG}
    for number, (project, fields) in enumerate((("trusty", github), ("actioned", github), ("labbed", gitlab))):
        access.add_publisher(
            new_publisher(
                publisher_id=f"publisher{number}",
                project=project,
                fields=fields,
                added_by=BOB,
                created=utcnow(),
                settings=settings.publishing,
            )
        )
    access.close()
    server = start_server(folder, with_uploader=False, extra=extra)
    try:
        with proxy.relaying(urlsplit(server.url).port or 0):
            yield Index(server, proxy, tmp_path / "home", settings)
    finally:
        server.stop()


def pip_install(index: Index, project: str) -> None:
    target = index.home / "installed"
    simple = f"{index.proxy.url}/simple/"
    pip = (BIN / "python", "-m", "pip", "install", "--no-deps", "--no-cache-dir", "--target", target)
    # SSL_CERT_FILE, not --cert: pip 26 verifies through truststore, which reads the former.
    env = {"SSL_CERT_FILE": str(index.proxy.ca_file)}
    run(*pip, "--index-url", simple, project, home=index.home, env=env).check()
    assert (target / project / "__init__.py").is_file()


def uv_publish(index: Index, tmp_path: Path, project: str, env: dict[str, str]) -> None:
    """`uv publish --trusted-publishing always` of a new wheel of `project`, trusting the test CA; it is listed."""
    wheel = build_wheel(tmp_path / "dist", project, "1.0")
    uv = (BIN / "uv", "publish", "--trusted-publishing", "always", "--publish-url", f"{index.proxy.url}/legacy/")
    run(*uv, wheel, home=index.home, env={**env, "SSL_CERT_FILE": str(index.proxy.ca_file)}).check()
    assert [f["filename"] for f in index.server.project_json(project)["files"]] == [wheel.name]  # type: ignore[index]


def test_uv_publish_with_trusted_publishing(index: Index, issuer: Issuer, tmp_path: Path) -> None:
    uv_publish(index, tmp_path, "trusty", issuer.actions_env())
    # The pending publisher created the project, owned by bob, who registered it.
    assert [(grant.kind, grant.name) for grant in owners(index, "trusty")] == [("user", BOB)]
    pip_install(index, "trusty")


def test_the_actions_exchange_replayed(
    index: Index, issuer: Issuer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # oidc-exchange.py's requests, in its order, made with the libraries it uses (requests, id).
    for name, value in issuer.actions_env().items():
        monkeypatch.setenv(name, value)
    domain = urlsplit(f"{index.proxy.url}/legacy/").netloc
    verify = str(index.proxy.ca_file)
    audience = requests.get(f"https://{domain}/_/oidc/audience", verify=verify, timeout=30)
    assert audience.ok
    oidc_token = oidc_id.detect_credential(audience=audience.json()["audience"])
    minted = requests.post(
        f"https://{domain}/_/oidc/github/mint-token", json={"token": oidc_token}, verify=verify, timeout=30
    )
    assert minted.ok, minted.text
    # twine-upload.sh then uploads with the token as __token__'s password.
    wheel = build_wheel(tmp_path / "dist", "actioned", "1.0")
    twine = (BIN / "twine", "upload", "--repository-url", f"{index.proxy.url}/legacy/", "-u", "__token__")
    env = {"REQUESTS_CA_BUNDLE": verify}
    run(*twine, "-p", minted.json()["token"], "--non-interactive", wheel, home=index.home, env=env).check()
    replayed = requests.post(
        f"https://{domain}/_/oidc/github/mint-token", json={"token": oidc_token}, verify=verify, timeout=30
    )
    assert replayed.status_code == 422
    assert [e["code"] for e in replayed.json()["errors"]] == ["invalid-reuse-token"]
    pip_install(index, "actioned")


def test_uv_publish_from_gitlab_ci(index: Index, issuer: Issuer, tmp_path: Path) -> None:
    # GitLab hands the job its token in the variable `id_tokens` names; uv looks for <AUDIENCE>_ID_TOKEN.
    audience = urlsplit(index.proxy.url).netloc
    variable = "".join(c if c.isalnum() else "_" for c in audience).upper() + "_ID_TOKEN"
    token = issuer.sign(issuer.gitlab_claims(audience))
    uv_publish(index, tmp_path, "labbed", {"GITLAB_CI": "true", variable: token})
