"""The release unit's decision as plain Python (no Dagster, no MLflow, artifacts built in a temp cache), and the
registry sync that follows it, against a fake registry."""

import json

import pytest

from release_assets import keys
from release_assets.artifacts import LocalArtifactStore
from release_assets.manifest import parse_manifest
from release_assets.release.bundle import verify_bundle
from release_assets.release.registry_sync import register_published
from release_assets.release.store import LocalReleaseStore
from release_assets.release.unit import HeldBack, release
from release_assets.rollout.aliases import mirror_aliases


class FakeRegistry:
    """What the sync needs of ``resources.registry.Registry``: versions by release version, models by digest."""

    def __init__(self, tmp_path):
        self.tracking_uri = f"sqlite:///{tmp_path / 'fake.db'}"
        self.versions, self.aliases, self.models, self.logged = {}, {}, {}, []

    def has_version(self, release, version):
        return (release, version) in self.versions

    def log_release_unit(self, release, manifest, bundle, run_id, models=None, files=None):
        self.logged.append((release, manifest["version"], run_id, sorted(p.name for p in bundle.parent.iterdir())))
        registered = []
        for member, folder in sorted((models or {}).items()):
            assert (folder / "content.json").exists()  # the member's files, extracted from the verified bundle
            digest = manifest["members"][member]["digest"]
            if digest not in self.models.setdefault(f"{release}.{member}", []):
                self.models[f"{release}.{member}"].append(digest)
                registered.append(f"{release}.{member} v{len(self.models[f'{release}.{member}'])}")
        run_id = f"mlflow-{len(self.versions)}"
        self.versions[(release, manifest["version"])] = run_id
        return run_id, registered, []

    def mirror(self, release, aliases):
        assert all(v is None or self.has_version(release, v) for v in aliases.values()), "alias to an unregistered"
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

        kind = "tabular_classifier" if name == "clf" else "x"
        refs[name], _ = cache.build(release="tiny", member=name, kind=kind, fingerprint=f"{name}-1", builder=build)
    return refs, {tuple(key): refs[name] for name, key in keys.bundled(manifest).items()}


def test_publishes_and_records_then_is_idempotent(tmp_path):
    cache, releases = LocalArtifactStore(tmp_path), LocalReleaseStore(tmp_path)
    manifest = _manifest(0.9)
    refs, by_key = _refs(cache, manifest, accuracy=0.95)
    args = {"cache": cache, "releases": releases, "lineage": {"git": None}, "run_id": "r1"}
    unit = release(manifest, refs, by_key, **args)
    assert unit.published and verify_bundle(unit.bundle)["version"] == unit.version
    assert [v.status for v in unit.verdicts] == ["passed"]
    assert [e["action"] for e in releases.events("tiny")] == ["published"]
    again = release(manifest, refs, by_key, **{**args, "run_id": "r2"})
    assert (again.version, again.published) == (unit.version, False)
    assert len(releases.events("tiny")) == 1  # nothing recorded twice


def _two_versions(tmp_path):
    """Two published versions of `tiny`: the second changed the data, not the model."""
    cache, releases = LocalArtifactStore(tmp_path), LocalReleaseStore(tmp_path)
    manifest = _manifest(0.9)
    refs, by_key = _refs(cache, manifest, accuracy=0.95)
    first = release(manifest, refs, by_key, cache=cache, releases=releases, lineage=_built_by("run-1"), run_id="1")
    refs["data"], _ = cache.build(release="tiny", member="data", kind="x", fingerprint="data-2", builder=_other_data)
    by_key = {tuple(key): refs[name] for name, key in keys.bundled(manifest).items()}
    second = release(manifest, refs, by_key, cache=cache, releases=releases, lineage=_built_by("run-2"), run_id="2")
    assert second.version != first.version
    return releases, first.version, second.version


def test_the_registry_sync_registers_what_the_ledger_published_once(tmp_path):
    releases, first, second = _two_versions(tmp_path)
    registry = FakeRegistry(tmp_path)
    synced = register_published(releases, registry, "tiny")
    assert [(d.version, d.models) for d in synced.registered] == [(first, ["tiny.clf v1"]), (second, [])]
    assert synced.failed == {}
    assert [d.models_text() for d in synced.registered] == [
        "tiny.clf v1",
        "none new (the same digests were registered before)",
    ]
    assert [(r, v, run) for r, v, run, _ in registry.logged] == [("tiny", first, "run-1"), ("tiny", second, "run-2")]
    assert register_published(releases, registry, "tiny").registered == []  # idempotent: nothing logged twice
    assert len(registry.logged) == 2
    mirror_aliases(releases, registry, "tiny")
    assert registry.aliases["tiny"] == {"candidate": second, "champion": None, "canary": None}


def test_a_corrupt_old_bundle_is_named_and_does_not_keep_the_rest_out(tmp_path):
    releases, first, second = _two_versions(tmp_path)
    bundle = tmp_path / "releases" / "tiny" / first / "bundle.tar.gz"
    bundle.write_bytes(bundle.read_bytes()[:-200])  # truncated
    registry = FakeRegistry(tmp_path)
    synced = register_published(releases, registry, "tiny")
    assert [d.version for d in synced.registered] == [second]
    assert list(synced.failed) == [first] and "bundle" in synced.failed[first]
    assert not registry.has_version("tiny", first)


def test_a_move_before_any_sync_registers_first(tmp_path):
    """A promotion may come before the sensor's sync: mirroring registers the version before pointing at it."""
    cache, releases, registry = LocalArtifactStore(tmp_path), LocalReleaseStore(tmp_path), FakeRegistry(tmp_path)
    manifest = _manifest(0.9)
    refs, by_key = _refs(cache, manifest, accuracy=0.95)
    unit = release(manifest, refs, by_key, cache=cache, releases=releases, lineage={}, run_id="r1")
    assert registry.versions == {}
    mirror_aliases(releases, registry, "tiny")
    assert registry.has_version("tiny", unit.version) and registry.aliases["tiny"]["candidate"] == unit.version


def _built_by(dagster_run_id):
    return {"dagster_run_id": dagster_run_id}


def _other_data(out):
    (out / "content.json").write_text(json.dumps({"member": "data", "rows": 2}))
    return {}


def test_a_failing_gate_raises_held_back_and_publishes_nothing(tmp_path):
    cache, releases = LocalArtifactStore(tmp_path), LocalReleaseStore(tmp_path)
    manifest = _manifest(0.9)
    refs, by_key = _refs(cache, manifest, accuracy=0.5)
    with pytest.raises(HeldBack, match=r"tiny: held back by 1 gate\(s\): clf\.accuracy: accuracy = 0\.5 violates"):
        release(manifest, refs, by_key, cache=cache, releases=releases, lineage={}, run_id="r")
    assert releases.versions("tiny") == [] and releases.events("tiny") == []
