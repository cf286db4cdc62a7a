"""The release report in a real browser: a tiny iris candidate's report against its champion, opened from the file
`release-assets report` wrote. Nothing is fetched (the page is self-contained), every plot decodes, and the page is
pictured in ``docs/screenshots/release_report.png`` (with UPDATE_SCREENSHOTS=1, else in the temp folder).

It needs no Dagster webserver, so it launches its own Chromium instead of the UI tests' session fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from release_assets.cli import main as cli
from release_assets_tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, TIMEOUT_MS, _require_browser
from release_assets_tests.e2e.pages import save_screenshot

# Tall enough for the header, the gate table, the changes and the plots in one picture.
REPORT_VIEWPORT = {"width": 1400, "height": 2000}


def _version(out: str) -> str:
    return next(line.split()[-1] for line in out.splitlines() if line.strip().startswith("version:"))


@pytest.fixture
def report(cli_env, tmp_path, capsys) -> tuple[Path, str, str]:
    """The report of an iris candidate (one hyper-parameter changed) against the champion published before it."""
    _require_browser()  # skip before minutes of work when there is no browser
    assert cli.main(["release", "iris", "--quiet"]) == 0
    champion = _version(capsys.readouterr().out)
    assert cli.main(["promote", "iris", champion, "--approved-by", "a", "--reason", "first"]) == 0
    assert cli.main(["release", "iris", "--quiet", "--set", "iris:members.classifier.params.C=0.5"]) == 0
    candidate = _version(capsys.readouterr().out)
    out = tmp_path / "report.html"
    assert cli.main(["report", "iris", candidate, "--out", str(out)]) == 0
    return out, champion, candidate


def test_the_release_report_opens_in_chromium_and_fetches_nothing(report):
    path, champion, candidate = report
    sync_api = _require_browser()
    expect = sync_api.expect
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport=REPORT_VIEWPORT).new_page()
            page.set_default_timeout(TIMEOUT_MS)
            requested: list[str] = []
            page.on("request", lambda r: requested.append(r.url))
            problems: list[str] = []
            page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.goto(path.as_uri())

            expect(page.get_by_role("heading", level=1)).to_contain_text(f"iris {candidate}")
            gates = page.locator("#gates tbody tr")
            expect(gates.first).to_be_visible()
            assert gates.count() >= 10  # iris: the dataset's, the split's and the classifier's gates
            expect(page.locator("#gates .badge.fail")).to_have_count(0)
            expect(page.locator("#changes")).to_contain_text(f"champion {champion}")
            expect(page.locator("#changes tbody tr").filter(has_text="classifier").first).to_contain_text("changed")

            images = page.evaluate(
                "() => [...document.images].map((i) => ({src: i.src.slice(0, 22), w: i.naturalWidth, ok: i.complete}))"
            )
            assert all(i["ok"] and i["w"] > 0 and i["src"] == "data:image/png;base64," for i in images), images
            if images:  # the evaluation stage draws plots when the [plots] extra is installed
                expect(page.locator("#plots figure img").first).to_be_visible()
            else:
                expect(page.locator("#plots")).to_contain_text("No plots")
            # Only the file itself was requested: no stylesheet, font, script or image from anywhere.
            assert [u for u in requested if not u.startswith("data:")] == [path.as_uri()], requested
            assert problems == [], problems  # a blocked load would be a Content-Security-Policy error here
            shot = save_screenshot(page, "release_report.png")
            print(f"\nrelease report screenshot: {shot} ({len(images)} plots)")
        finally:
            browser.close()
