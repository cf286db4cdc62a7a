"""A model report's plots end to end: the iris release through Dagster in process draws them into the report's
evidence folder and its asset metadata, publishes them in the bundle as evidence, and the same release rebuilt
without matplotlib (its report redrawn with no plots at all) keeps its version and publishes nothing new."""

from __future__ import annotations

import base64
import shutil
import sys
import tarfile
from pathlib import Path

import dagster as dg

from release_assets.plots import render
from release_assets.release.bundle import verify_bundle
from release_assets_tests.test_release_end_to_end import materializations, run_release

PLOTS = ["confusion_matrix", "per_class_recall", "reliability"]


def test_iris_report_plots_are_evidence_in_metadata_files_and_bundle_and_never_move_the_version(
    project, tmp_path, monkeypatch
):
    store = tmp_path / "store"
    with dg.instance_for_test() as instance:
        first, summaries = run_release(project, store, instance, only=["iris"])
        assert first.success
        published = summaries["iris"]
        assert published.published_ok and published.published, published.render()
        meta = materializations(first)["iris/classifier_report"]
        report_dir = Path(meta["path"])
        assert sorted(p.stem for p in (report_dir / "plots").glob("*.png")) == sorted(PLOTS)
        for name in PLOTS:
            inline = meta[f"plot_{name}"]
            png = (report_dir / "plots" / f"{name}.png").read_bytes()
            assert inline.startswith("![") and base64.b64decode(inline.split("base64,", 1)[1][:-1]) == png
            assert len(png) < 40_000
        assert "## Plots" in (report_dir / "report.md").read_text()

        manifest = verify_bundle(Path(published.bundle))
        report = manifest["members"]["classifier_report"]
        assert {f"classifier_report/plots/{n}.png" for n in PLOTS} <= {f["path"] for f in report["files"]}
        with tarfile.open(published.bundle) as tar:
            assert "classifier_report/plots/confusion_matrix.png" in tar.getnames()
        model_files = {
            f["path"] for m in ("classifier", "dataset", "dataset_split") for f in manifest["members"][m]["files"]
        }
        assert not any("/plots/" in p for p in model_files)  # nothing drawn into what defines the version

        # Rebuild the report with no matplotlib: its files differ (no plots), its model and data do not.
        shutil.rmtree(report_dir)
        monkeypatch.setitem(sys.modules, "matplotlib", None)
        monkeypatch.setattr(render, "_said", [])
        second, again = run_release(project, store, instance, only=["iris"])
        assert second.success
        rebuilt = materializations(second)["iris/classifier_report"]
        assert rebuilt["reused"] is False and not any(k.startswith("plot_") for k in rebuilt)
        assert not (Path(rebuilt["path"]) / "plots").exists()
        assert render._said and "pip install 'release_assets[plots]'" in render._said[0]
        assert again["iris"].version == published.version
        assert again["iris"].published is False  # the same version: nothing new to publish
