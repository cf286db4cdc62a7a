"""The release unit's decision as plain Python: no Dagster, a fake registry, artifacts built in a temp cache."""

import json

import pytest

from release_assets import keys
from release_assets.artifacts import LocalArtifactStore
from release_assets.manifest import parse_manifest
from release_assets.release.bundle import verify_bundle
from release_assets.release.store import LocalReleaseStore
from release_assets.release.unit import HeldBack, release


class FakeRegistry:
    def __init__(self):
        self.versions, self.aliases = {}, {}

    def has_version(self, release, version):
        return (release, version) in self.versions

    def release_run(self, release, version):
        return self.versions[(release, version)]

    def log_release_unit(self, release, manifest, bundle, run_id):
        self.versions[(release, manifest["version"])] = f"mlflow-{len(self.versions)}"
        return self.versions[(release, manifest["version"])]

    def mirror(self, release, aliases):
        self.aliases[release] = aliases


def _manifest(accuracy_min: float):
    return parse_manifest(
        {
            "name": "tiny",
            "members": {
                "data": {"kind": "sklearn_dataset", "name": "iris", "split": {"test": 0.3}},
                "clf": {"kind": "tabular_classifier", "data": "data"},
            },
            "gates": {"clf": {"accuracy": {"min": accuracy_min}}},
        },
        "tiny.yaml",
    )


def _refs(cache: LocalArtifactStore, manifest, accuracy: float):
    refs = {}
    for name in keys.bundled(manifest):

        def build(out, name=name):
            (out / "content.json").write_text(json.dumps({"member": name}))
            return {"metrics": {"accuracy": accuracy}} if name == "clf_report" else {}

        refs[name], _ = cache.build(release="tiny", member=name, kind="x", fingerprint=f"{name}-1", builder=build)
    return refs, {tuple(key): refs[name] for name, key in keys.bundled(manifest).items()}


def test_publishes_records_and_mirrors_then_is_idempotent(tmp_path):
    cache, releases, registry = LocalArtifactStore(tmp_path), LocalReleaseStore(tmp_path), FakeRegistry()
    manifest = _manifest(0.9)
    refs, by_key = _refs(cache, manifest, accuracy=0.95)
    args = {"cache": cache, "releases": releases, "registry": registry, "lineage": {"git": None}, "run_id": "r1"}
    unit = release(manifest, refs, by_key, **args)
    assert unit.published and verify_bundle(unit.bundle)["version"] == unit.version
    assert [v.status for v in unit.verdicts] == ["passed"]
    assert [e["action"] for e in releases.events("tiny")] == ["published"]
    assert registry.aliases["tiny"] == {"candidate": unit.version, "champion": None, "canary": None}
    again = release(manifest, refs, by_key, **{**args, "run_id": "r2"})
    assert (again.version, again.published, again.mlflow_run_id) == (unit.version, False, unit.mlflow_run_id)
    assert len(releases.events("tiny")) == 1  # nothing recorded twice


def test_a_failing_gate_raises_held_back_and_publishes_nothing(tmp_path):
    cache, releases = LocalArtifactStore(tmp_path), LocalReleaseStore(tmp_path)
    manifest = _manifest(0.9)
    refs, by_key = _refs(cache, manifest, accuracy=0.5)
    with pytest.raises(HeldBack, match=r"tiny: held back by 1 gate\(s\): clf\.accuracy: accuracy = 0\.5 violates"):
        release(manifest, refs, by_key, cache=cache, releases=releases, registry=FakeRegistry(), lineage={}, run_id="r")
    assert releases.versions("tiny") == [] and releases.events("tiny") == []
