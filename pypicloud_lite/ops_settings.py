"""The operators' settings: `audit.*` (retention), `log.*` (format, access log) and `metrics.*` (/metrics access)."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from pypicloud_lite.config_values import parse_bool, parse_duration, parse_list

T = TypeVar("T")
# The settings prefixes read here (config.py refuses unknown keys under them).
OPS_PREFIXES = ("audit.", "log.", "metrics.")
LOG_FORMATS = ("text", "json")
ACCESS_LOG_FORMATS = ("off", "common", "json")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class _Reader(Protocol):
    def get(self, key: str, default: str | None = None) -> str | None: ...

    def typed(self, key: str, parse: Callable[[str], T], default: str) -> T: ...


@dataclass(frozen=True)
class OpsSettings:
    # Audit records older than this are pruned (0: kept for ever).
    audit_retention: int = 365 * 86400
    # Every log line as text (the default) or one JSON object per line.
    log_format: str = "text"
    # One line per request: off, common (Apache's common log format, plus duration and request id) or json.
    access_log: str = "off"
    metrics_enabled: bool = False
    # Who may scrape /metrics: clients from these networks, or anyone sending `Authorization: Bearer <token>`.
    metrics_allow: tuple[Network, ...] = field(
        default_factory=lambda: (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
    )
    metrics_token: str | None = field(default=None, repr=False)


def _choice(choices: tuple[str, ...]) -> Callable[[str], str]:
    def parse(value: str) -> str:
        value = value.strip().lower()
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {value!r}")
        return value

    return parse


def parse_networks(value: str) -> tuple[Network, ...]:
    """'127.0.0.1/32 10.0.0.0/8 ::1' -> networks (a bare address is a network of one)."""
    networks = []
    for item in parse_list(value):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"expected addresses or CIDR networks such as 10.0.0.0/8, got {item!r}") from None
    return tuple(networks)


def ops_settings(r: Any) -> OpsSettings:
    reader: _Reader = r
    defaults = OpsSettings()
    token = (reader.get("metrics.token", "") or "").strip()
    allow = reader.get("metrics.allow")
    return OpsSettings(
        audit_retention=reader.typed("audit.retention", parse_duration, str(defaults.audit_retention)),
        log_format=reader.typed("log.format", _choice(LOG_FORMATS), defaults.log_format),
        access_log=reader.typed("log.access", _choice(ACCESS_LOG_FORMATS), defaults.access_log),
        metrics_enabled=reader.typed("metrics.enabled", parse_bool, "false"),
        metrics_allow=defaults.metrics_allow if allow is None else reader.typed("metrics.allow", parse_networks, ""),
        metrics_token=token or None,
    )
