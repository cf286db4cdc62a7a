"""What the tests read off Dagster UI pages, kept apart from what they assert."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from release_assets_tests.conftest import REPO

# The README's pictures are refreshed deliberately (UPDATE_SCREENSHOTS=1); a plain test run keeps its own copies
# out of the working tree, so `make test` never leaves tracked files modified.
SCREENSHOTS = (
    REPO / "docs" / "screenshots"
    if os.environ.get("UPDATE_SCREENSHOTS")
    else Path(tempfile.gettempdir()) / "release_assets_screenshots"
)
ASSET_GRAPH = REPO / "release_assets_tests" / "snapshots" / "asset_graph.json"


def save_screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    page.screenshot(path=str(path), animations="disabled")  # dialogs fade in
    return path


def expected_groups() -> dict[str, list[str]]:
    """``{group: [asset name, ...]}`` from the asset-graph snapshot: what the lineage page must show."""
    groups: dict[str, list[str]] = {}
    for key, node in json.loads(ASSET_GRAPH.read_text()).items():
        groups.setdefault(node["group"], []).append(key.split("/")[-1])
    return {g: sorted(names) for g, names in groups.items()}


# Every rendered group box (its header carries the full group name as a tooltip) and every rendered asset node
# (its label, which the UI middle-truncates with an ellipsis when long), with their positions in the graph's SVG.
_RENDERED_GRAPH_JS = """() => {
  const rect = (fo) => ['x', 'y', 'width', 'height'].map((a) => parseFloat(fo.getAttribute(a)));
  const groups = [...document.querySelectorAll('foreignObject.group')].map((fo) => {
    const header = fo.querySelector('[data-tooltip]');
    return {name: header ? header.getAttribute('data-tooltip') : null, rect: rect(fo)};
  });
  const assets = [...document.querySelectorAll('foreignObject')]
    .map((fo) => [fo, fo.querySelector('[class*="AssetNode_assetName"]')])
    .filter(([fo, label]) => label && !fo.classList.contains('group'))
    .map(([fo, label]) => ({label: label.textContent.trim(), rect: rect(fo)}));
  return {groups, assets};
}"""


def rendered_groups(page) -> dict[str, list[str]]:
    """``{group: [node label, ...]}`` of what the asset graph currently renders (it skips nodes off screen)."""
    graph = page.evaluate(_RENDERED_GRAPH_JS)
    shown: dict[str, list[str]] = {g["name"]: [] for g in graph["groups"] if g["name"]}
    for asset in graph["assets"]:
        ax, ay, _, _ = asset["rect"]
        for group in graph["groups"]:
            gx, gy, gw, gh = group["rect"]
            if group["name"] and gx <= ax <= gx + gw and gy <= ay <= gy + gh:
                shown[group["name"]].append(asset["label"])
                break
    return {g: sorted(labels) for g, labels in shown.items()}


def label_shows(label: str, name: str) -> bool:
    """Whether a node label is ``name``, possibly middle-truncated (``intent_mod…_report``)."""
    if "…" not in label:
        return label == name
    head, _, tail = label.partition("…")
    return len(name) > len(head) + len(tail) and name.startswith(head) and name.endswith(tail)


def missing_from(shown: dict[str, list[str]], expected: dict[str, list[str]]) -> dict[str, list[str]]:
    """Expected asset names with no node label in their group (one label stands for one asset)."""
    missing: dict[str, list[str]] = {}
    for group, names in expected.items():
        labels = list(shown.get(group, []))
        for name in names:
            match = next((label for label in labels if label == name), None) or next(
                (label for label in labels if label_shows(label, name)), None
            )
            if match is None:
                missing.setdefault(group, []).append(name)
            else:
                labels.remove(match)
    return missing


# Screen boxes of the graph's viewport (below the toolbar that overlays it) and of everything drawn in it, and a
# point of empty background in the viewport to drag the graph by.
_GRAPH_BOXES_JS = """() => {
  const viewport = document.querySelector('[data-svg-viewport]');
  const vp = viewport.getBoundingClientRect();
  const toolbar = 64;
  const boxes = [...viewport.querySelectorAll('foreignObject')].map((fo) => fo.getBoundingClientRect());
  const drawn = boxes.length ? [
    Math.min(...boxes.map((r) => r.left)), Math.min(...boxes.map((r) => r.top)),
    Math.max(...boxes.map((r) => r.right)), Math.max(...boxes.map((r) => r.bottom)),
  ] : null;
  let grip = null;
  for (let y = vp.bottom - 40; y > vp.top + toolbar && !grip; y -= 37) {
    for (let x = vp.left + 40; x < vp.right - 120 && !grip; x += 53) {
      const el = document.elementFromPoint(x, y);
      if (el && viewport.contains(el) && !el.closest('foreignObject, button, path')) grip = [x, y];
    }
  }
  return {view: [vp.left, vp.top + toolbar, vp.right - 60, vp.bottom], drawn, grip};
}"""


def frame_graph(page, expected: dict[str, list[str]], max_steps: int = 16) -> dict[str, list[str]]:
    """Pan and zoom the asset graph until every expected node is drawn and the whole graph is in view.

    The graph draws only nodes inside the viewport and does not zoom to fit a large graph, so: centre what is
    drawn, zoom out while anything is cut off or missing, then zoom in while the graph would still fit.
    Returns what is drawn at the end (``rendered_groups``).
    """
    zoom_in = page.locator("button:has([aria-label=zoom_in])")
    zoom_out = page.locator("button:has([aria-label=zoom_out])")

    def centre() -> tuple[bool, float]:
        boxes = page.evaluate(_GRAPH_BOXES_JS)
        (vl, vt, vr, vb), drawn, grip = boxes["view"], boxes["drawn"], boxes["grip"]
        if drawn is None:
            return False, 0.0
        dx = (vl + vr) / 2 - (drawn[0] + drawn[2]) / 2
        dy = (vt + vb) / 2 - (drawn[1] + drawn[3]) / 2
        if grip and (abs(dx) > 4 or abs(dy) > 4):
            page.mouse.move(*grip)
            page.mouse.down()
            page.mouse.move(grip[0] + dx, grip[1] + dy, steps=4)
            page.mouse.up()
            page.wait_for_timeout(100)
        fits = drawn[2] - drawn[0] <= vr - vl and drawn[3] - drawn[1] <= vb - vt
        room = min((vr - vl) / max(drawn[2] - drawn[0], 1), (vb - vt) / max(drawn[3] - drawn[1], 1))
        return fits, room

    def complete() -> bool:
        return not missing_from(rendered_groups(page), expected)

    for _ in range(max_steps):
        fits, _room = centre()
        if fits and complete():
            break
        zoom_out.click()
        page.wait_for_timeout(250)
    for _ in range(max_steps):
        fits, room = centre()
        if room < 1.3:
            break
        zoom_in.click()
        page.wait_for_timeout(250)
        fits, _room = centre()
        if not (fits and complete()):
            zoom_out.click()
            page.wait_for_timeout(250)
            centre()
            break
    page.wait_for_timeout(250)
    return rendered_groups(page)
