"""The Dagster UI, in a real browser, over an instance where helpdesk published and iris failed its accuracy gate.

Each test leaves a screenshot (in ``docs/screenshots/`` with UPDATE_SCREENSHOTS=1, else in the temp folder).
"""

from __future__ import annotations

import re

import pytest

from release_assets_tests.e2e.pages import expected_groups, frame_graph, missing_from, save_screenshot

expect = pytest.importorskip("playwright.sync_api").expect

LOCATION = "release_assets.definitions:defs"  # how the workspace names a python_module location with an attribute


def test_lineage_shows_every_asset_of_both_releases(page):
    expected = expected_groups()
    # The UI stops drawing nodes below a zoom level, and the vertical graph of every group no longer fits 1000 px
    # at that level: a taller page (2400 px), for this test only.
    page.set_viewport_size({"width": 1600, "height": 2400})
    page.goto("/asset-groups")
    expect(page.get_by_text("Global asset lineage")).to_be_visible()
    page.get_by_role("button", name="panel_show_right", exact=True).click()  # the group tree beside the graph
    page.get_by_role("button", name="Hide navigation").click()
    # The global graph opens with every group collapsed; the graph's own settings menu expands them, and the
    # vertical layout fits a 16:10 screen far better than the default left-to-right one.
    for item in ("Expand all groups", "Change graph to vertical orientation"):
        page.locator("#zoom-slider-container").get_by_role("button", name="settings").click()
        page.get_by_role("menuitem", name=item).click()
        page.keyboard.press("Escape")

    shown = frame_graph(page, expected)
    missing = missing_from(shown, expected)
    assert sorted(shown) == sorted(expected), "groups drawn on the lineage page"
    assert not missing, f"assets missing from the lineage page: {missing}\nshown: {shown}"
    assert sum(map(len, shown.values())) == sum(map(len, expected.values())), f"unexpected nodes: {shown}"
    save_screenshot(page, "lineage.png")


def test_failed_gate_shows_reason_and_worst_examples(page):
    page.goto("/assets/iris/classifier_report?view=checks&checkDetail=accuracy_gate")
    expect(page.get_by_text("This is a blocking asset check.")).to_be_visible()
    expect(page.get_by_text("Failed", exact=True).first).to_be_visible()
    # The reason is the check's description, shown under "Latest execution".
    expect(page.get_by_text(re.compile(r"accuracy = [0-9.]+ violates the gate >= 0\.9")).first).to_be_visible()

    worst = page.locator("tr").filter(has=page.get_by_text("worst_examples", exact=True))
    worst.get_by_text("[Show Markdown]").click()
    dialog = page.get_by_role("dialog")
    table = dialog.locator("table")
    expect(table).to_be_visible()
    expect(table.locator("tbody tr").first).to_be_visible()
    assert table.locator("tbody tr").count() >= 1
    save_screenshot(page, "failed_check.png")


def test_failed_gate_shows_the_plot_that_explains_it(page):
    """The failed accuracy check carries its report's confusion matrix: the image renders in the UI's markdown."""
    page.goto("/assets/iris/classifier_report?view=checks&checkDetail=accuracy_gate")
    expect(page.get_by_text("Failed", exact=True).first).to_be_visible()
    row = page.locator("tr").filter(has=page.get_by_text("plot_confusion_matrix", exact=True))
    row.get_by_text("[Show Markdown]").click()
    image = page.get_by_role("dialog").get_by_role("img", name="Confusion matrix")
    expect(image).to_be_visible()
    # Decoded, not a broken-image icon: the data: URI's PNG has its real size (400 x 320 pixels at 80 dpi).
    width = image.evaluate("img => img.complete ? img.naturalWidth : 0")
    assert width >= 300, f"the confusion matrix did not render (natural width {width})"
    save_screenshot(page, "failed_check_plot.png")


def test_release_unit_page_shows_the_member_table(page, ui):
    [published] = [p.name for p in (ui.root / "store" / "releases" / "helpdesk").iterdir() if p.is_dir()]
    page.goto("/assets/helpdesk/release_unit")
    page.get_by_role("button", name="Hide navigation").click()
    version = page.locator("tr").filter(has=page.get_by_text("version", exact=True))
    expect(version).to_contain_text(published)

    members = page.locator("tr").filter(has=page.get_by_text("members", exact=True)).locator("table")
    expect(members).to_be_visible()
    expect(members.locator("th").first).to_have_text("member")
    for name in ("intent_model", "vision_model", "chain", "chain_evaluation", "messages_split"):
        expect(members.get_by_role("cell", name=name, exact=True)).to_be_visible()
    members.scroll_into_view_if_needed()
    save_screenshot(page, "release_unit.png")


