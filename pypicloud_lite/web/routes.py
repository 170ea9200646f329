"""URL routes. Dotted route names: the view modules attach to them."""

from __future__ import annotations

from pyramid.config import Configurator


def includeme(config: Configurator) -> None:
    config.add_route("root", "/")
    config.add_route("simple.index", "/simple/")
    config.add_route("simple.index.noslash", "/simple")
    config.add_route("upload.legacy", "/legacy/")
    config.add_route("upload.legacy.noslash", "/legacy")
    # Before the no-slash detail route, which would take /simple/namespaces.
    _namespace_routes(config)
    _publishing_routes(config)
    _operations_routes(config)
    config.add_route("simple.detail", "/simple/{project}/")
    config.add_route("simple.detail.noslash", "/simple/{project}")
    config.add_route("files.download", "/packages/{project}/{filename}")
    config.add_route("admin.reload", "/admin/reload")
    config.add_route("pypi.project", "/pypi/{project}/json")
    config.add_route("pypi.release", "/pypi/{project}/{version}/json")
    config.add_route("api.projects", "/api/projects")
    config.add_route("api.project", "/api/projects/{project}")
    config.add_route("api.project.status", "/api/projects/{project}/status")
    config.add_route("api.project.origin", "/api/projects/{project}/origin")
    config.add_route("api.project.cooldown_exception", "/api/projects/{project}/cooldown-exception")
    config.add_route("api.file", "/api/projects/{project}/files/{filename}")
    config.add_route("api.version", "/api/projects/{project}/versions/{version}")
    config.add_route("api.version.yank", "/api/projects/{project}/versions/{version}/yank")
    config.add_route("api.grants", "/api/projects/{project}/grants")
    config.add_route("api.grant", "/api/projects/{project}/grants/{kind}/{name}")
    config.add_route("api.users", "/api/users")
    config.add_route("api.user", "/api/users/{name}")
    config.add_route("api.groups", "/api/groups")
    config.add_route("api.group", "/api/groups/{name}")
    config.add_route("api.tokens", "/api/tokens")
    config.add_route("api.token", "/api/tokens/{id}")
    # The web UI (pypicloud_lite.web.ui): HTML pages and the form posts they make.
    config.add_static_view("ui/static", "pypicloud_lite.web:static", cache_max_age=3600)
    config.add_route("ui.projects", "/ui/")
    config.add_route("ui.login", "/ui/login")
    config.add_route("ui.logout", "/ui/logout")
    config.add_route("ui.upload", "/ui/upload")
    config.add_route("ui.project", "/ui/projects/{project}")
    config.add_route("ui.project.status", "/ui/projects/{project}/status")
    config.add_route("ui.project.delete", "/ui/projects/{project}/delete")
    config.add_route("ui.project.origin", "/ui/projects/{project}/origin")
    config.add_route("ui.project.cooldown_exception", "/ui/projects/{project}/cooldown-exception")
    config.add_route("ui.version.yank", "/ui/projects/{project}/versions/{version}/yank")
    config.add_route("ui.version.delete", "/ui/projects/{project}/versions/{version}/delete")
    config.add_route("ui.file.delete", "/ui/projects/{project}/files/{filename}/delete")
    _account_routes(config)
    config.add_route("ui.admin", "/ui/admin")
    config.add_route("ui.admin.reload", "/ui/admin/reload")
    config.add_route("ui.access", "/ui/admin/access")
    config.add_route("ui.access.user", "/ui/admin/access/users")
    config.add_route("ui.access.group", "/ui/admin/access/groups")
    config.add_route("ui.access.grant", "/ui/admin/access/grants")


def _account_routes(config: Configurator) -> None:
    """The web UI's pages of one's own account: the password, the API tokens."""
    config.add_route("ui.account", "/ui/account")
    config.add_route("ui.tokens", "/ui/tokens")
    config.add_route("ui.token.revoke", "/ui/tokens/{id}/revoke")


def _namespace_routes(config: Configurator) -> None:
    """PEP 752: the JSON API's endpoints beside the simple index (its paths are relative to the index) and at
    the root (where the PEP writes them); the admins' API and form post."""
    config.add_route("simple.namespace.list", "/simple/namespaces")
    config.add_route("simple.namespace.detail", "/simple/namespace/{namespace}")
    config.add_route("namespace.list", "/namespaces")
    config.add_route("namespace.detail", "/namespace/{namespace}")
    config.add_route("api.namespaces", "/api/namespaces")
    config.add_route("api.namespace", "/api/namespaces/{name}")
    config.add_route("ui.access.namespace", "/ui/admin/access/namespaces")


def _publishing_routes(config: Configurator) -> None:
    """Trusted Publishing: PyPI's exchange at the host root (where clients look), PEP 807's discovery, and the
    management of each project's publishers."""
    config.add_route("oidc.audience", "/_/oidc/audience")
    config.add_route("oidc.mint_token", "/_/oidc/mint-token")
    config.add_route("oidc.github_mint_token", "/_/oidc/github/mint-token")
    config.add_route("oidc.burn_token", "/_/oidc/burn-token")
    config.add_route("oidc.discovery", "/.well-known/pytp")
    config.add_route("api.publishers", "/api/projects/{project}/publishers")
    config.add_route("api.publisher", "/api/projects/{project}/publishers/{id}")
    config.add_route("ui.publishers", "/ui/publishers")
    config.add_route("ui.publisher.delete", "/ui/projects/{project}/publishers/{id}/delete")


def _operations_routes(config: Configurator) -> None:
    """What operators and browsers ask of any site: the health check, the audit trail (API and UI page), the
    Prometheus metrics, and the icon at the root."""
    config.add_route("health", "/health")
    config.add_route("favicon", "/favicon.ico")
    config.add_route("api.audit", "/api/audit")
    config.add_route("ui.audit", "/ui/admin/audit")
    config.add_route("metrics", "/metrics")
