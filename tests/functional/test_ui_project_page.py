"""The project page in headless Chromium against the real server: a hostile README rendered harmless, download
counts, every control reachable at desktop and phone widths, dark mode and the favicon."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.support.browser import OFF_SCREEN_CONTROLS, TIMEOUT_MS, chromium, publish, shot
from tests.support.common import UPLOADER, UPLOADER_PASSWORD
from tests.support.distbuilder import build_wheel
from tests.support.harness import Server, start_server
from tests.support.readmes import hostile_metadata

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

PROJECT = "shiny"
# A real-world wheel tag, long enough to push a table's last columns off a 1280 px screen.
MANYLINUX = "cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`shiny` 1.0, 1.1 and 2.0 (a hostile README, a long manylinux wheel and a plain one); `needed`, which
    2.0 requires; one download of the 2.0 wheel."""
    started = start_server(tmp_path_factory.mktemp("page-server"))
    dists = tmp_path_factory.mktemp("page-dists")
    publish(started, "needed", build_wheel(dists, "needed", "1.0"), UPLOADER)
    for version in ("1.0", "1.1"):
        publish(started, PROJECT, build_wheel(dists, PROJECT, version), UPLOADER)
    readme = hostile_metadata(PROJECT, "2.0")
    publish(started, PROJECT, build_wheel(dists, PROJECT, "2.0", metadata=readme), UPLOADER)
    publish(started, PROJECT, build_wheel(dists, PROJECT, "2.0", metadata=readme, tag=MANYLINUX), UPLOADER)
    with urllib.request.urlopen(f"{started.url}/packages/{PROJECT}/shiny-2.0-py3-none-any.whl", timeout=10) as got:
        got.read()
    yield started
    started.stop()


def _open(browser: Browser, server: Server, width: int, **options: Any) -> tuple[Page, list[str]]:
    context = browser.new_context(base_url=server.url, viewport={"width": width, "height": 900}, **options)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto("/ui/login")
    page.fill("#username", UPLOADER)
    page.fill("#password", UPLOADER_PASSWORD)
    page.click("#login-submit")
    page.wait_for_selector("#whoami")
    page.goto(f"/ui/projects/{PROJECT}")
    return page, dialogs


def test_a_hostile_readme_renders_without_running_anything(browser: Browser, server: Server, tmp_path: Path) -> None:
    page, dialogs = _open(browser, server, 1280)
    try:
        readme = page.locator("#project-description")
        assert readme.locator("h1").inner_text().strip() == "Shiny"
        assert readme.locator("strong").inner_text() == "bold"
        hostile = "script, iframe, [onerror], [href^='javascript:' i], [src^='javascript:' i]"
        assert page.locator(f"main {hostile}").count() == 0
        assert page.locator("#project-links a").all_inner_texts() == ["Source"]  # the javascript: one is text
        assert page.locator("#project-requires a").all_inner_texts() == ["needed>=1.0"]
        assert page.inner_text("#meta-author").startswith("Mallory")
        assert page.inner_text("#project-downloads") == "1"
        row = page.locator("tr[data-filename='shiny-2.0-py3-none-any.whl'] td.downloads")
        assert row.inner_text() == "1"
        # Newest first; the older releases folded.
        versions = page.locator(".release").evaluate_all("els => els.map(e => e.dataset.version)")
        assert versions == ["2.0", "1.1", "1.0"]
        assert page.locator("details.release[open]").count() == 0
        assert dialogs == []  # scripts run while the page is parsed: none did
        shot(page, tmp_path, "project-hostile-readme-1280")
    finally:
        page.context.close()


@pytest.mark.parametrize("width", [1280, 390])
def test_every_control_is_on_screen(browser: Browser, server: Server, tmp_path: Path, width: int) -> None:
    page, _dialogs = _open(browser, server, width)
    try:
        off_screen = page.evaluate(OFF_SCREEN_CONTROLS)
        shot(page, tmp_path, f"project-controls-{width}")
        assert off_screen == []
        delete_long = page.locator(f"tr[data-filename='shiny-2.0-{MANYLINUX}.whl'] button.danger")
        assert delete_long.is_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= width  # the page never scrolls sideways
    finally:
        page.context.close()


def test_dark_mode_and_favicon(browser: Browser, server: Server, tmp_path: Path) -> None:
    page, _dialogs = _open(browser, server, 1280, color_scheme="dark")
    try:
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(20, 23, 28)", background
        icon = page.locator("link[rel=icon]").get_attribute("href")
        assert icon is not None and page.request.get(icon).status == 200
        favicon = page.request.get("/favicon.ico")
        assert favicon.status == 200 and favicon.headers["content-type"] == "image/vnd.microsoft.icon"
        shot(page, tmp_path, "project-dark")
        page.goto("/")  # the landing page wears the same look
        assert page.evaluate("getComputedStyle(document.body).backgroundColor") == background
        shot(page, tmp_path, "root-dark")
    finally:
        page.context.close()
