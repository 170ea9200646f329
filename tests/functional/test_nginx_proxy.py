"""The repository's nginx configuration in front of the real server: TLS at nginx, every link and redirect https.

twine uploads, pip and uv install through https with the test CA given to each; the pages they and browsers read
(simple HTML and JSON, /pypi/<p>/json, the UI's install line and login redirect) name the public https address
only. A client cannot change those URLs with forwarded headers of its own: nginx overwrites them.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

from pypicloud_lite.config import load_ini
from tests.support.common import UPLOADER, UPLOADER_PASSWORD
from tests.support.distbuilder import build_wheel
from tests.support.harness import BIN, JSON_V1, run, start_server
from tests.support.nginx import SITE_CONF, Nginx, nginx_ports, running_nginx

PROJECT = "tls-widget"
# The only external link the pages carry: the Homepage of build_wheel's metadata.
HOMEPAGE = "https://example.invalid/"
# waitress believes the proxy on the loopback address for these headers, and only the last client address.
TRUSTING = """\
threads = 4
trusted_proxy = 127.0.0.1
trusted_proxy_headers = x-forwarded-proto x-forwarded-host x-forwarded-port x-forwarded-for
trusted_proxy_count = 1
"""
EVIL = "evil.example"
SPOOFED = {
    "X-Forwarded-Proto": "http",
    "X-Forwarded-Host": EVIL,
    "X-Forwarded-Port": "8080",
    "X-Forwarded-Prefix": "/evil",
    "Forwarded": f"for=1.2.3.4;host={EVIL};proto=http",
}


@contextmanager
def behind_nginx(folder: Path, *, public_url: bool) -> Iterator[Nginx]:
    """A server (with web.public_url, else trusting nginx's forwarded headers) behind the repository's nginx file."""
    ports = nginx_ports()
    public = f"https://localhost:{ports[0]}"
    extra = {"web.public_url": public} if public_url else {"web.allowed_hosts": "127.0.0.1 localhost"}
    server = start_server(folder / "server", extra=extra, waitress=None if public_url else TRUSTING)
    try:
        with running_nginx(folder / "nginx", ports, urlsplit(server.url).port or 0) as nginx:
            assert nginx.url == public
            yield nginx
    finally:
        server.stop()


def page_urls(page: str, body: bytes) -> list[str]:
    """Every URL an HTML or JSON page names (links, form actions, `url`s, install lines), made absolute."""
    text = body.decode("utf-8")
    if text.lstrip().startswith("{"):
        found = list(json_urls(json.loads(text)))
    else:
        found = [html.unescape(u) for u in re.findall(r'(?:href|action|src)="([^"#][^"]*)"', text)]
        found += re.findall(r"--index-url (\S+?)(?:<|\s)", text)
    return [urljoin(page, url) for url in found]


def json_urls(doc: Any) -> Iterator[str]:
    """The values of every `url` and `*_url` key in a JSON document."""
    if isinstance(doc, list):
        for item in doc:
            yield from json_urls(item)
    elif isinstance(doc, dict):
        for key, value in doc.items():
            if (key == "url" or key.endswith("_url")) and isinstance(value, str):
                yield value
            yield from json_urls(value)


def assert_all_https(nginx: Nginx, path: str, accept: str | None = None) -> dict[str, Any] | None:
    """GET `path` through nginx: 200, and every URL it names is on the public https address; the JSON if any."""
    status, _location, body = nginx.ask(path, {"Accept": accept} if accept else {})
    assert status == 200, body[:500]
    urls = page_urls(nginx.url + path, body)
    assert urls, f"{path} names no URL"
    wrong = [u for u in urls if not u.startswith(nginx.url + "/") and u != HOMEPAGE]
    assert not wrong, f"{path} names {wrong}"
    return json.loads(body) if body.lstrip().startswith(b"{") else None


def assert_redirects_https(nginx: Nginx, headers: dict[str, str] | None = None) -> None:
    """The server's redirects (normalized names, trailing slashes, the login) go to the public https address."""
    assert nginx.ask("/simple", headers)[:2] == (301, f"{nginx.url}/simple/")
    assert nginx.ask("/simple/TLS_Widget/", headers)[:2] == (301, f"{nginx.url}/simple/{PROJECT}/")
    assert nginx.ask("/ui/tokens", headers)[:2] == (303, f"{nginx.url}/ui/login?next=%2Fui%2Ftokens")


def test_the_nginx_file_admits_the_largest_upload() -> None:
    body = load_ini(Path(__file__).parents[2] / "development.ini", environ={}).upload.max_body
    size = re.search(r"client_max_body_size (\d+)m;", SITE_CONF.read_text(encoding="utf-8"))
    assert size is not None and int(size.group(1)) * 1024 * 1024 >= body


def test_twine_pip_and_uv_through_nginx_with_tls(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path / "dist", PROJECT, "1.0")
    home = tmp_path / "home"
    with behind_nginx(tmp_path, public_url=True) as nginx:
        ca = str(nginx.ca_file)
        twine = (BIN / "twine", "upload", "--repository-url", f"{nginx.url}/legacy/", "--cert", ca)
        run(*twine, "-u", UPLOADER, "-p", UPLOADER_PASSWORD, "--non-interactive", wheel, home=home).check()

        simple = f"{nginx.url}/simple/"
        # SSL_CERT_FILE as well as --cert: pip 26 verifies through truststore, which reads the former.
        pip = (BIN / "python", "-m", "pip", "download", "--no-deps", "--no-cache-dir", "--cert", ca, "-d", home / "pip")
        run(*pip, "--index-url", simple, PROJECT, home=home, env={"SSL_CERT_FILE": ca}).check()
        assert [p.name for p in (home / "pip").iterdir()] == [wheel.name]
        uv = (BIN / "uv", "pip", "install", "--no-deps", "--target", home / "uv", "--index-url", simple, PROJECT)
        run(*uv, home=home, env={"SSL_CERT_FILE": ca}).check()
        assert (home / "uv" / "tls_widget" / "__init__.py").is_file()

        for path in ("/", "/simple/", f"/simple/{PROJECT}/", f"/ui/projects/{PROJECT}"):
            assert_all_https(nginx, path)
        assert_all_https(nginx, f"/simple/{PROJECT}/", JSON_V1)
        assert f"--index-url {nginx.url}/simple/ ".encode() in nginx.ask(f"/ui/projects/{PROJECT}")[2]
        doc = assert_all_https(nginx, f"/pypi/{PROJECT}/json")
        assert doc is not None and doc["urls"][0]["url"] == f"{nginx.url}/packages/{PROJECT}/{wheel.name}"
        assert_redirects_https(nginx)
        assert_redirects_https(nginx, SPOOFED)
        # Plain http at nginx is only a redirect to https (the default port there: production listens on 443).
        status, location, _body = nginx.ask_plain("/simple/")
        assert (status, location) == (301, "https://localhost/simple/")


def test_forwarded_headers_from_a_client_change_no_url(tmp_path: Path) -> None:
    """Without web.public_url, waitress trusts nginx's headers; nginx overwrites whatever the client sent."""
    with behind_nginx(tmp_path, public_url=False) as nginx:
        assert_redirects_https(nginx)
        assert_redirects_https(nginx, SPOOFED)
        status, _location, body = nginx.ask("/", SPOOFED)
        assert status == 200 and EVIL.encode() not in body and f"{nginx.url}/simple/".encode() in body
        # A Host nobody allowed is refused, not turned into links.
        status, location, body = nginx.ask("/simple", {**SPOOFED, "Host": EVIL})
        assert (status, location) == (400, "") and "web.allowed_hosts" in json.loads(body)["message"]
