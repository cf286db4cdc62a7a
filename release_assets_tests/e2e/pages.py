"""What the tests read off Dagster UI pages, kept apart from what they assert."""

from __future__ import annotations

import json
from pathlib import Path

from release_assets_tests.conftest import REPO

SCREENSHOTS = REPO / "docs" / "screenshots"
ASSET_GRAPH = REPO / "release_assets_tests" / "snapshots" / "asset_graph.json"


def save_screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    page.screenshot(path=str(path))
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
