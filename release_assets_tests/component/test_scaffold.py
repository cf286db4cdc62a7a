"""The scaffolded release loads as written, and the platform it needs is written once per project."""

from __future__ import annotations

import yaml

from release_assets.component.scaffold import PLATFORM_TYPE, release_name, write_release
from release_assets.manifest import load_manifests


def test_a_scaffolded_release_is_a_valid_manifest_with_dataset_model_and_gates(tmp_path):
    defs = tmp_path / "defs"
    written = write_release(defs / "churn-model", "release_assets.ReleaseComponent", owner="ana@example.com")

    assert written == [defs / "churn-model" / "defs.yaml", defs / "release_platform" / "defs.yaml"]
    document = yaml.safe_load(written[0].read_text())
    assert document["type"] == "release_assets.ReleaseComponent"
    [manifest] = load_manifests(defs, tmp_path)  # the platform's defs.yaml is not read as a release
    assert manifest.name == "churn_model"
    assert manifest.owners == ["ana@example.com"]
    assert {m.kind for m in manifest.members.values()} == {"sklearn_dataset", "tabular_classifier"}
    assert set(manifest.gates) == {"dataset", "classifier"}
    assert yaml.safe_load(written[1].read_text()) == {"type": PLATFORM_TYPE}


def test_a_second_release_reuses_the_platform(tmp_path):
    defs = tmp_path / "defs"
    write_release(defs / "first", "release_assets.ReleaseComponent")
    written = write_release(defs / "second", "release_assets.ReleaseComponent")
    assert written == [defs / "second" / "defs.yaml"]
    assert [m.name for m in load_manifests(defs, tmp_path)] == ["first", "second"]


def test_release_names_from_folder_names():
    assert release_name("Churn-Model") == "churn_model"
    assert release_name("2024_q1") == "release_2024_q1"