def test_promoting_an_unpublished_version_from_the_launchpad_is_refused(page):
    page.goto(f"/locations/{LOCATION}/jobs/promote_release/playground")
    editor = page.locator(".CodeMirror")
    expect(editor).to_be_visible()
    editor.click()
    page.keyboard.press("Control+A")
    # Typed as one paste: CodeMirror's auto-indent would re-indent key-by-key typing. The version is quoted, as
    # all-digit versions must be in YAML.
    page.keyboard.insert_text(
        "ops:\n"
        "  promote:\n"
        "    config:\n"
        "      release: iris\n"
        '      version: "0000000000000000"\n'
        "      approved_by: e2e-test\n"
        "      reason: a browser test of a refused promotion\n"
    )
    launch = page.get_by_role("button", name="Launch Run")
    expect(launch).to_be_enabled()
    launch.click()

    page.wait_for_url(re.compile(r"/runs/[0-9a-f-]{36}"), timeout=60_000)
    # The run subprocess imports the code location: allow for a busy machine.
    expect(page.get_by_text("Failure", exact=True).first).to_be_visible(timeout=120_000)
    refusal = page.get_by_text(re.compile(r"promotion refused: iris 0000000000000000 was never published")).first
    expect(refusal).to_be_visible()
    page.get_by_text("STEP_FAILURE", exact=True).first.scroll_into_view_if_needed()
    save_screenshot(page, "promote_refused.png")


def test_rollout_asset_shows_the_canary_analyses_and_the_breach_that_rolled_it_back(page, ui):
    """The canary's history on ``helpdesk/rollout``: the events the canary_monitor sensor records each tick."""
    import dagster as dg

    from bench.support.bundles import publish_unit
    from release_assets.manifest import load_manifest
    from release_assets.record.ledger import promote
    from release_assets.release.store import LocalReleaseStore
    from release_assets.rollout.canary import Rollout, start, tick
    from release_assets.rollout.sensors import tick_events
    from release_assets_tests.rollout.test_canary import Source

    store = LocalReleaseStore(ui.root / "store")
    [champion] = [p.name for p in (ui.root / "store" / "releases" / "helpdesk").iterdir() if p.is_dir()]
    promote(store, "helpdesk", champion, "e2e-test", "first champion")
    canary = publish_unit(store, "helpdesk", "a canary for the browser test")
    spec = load_manifest(ui.root / "project" / "releases" / "helpdesk.yaml").rollout
    r = Rollout(store, "helpdesk", spec.model_copy(update={"bake_s": 0}), ui.root / "store" / "flags")
    source = Source()
    start(r, canary, "e2e-test", "new prompts", source=source)
    events = []
    source.add(champion, requests=400)
    source.add(canary, requests=150)
    events += tick_events("helpdesk", tick(r, source))  # the first step passes: advanced
    source.add(champion, requests=300)
    source.add(canary, requests=300, errors=60)
    rolled_back = tick(r, source)
    assert rolled_back.action == "rolled_back"
    events += tick_events("helpdesk", rolled_back)
    with dg.DagsterInstance.from_config(ui.env["DAGSTER_HOME"]) as instance:
        for event in events:  # what the sensor's SensorResult(asset_events=...) persists
            instance.report_runless_asset_event(event)

    page.goto("/assets/helpdesk/rollout?view=checks&checkDetail=canary_budgets")
    expect(page.get_by_text("Failed", exact=True).first).to_be_visible()
    expect(page.get_by_text(re.compile(r"over budget: error_rate 0\.2")).first).to_be_visible()
    kpis = page.locator("tr").filter(has=page.get_by_text("kpis", exact=True))
    kpis.get_by_text("[Show Markdown]").first.click()
    table = page.get_by_role("dialog").locator("table")
    expect(table.get_by_role("cell", name="BREACH", exact=True)).to_be_visible()
    save_screenshot(page, "rollout_check.png")
    page.keyboard.press("Escape")
    page.goto("/assets/helpdesk/rollout?view=events")
    expect(page.get_by_text("rolled_back").first).to_be_visible()
    save_screenshot(page, "rollout_events.png")
