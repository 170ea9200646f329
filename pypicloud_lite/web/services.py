"""The long-lived objects one server process uses, built once from the settings."""

from __future__ import annotations

from dataclasses import dataclass

from pyramid.request import Request

from pypicloud_lite.access import build_access
from pypicloud_lite.access.base import AccessBackend
from pypicloud_lite.access.static import GeneratedAdmin
from pypicloud_lite.cdn import writer_cache
from pypicloud_lite.config import Settings
from pypicloud_lite.errors import NotFound
from pypicloud_lite.models import ProjectState
from pypicloud_lite.publishing.exchange import TrustedPublishing
from pypicloud_lite.service import PackageIndex
from pypicloud_lite.storage import build_storage
from pypicloud_lite.upstream.proxy import UpstreamProxy, set_origin
from pypicloud_lite.web.download_counts import DownloadCounter
from pypicloud_lite.web.namespace_view import NamespaceView
from pypicloud_lite.web.page_cache import Page, PageCache
from pypicloud_lite.web.upstream_pages import UpstreamPages

REGISTRY_KEY = "ppc.services"


@dataclass(frozen=True)
class AppServices:
    settings: Settings
    index: PackageIndex
    access: AccessBackend
    pages: PageCache
    namespaces: NamespaceView
    publishing: TrustedPublishing
    downloads: DownloadCounter
    # None unless an upstream index is configured (upstream.indexes).
    upstream: UpstreamPages | None = None

    def project_page(self, name: str, kind: str) -> Page:
        """`/simple/<name>/`: this index's own page (with PEP 752's namespaces in JSON), or an upstream's listing
        of a name it never held."""
        if self.upstream is not None and self.upstream.proxy.proxied(name):
            return self.upstream.project_page(name, kind)
        namespaces = self.namespaces.project_field(name) if kind == "json" else None
        return self.pages.project_page(name, kind, namespaces)

    def proxy(self) -> UpstreamProxy:
        """The upstream proxy; NotFound when no upstream is configured (nothing to proxy, no cooldown)."""
        if self.upstream is None:
            raise NotFound("No upstream index is configured, so there is no cooldown to make an exception to.")
        return self.upstream.proxy

    def set_origin(self, name: str, origin: str) -> ProjectState:
        """An admin's origin control (API and UI): seen at once by this process's proxy, if there is one."""
        if self.upstream is not None:
            return self.upstream.proxy.set_origin(name, origin)
        return set_origin(self.index, name, origin)


def build_services(settings: Settings) -> tuple[AppServices, GeneratedAdmin | None]:
    storage = build_storage(settings.storage)
    cache = writer_cache(settings, "server")
    access, generated = build_access(settings)
    index = PackageIndex(storage, cache, settings.upload)
    pages = PageCache(index, settings.web.page_cache_size, settings.cache.serial_max_age)
    namespaces = NamespaceView(access, settings.cache.serial_max_age)
    upstream = None
    if settings.upstream.enabled:
        proxy = UpstreamProxy(index, settings.upstream, pages.serial)
        # PEP 752: a reserved name is never resolved upstream (read from the access backend, never stale).
        proxy.is_reserved = access.is_reserved
        upstream = UpstreamPages(proxy, pages)
    found = AppServices(
        settings=settings,
        index=index,
        access=access,
        pages=pages,
        namespaces=namespaces,
        publishing=TrustedPublishing(settings.publishing, access, cache),
        downloads=DownloadCounter(cache),
        upstream=upstream,
    )
    return found, generated


def services(request: Request) -> AppServices:
    found: AppServices = request.registry[REGISTRY_KEY]
    return found
