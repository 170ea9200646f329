"""Headless Chromium (Playwright) for the web UI's tests, and the setup steps they share against a real server."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from pypicloud_lite.config import load_ini
from pypicloud_lite.service import UploadForm
from pypicloud_lite.web.services import AppServices, build_services
from tests.support.common import require_or_skip
from tests.support.distbuilder import digests
from tests.support.harness import Server

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
TIMEOUT_MS = 15_000

# The controls in <main> not fully on screen once every <details> is open (none: every one is reachable), leaving
# out a project's README (whose links are the author's, and may be wide code blocks that scroll in their own box).
OFF_SCREEN_CONTROLS = """() => {
  document.querySelectorAll('details').forEach(d => { d.open = true; });
  const width = document.documentElement.clientWidth;
  const controls = document.querySelectorAll(
    'main button:not([hidden]), main input:not([type=hidden]), main select, main summary, main a');
  return [...controls].filter(el => !el.closest('#project-description')).flatMap(el => {
    const box = el.getBoundingClientRect();
    const style = getComputedStyle(el);
    const shown = box.width > 0 && box.height > 0 && style.visibility !== 'hidden';
    return shown && box.left >= 0 && box.right <= width + 0.5 ? [] : [el.outerHTML.slice(0, 120)];
  });
}"""


@contextmanager
def chromium() -> Iterator[Browser]:
    """Debian's Chromium under Playwright; skips (fails where services are required) when either is missing."""
    if not CHROMIUM.exists():
        require_or_skip(f"Chromium not found at {CHROMIUM} (make test installs the Debian package as root)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require_or_skip("the playwright package is not installed (pip install -e '.[test]')")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield launched
        finally:
            launched.close()


@contextmanager
def app_services(server: Server) -> Iterator[AppServices]:
    """The server's own storage, cache and access database, opened from this process."""
    found, _generated = build_services(load_ini(server.ini, environ={}))
    try:
        yield found
    finally:
        found.index.cache.close()
        close = getattr(found.access, "close", None)
        if close is not None:
            close()


def publish(server: Server, name: str, wheel: Path, uploader: str) -> None:
    """Index a wheel directly through the service, as a setup step."""
    version = wheel.name.split("-")[1]
    with app_services(server) as found, wheel.open("rb") as fh:
        form = UploadForm(name=name, version=version, sha256_digest=digests(wheel)["sha256_digest"])
        found.index.upload(form, wheel.name, fh, uploader=uploader)


def shot(page: Page, folder: Path, name: str) -> Path:
    """A full-page screenshot saved as `folder`/`name`.png."""
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 0
    return path


def assert_reachable_at(page: Page, folder: Path, name: str, widths: tuple[int, ...] = (1280, 390)) -> None:
    """At each width: every control of the page on screen, no sideways scrolling; a screenshot of each."""
    for width in widths:
        page.set_viewport_size({"width": width, "height": 900})
        off_screen = page.evaluate(OFF_SCREEN_CONTROLS)
        shot(page, folder, f"{name}-{width}")
        assert off_screen == [], (name, width, off_screen)
        assert page.evaluate("document.documentElement.scrollWidth") <= width, (name, width)
