"""A release built with gates loosened from the committed manifest says so, and cannot be promoted quietly."""

import json
import subprocess
from pathlib import Path

import dagster as dg
import pytest

from release_assets.manifest import load_manifest
from release_assets.manifest.overrides import apply_overrides
from release_assets.promotion.weakened import committed_manifest, weakened_gates
from release_assets.record.ledger import PromotionError, promote
from release_assets.release.store import LocalReleaseStore
from release_assets_tests.conftest import REPO


@pytest.fixture
def iris():
    return load_manifest(REPO / "releases" / "iris.yaml")


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        ("gates.classifier.accuracy.severity=warn", "gates.classifier.accuracy.severity: block -> warn"),
        ("gates.classifier.accuracy.min=0.5", "gates.classifier.accuracy.min: 0.9 -> 0.5"),
        ("gates.classifier.p95_ms.max=500", "gates.classifier.p95_ms.max: 5.0 -> 500.0"),
        ("gates.dataset.duplicates.on_inconclusive=warn", "gates.dataset.duplicates.on_inconclusive: hold -> warn"),
        (
            "gates.dataset.drift.params={alpha: 0.0001}",
            "gates.dataset.drift.params: {'alpha': 0.01} -> {'alpha': 0.0001}",
        ),
        ("gates.classifier={accuracy: {min: 0.9}}", "gates.classifier.macro_f1: removed"),
    ],
)
def test_each_way_of_loosening_a_gate_is_named(iris, edit, expected):
    assert expected in weakened_gates(iris, apply_overrides(iris, [edit]))


@pytest.mark.parametrize(
    "edit",
    [
        "gates.classifier.accuracy.min=0.95",  # stricter
        "gates.classifier.p95_ms.max=1",  # stricter
        "members.classifier.params.C=0.0001",  # a different model: the gates still judge it
    ],
)
def test_tightening_a_gate_or_changing_a_model_is_not_weakening(iris, edit):
    assert weakened_gates(iris, apply_overrides(iris, [edit])) == []


def test_an_easier_golden_suite_counts_as_weakening():
    helpdesk = load_manifest(REPO / "releases" / "helpdesk.yaml")
    edited = apply_overrides(helpdesk, ["members.chain.golden=data/golden/easy.jsonl"])
    assert weakened_gates(helpdesk, edited) == [
        "members.chain.golden: data/golden/helpdesk.jsonl -> data/golden/easy.jsonl"
    ]


def test_the_committed_manifest_is_git_head_so_an_uncommitted_edit_counts(tmp_path):
    releases = tmp_path / "releases"
    releases.mkdir()
    path = releases / "iris.yaml"
    path.write_text((REPO / "releases" / "iris.yaml").read_text())

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "manifest")
    path.write_text(path.read_text().replace("accuracy: {min: 0.90}", "accuracy: {min: 0.50}"))
    edited = load_manifest(path)
    committed, origin = committed_manifest(edited)
    # `git HEAD`, or `git main (merge base ...)` where git names the first branch main: the same commit here.
    assert origin.startswith("git ")
    assert weakened_gates(committed, edited) == ["gates.classifier.accuracy.min: 0.9 -> 0.5"]


def test_without_git_the_file_on_disk_is_the_baseline(tmp_path):
    path = tmp_path / "iris.yaml"
    path.write_text((REPO / "releases" / "iris.yaml").read_text())
    manifest = load_manifest(path)
    committed, origin = committed_manifest(manifest)
    assert "file on disk" in origin
    assert weakened_gates(committed, apply_overrides(manifest, ["gates.classifier.accuracy.severity=warn"]))


def test_set_severity_warn_publishes_a_crippled_model_marked_weakened_that_promotion_refuses(project, tmp_path):
    from release_assets.definitions import build_defs
    from release_assets.manifest import load_manifests
    from release_assets.release.summary import summarise_run
    from release_assets_tests.conftest import local_resources

    [iris] = [m for m in load_manifests(project / "releases") if m.name == "iris"]
    crippled = apply_overrides(
        iris,
        [
            "members.classifier.params.C=0.0001",
            *(f"gates.classifier.{g}.severity=warn" for g in ("accuracy", "macro_f1", "min_class_recall", "slice_gap")),
        ],
    )
    store = tmp_path / "store"
    defs = build_defs([crippled], project, local_resources(project, store))
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("release_all").execute_in_process(instance=instance, raise_on_error=False)
    [summary] = summarise_run(result, ["iris"])
    assert summary.published_ok, summary.render()
    assert "WEAKENED gates" in summary.render()
    assert "gates.classifier.accuracy.severity: block -> warn" in summary.weakened_gates
    releases = LocalReleaseStore(store)
    manifest = json.loads((Path(summary.bundle).parent / "manifest.json").read_text())
    assert "gates.classifier.accuracy.severity: block -> warn" in manifest["weakened_gates"]
    published = [e for e in releases.events("iris") if e["action"] == "published"]
    assert published[-1]["weakened_gates"] == manifest["weakened_gates"]
    with pytest.raises(PromotionError, match="weakened from the committed manifest"):
        promote(releases, "iris", summary.version, "alice", "ship it")
    promote(releases, "iris", summary.version, "alice", "demo only", override_weakened_gates=True)
    assert releases.events("iris")[-1]["override"]["weakened_gates"] == manifest["weakened_gates"]
