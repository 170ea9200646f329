"""The address the server answers as: absolute URLs and redirects never come from a Host nobody checked.

Pyramid and WebOb make every absolute URL (`route_url`, `application_url`, a relative `Location`
made absolute) from the request's scheme, `Host` and `SCRIPT_NAME`. A client chooses its `Host`,
so this WSGI middleware, in front of everything else, settles them first:

- with `web.public_url`, the request is rewritten to it: scheme, host, port and path prefix,
  whatever `Host` or `X-Forwarded-*` said. The prefix may reach the server or not: a proxy that
  passes `/base/simple/` through and one that strips it to `/simple/` both route, because the
  prefix is moved from `PATH_INFO` to `SCRIPT_NAME` when the path starts with it (so a prefix may
  not start with one of the app's own top-level paths, which would make that ambiguous);
- without it, the request's `Host` must be one of `web.allowed_hosts` (default: the loopback
  names and the listen address), or it is answered `400`, as Django's ALLOWED_HOSTS does.
  `/health` alone answers any Host: it makes no URL, and load balancers name targets by address.

An explicit `web.allowed_hosts` is enforced in both cases. A trusted proxy's `X-Forwarded-Proto`,
`-Host` and `-Port` are waitress's business (`trusted_proxy` in `[server:main]`): it rewrites the
environ before this middleware sees it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from pyramid.interfaces import IRoutesMapper

from pypicloud_lite.config import WebSettings
from pypicloud_lite.config_values import DEFAULT_PORTS, split_host
from pypicloud_lite.errors import ConfigError
from pypicloud_lite.web.errors import error_response
from pypicloud_lite.web.headers import secured

# Names every server answers to when nothing else is configured: the machine itself.
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")
# Answered whatever the Host: they make no URL, and load balancers and Prometheus reach targets by their address.
ANY_HOST_PATHS = frozenset({"/health", "/metrics"})


def listen_hosts(listen: str) -> tuple[str, ...]:
    """The hosts of waitress's `listen` entries ('0.0.0.0:6543 [::1]:6543 pypi.lan:80'), but not the wildcards."""
    hosts = []
    for entry in listen.split():
        host = entry.rsplit(":", 1)[0] if entry.count(":") == 1 or entry.startswith("[") else entry
        try:
            name, _port = split_host(host)
        except ValueError:
            continue  # '*', or something waitress itself will complain about
        try:
            if ipaddress.ip_address(name.strip("[]")).is_unspecified:
                continue  # 0.0.0.0 or [::]: every address, no name
        except ValueError:
            pass  # a host name
        hosts.append(name)
    return tuple(hosts)


class PublicAddress:
    """WSGI middleware: refuses a `Host` not allowed, and rewrites the request to `web.public_url` if set."""

    def __init__(self, app: Any, settings: WebSettings, listen: str = "") -> None:
        self.app = app
        # Tests and tools reach the Pyramid registry through the app they were given.
        self.registry = app.registry
        if settings.allowed_hosts is not None:
            allowed: tuple[str, ...] | None = settings.allowed_hosts
        elif settings.public_url is None:
            allowed = LOOPBACK_HOSTS + listen_hosts(listen)
        else:
            allowed = None  # any Host: the URLs do not depend on it
        self.any_host = allowed is None or "*" in allowed
        self.allowed = frozenset(split_host(host) for host in allowed or () if host != "*")
        self.public = _Public(settings.public_url, _top_level_paths(app.registry)) if settings.public_url else None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not (self.any_host or environ.get("PATH_INFO") in ANY_HOST_PATHS or self._host_allowed(environ)):
            host = _request_host(environ)[:100]
            message = (
                f"Host {host!r} not allowed: add it to the setting web.allowed_hosts, "
                "or set web.public_url to the address clients use."
            )
            answer: Iterable[bytes] = error_response(400, message)(environ, secured(start_response))
            return answer
        if self.public is not None:
            self.public.rewrite(environ)
        result: Iterable[bytes] = self.app(environ, start_response)
        return result

    def _host_allowed(self, environ: dict[str, Any]) -> bool:
        try:
            host, port = split_host(_request_host(environ))
        except ValueError:
            return False
        port = port or DEFAULT_PORTS.get(environ.get("wsgi.url_scheme", "http"))
        return (host, None) in self.allowed or (host, port) in self.allowed


def _request_host(environ: dict[str, Any]) -> str:
    host: str | None = environ.get("HTTP_HOST")
    if host is None:
        return f"{environ.get('SERVER_NAME', '')}:{environ.get('SERVER_PORT', '')}".rstrip(":")
    return host


def _top_level_paths(registry: Any) -> frozenset[str]:
    mapper = registry.queryUtility(IRoutesMapper)
    routes = mapper.get_routes(include_static=True) if mapper is not None else []
    return frozenset(route.pattern.lstrip("/").split("/", 1)[0] for route in routes) - {""}


class _Public:
    """The parts of web.public_url as a WSGI environ holds them."""

    def __init__(self, url: str, top_level_paths: frozenset[str]) -> None:
        parts = urlsplit(url)
        host, port = split_host(parts.netloc)
        self.scheme = parts.scheme
        self.netloc = parts.netloc
        self.server_name = host.strip("[]")
        self.server_port = str(port or DEFAULT_PORTS[parts.scheme])
        self.prefix = parts.path
        first = self.prefix.lstrip("/").split("/", 1)[0]
        if first in top_level_paths:
            raise ConfigError(
                f"setting 'web.public_url': its path {self.prefix!r} starts with /{first}, one of the server's own "
                "paths, so a request could not tell the prefix from the path: choose another prefix"
            )

    def rewrite(self, environ: dict[str, Any]) -> None:
        environ["wsgi.url_scheme"] = self.scheme
        environ["HTTP_HOST"] = self.netloc
        environ["SERVER_NAME"] = self.server_name
        environ["SERVER_PORT"] = self.server_port
        path: str = environ.get("PATH_INFO", "")
        # A proxy that keeps the prefix sends it here; one that strips it (or waitress's url_prefix) did not.
        if self.prefix and (path == self.prefix or path.startswith(self.prefix + "/")):
            environ["PATH_INFO"] = path[len(self.prefix) :]
        environ["SCRIPT_NAME"] = self.prefix
