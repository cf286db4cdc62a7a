"""A snapshot of the lineage: asset keys, their dependencies, groups and gate checks.

A change here is a change users see in the Dagster UI. Regenerate deliberately with
``UPDATE_SNAPSHOTS=1 make test`` (or ``UPDATE_SNAPSHOTS=1 .venv/bin/pytest release_assets_tests/test_asset_graph.py``)
and review the diff. A missing snapshot fails: writing it silently would make the test pass against itself.
"""

import json
import os
import sys
from pathlib import Path

import dagster as dg

from release_assets.definitions import build_defs
from release_assets.manifest import load_manifests
from release_assets_tests.conftest import local_resources

REPO = Path(__file__).resolve().parent.parent
SNAPSHOT = Path(__file__).parent / "snapshots" / "asset_graph.json"
REGENERATE = "UPDATE_SNAPSHOTS=1 make test"


def graph_of(defs: dg.Definitions) -> dict:
    repo = defs.get_repository_def()
    graph = repo.asset_graph
    out = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        out[key.to_user_string()] = {
            "group": node.group_name,
            "deps": sorted(p.to_user_string() for p in node.parent_keys),
            "checks": sorted(c.name for c in graph.asset_check_keys if c.asset_key == key),
        }
    return out


def test_asset_graph_matches_snapshot(tmp_path):
    defs = build_defs(load_manifests(REPO / "releases"), REPO, local_resources(REPO, tmp_path / "store"))
    current = graph_of(defs)
    if os.environ.get("UPDATE_SNAPSHOTS"):
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(json.dumps(current, indent=2) + "\n")
    assert SNAPSHOT.exists(), f"{SNAPSHOT} is missing: generate it with {REGENERATE}, then review and commit it"
    assert current == json.loads(SNAPSHOT.read_text()), f"the asset graph changed: if intended, run {REGENERATE}"


def test_every_asset_has_owner_description_kind_and_code_version(tmp_path):
    defs = build_defs(load_manifests(REPO / "releases"), REPO, local_resources(REPO, tmp_path / "store"))
    graph = defs.get_repository_def().asset_graph
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.owners, key
        assert node.description, key
        assert node.kinds, key
        assert node.code_version, key


def test_release_units_depend_on_every_member_and_gated_assets_have_blocking_checks(tmp_path):
    defs = build_defs(load_manifests(REPO / "releases"), REPO, local_resources(REPO, tmp_path / "store"))
    graph = defs.get_repository_def().asset_graph
    unit = graph.get(dg.AssetKey(["helpdesk", "release_unit"]))
    assert {p.to_user_string() for p in unit.parent_keys} >= {
        "helpdesk/intent_model",
        "helpdesk/vision_model",
        "helpdesk/chain",
        "helpdesk/chain_evaluation",
        "helpdesk/messages_split",
        "helpdesk/digits_split",
    }
    blocking = {c for c in graph.asset_check_keys if graph.get_check_spec(c).blocking}
    assert dg.AssetCheckKey(dg.AssetKey(["helpdesk", "chain_evaluation"]), "format_valid_gate") in blocking


def test_loading_definitions_imports_no_heavy_framework():
    # A fresh interpreter: definitions must load without torch, transformers or mlflow.
    import subprocess

    code = (
        "import sys; from release_assets.definitions import defs; d = defs(); "
        "print(sorted(m for m in ('torch', 'transformers', 'mlflow', 'sklearn') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"
