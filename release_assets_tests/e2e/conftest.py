"""Browser fixtures: one webserver over a materialized instance per session, one Chromium, a fresh page per test.

The tests drive Debian's Chromium (``/usr/bin/chromium``; ``.ci/run`` installs it), never a browser downloaded by
``playwright install``. Without it they skip, loudly.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from release_assets_tests.e2e import server

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
VIEWPORT = {"width": 1600, "height": 1000}
TIMEOUT_MS = 30_000  # per action or assertion; a busy 2-core machine renders the graph slowly

# The UI's own flag for "the community modal was dismissed" (useStateWithStorage("communityNux")).
SKIP_NUX = "window.localStorage.setItem('communityNux', JSON.stringify('1'));"


def _require_browser():
    """The Playwright API, or a loud skip when the package or Debian's Chromium is missing."""
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="UI tests need the `playwright` package: pip install -e '.[dev]'"
    )
    if not CHROMIUM.exists():
        pytest.skip(
            f"UI TESTS SKIPPED: no Chromium at {CHROMIUM}. Install Debian's package (`apt-get install -y chromium`, "
            "as .ci/run does); never `playwright install`."
        )
    return sync_api


@pytest.fixture(scope="session")
def ui(tmp_path_factory) -> Iterator[server.UiServer]:
    """A dagster-webserver on a free 127.0.0.1 port over an instance where helpdesk published and iris failed."""
    _require_browser()
    root = tmp_path_factory.mktemp("ui")
    timings: dict[str, float] = {}
    start = time.monotonic()
    env = server.prepare(root)
    url, process, log = server.start_webserver(root, env)
    try:
        # The webserver loads the code location while the releases run: both take a while on two cores.
        server.materialize(root, env)
        timings["materialize_s"] = time.monotonic() - start
        server.wait_ready(url, process, log)
        timings["fixture_s"] = time.monotonic() - start
        print(
            f"\nUI fixture: releases materialized in {timings['materialize_s']:.1f} s, "
            f"webserver ready in {timings['fixture_s']:.1f} s"
        )
        yield server.UiServer(url=url, root=root, env=env, process=process, log=log, timings=timings)
    finally:
        server.stop(process)


@pytest.fixture(scope="session")
def browser(ui):
    sync_api = _require_browser()
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def dismiss_community_modal(page) -> None:
    """Three layers, so the "Join the Dagster community" modal can never cover what a test clicks.

    1. ``dagster.yaml`` sets ``nux: enabled: false``: the server answers ``shouldShowNux: false`` and the UI
       never opens it (this is what happens today).
    2. The init script marks it dismissed in local storage, as clicking "Skip" would.
    3. Should it still open (it appears about 1 s after load), Playwright's locator handler clicks "Skip" before
       the next action or assertion: no sleeps, no waiting for a modal that may never come.
    """
    page.add_init_script(SKIP_NUX)
    modal = page.get_by_role("dialog").filter(has_text="Join the Dagster community")
    page.add_locator_handler(modal, lambda m: m.get_by_role("button", name="Skip").click())


@pytest.fixture
def page(browser, ui, request):
    sync_api = _require_browser()
    context = browser.new_context(viewport=VIEWPORT, base_url=ui.url)
    context.set_default_timeout(TIMEOUT_MS)
    sync_api.expect.set_options(timeout=TIMEOUT_MS)
    page = context.new_page()
    dismiss_community_modal(page)
    try:
        yield page
    finally:
        failed = getattr(request.node, "rep_call", None)
        if failed is not None and failed.failed:
            failure_dir = ui.root / "failures"
            failure_dir.mkdir(exist_ok=True)
            page.screenshot(path=str(failure_dir / f"{request.node.name}.png"))
            print(f"screenshot of the failure: {failure_dir / request.node.name}.png; webserver log: {ui.log}")
        context.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
