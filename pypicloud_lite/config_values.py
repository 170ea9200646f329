"""The parsers of setting values: booleans, sizes, durations, instants, lists, counts, hosts and the public URL.

Each takes the ini string and returns the value or raises ValueError saying why (config._Reader
turns that into a ConfigError naming the setting).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from urllib.parse import urlsplit

_SIZE = re.compile(r"^\s*(\d+)\s*([kmgt]?i?b?)?\s*\Z", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "b": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4}


def parse_bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def parse_size(value: str) -> int:
    """'100MB', '1GiB', '4096' -> bytes."""
    match = _SIZE.match(value)
    if not match:
        raise ValueError(f"expected a size such as 100MB or 1GiB, got {value!r}")
    number, unit = int(match.group(1)), (match.group(2) or "").lower()
    binary = "i" in unit
    prefix = unit[:1] if unit[:1] in "kmgt" else ""
    factor = 1024 ** ("kmgt".index(prefix) + 1) if binary and prefix else _SIZE_UNITS[prefix]
    return number * factor


def parse_non_negative(value: str) -> float:
    number = float(value)
    if not number >= 0:
        raise ValueError(f"{value!r} is not a number of seconds >= 0")
    return number


def parse_count(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError(f"{value!r} is not a whole number >= 1")
    return number


def parse_seconds(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError(f"{value!r} is not a whole number of seconds >= 1")
    return number


_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw]?)\s*\Z", re.IGNORECASE)
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(value: str) -> int:
    """'3d', '12h', '30m', '45s', '2w', '90' (seconds), '0' -> seconds."""
    match = _DURATION.match(value)
    if not match:
        raise ValueError(f"expected a duration such as 3d, 12h, 30m or 0, got {value!r}")
    return int(match.group(1)) * _DURATION_UNITS[match.group(2).lower()]


def parse_instant(value: str) -> datetime | None:
    """An ISO 8601 date or date and time ('2024-03-15', '2024-03-15T10:00Z'), UTC when no offset; '' -> None."""
    if not value.strip():
        return None
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"expected an ISO 8601 date or date and time such as 2024-03-15T10:00Z, got {value!r}"
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def parse_list(value: str) -> tuple[str, ...]:
    return tuple(part for part in re.split(r"[\s,]+", value.strip()) if part)


# A host name (letters, digits, hyphens, dots), an IPv4 address, or an IPv6 address in brackets; then a port.
_HOST = re.compile(r"^(?P<host>[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?|\[[0-9a-f:.]+\])(?::(?P<port>[0-9]{1,5}))?\Z")
# The path prefix of web.public_url: segments of characters that need no percent-encoding.
_PREFIX_SEGMENT = re.compile(r"^[A-Za-z0-9._~!$&'()*+,;=:@-]+\Z")
DEFAULT_PORTS = {"http": 80, "https": 443}


def split_host(value: str) -> tuple[str, int | None]:
    """'Example.COM:8080' -> ('example.com', 8080); '[::1]' -> ('[::1]', None). ValueError if it is not a host."""
    match = _HOST.match(value.strip().lower())
    port = None if match is None or match.group("port") is None else int(match.group("port"))
    if match is None or (port is not None and not 0 < port < 65536):
        raise ValueError(f"{value!r} is not a host name or address with an optional :port")
    return match.group("host"), port


def parse_public_url(value: str) -> str | None:
    """'https://PyPI.example.com:443/base/' -> 'https://pypi.example.com/base' (empty: None)."""
    value = value.strip()
    if not value:
        return None
    parts = urlsplit(value)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.netloc:
        raise ValueError(f"expected http:// or https:// and a host, such as https://pypi.example.com, got {value!r}")
    if parts.query or parts.fragment or value.endswith(("?", "#")) or "@" in parts.netloc:
        raise ValueError(f"expected scheme://host[:port][/path] with no user, query or fragment, got {value!r}")
    host, port = split_host(parts.netloc)
    path = parts.path.rstrip("/")
    segments = path.split("/")[1:] if path else []
    if any(segment in ("", ".", "..") or not _PREFIX_SEGMENT.match(segment) for segment in segments):
        raise ValueError(f"the path of {value!r} must be plain segments (no '.', '..', '//' or percent-escapes)")
    netloc = host if port in (None, DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    return f"{scheme}://{netloc}" + "".join(f"/{segment}" for segment in segments)


def parse_allowed_hosts(value: str) -> tuple[str, ...]:
    """Space-, newline- or comma-separated host[:port] names (or *), lower-cased."""
    hosts = parse_list(value)
    if not hosts:
        raise ValueError("expected host names (host or host:port, or *), got nothing")
    for host in hosts:
        if host != "*":
            split_host(host)
    return tuple(host.lower() for host in hosts)
