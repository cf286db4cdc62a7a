"""The ``<release>/live_drift`` asset, materialized on a published champion with a split member and a trace file."""

import hashlib
import json
import tempfile
from pathlib import Path

import dagster as dg
import numpy as np
import pytest

from bench.support.bundles import PASSED
from release_assets.manifest import load_manifest
from release_assets.record.ledger import promote
from release_assets.release.bundle import member_digest, release_version, write_bundle
from release_assets.release.store import LocalReleaseStore
from release_assets.resources.artifact_store import ArtifactStore
from release_assets.rollout.drift_assets import LiveDriftConfig, live_drift_asset
from release_assets.rollout.live_drift import read_live_drift
from release_assets_tests.conftest import REPO

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Evidently's UI dependencies, on import


def _rows(seed: int, n: int, shift: float = 0.0) -> list[dict]:
    rng = np.random.default_rng(seed)
    x = rng.normal([5.8, 3.0, 3.7, 1.2], [0.8, 0.4, 1.7, 0.7], size=(n, 4)) + shift
    return [{"id": f"r{i}", "features": x[i].round(2).tolist(), "label": "setosa"} for i in range(n)]


def _publish_split(
    store: LocalReleaseStore, release: str, sides: dict[str, list[dict]], by_reference: bool = False
) -> str:
    """A release unit whose one member is ``dataset_split`` (as the real pipeline bundles a dataset's split);
    ``by_reference``: its rows held in the store's data/, not in the bundle (publish.ByReference)."""
    with tempfile.TemporaryDirectory() as tmp:
        entries, files, data = {}, [], {}
        for side, rows in sides.items():
            path = Path(tmp) / f"{side}.jsonl"
            path.write_text("".join(json.dumps(r) + "\n" for r in rows))
            sha = hashlib.sha256(path.read_bytes()).hexdigest()
            entry = {"path": f"dataset_split/{side}.jsonl", "sha256": sha, "size": path.stat().st_size}
            if by_reference:
                data[sha] = path
                entry.update(stored="reference", uri=store.data_uri(sha))
            else:
                entries[f"dataset_split/{side}.jsonl"] = path
            files.append(entry)
        digest = member_digest({f["path"].split("/", 1)[1]: f["sha256"] for f in files})
        members = {"dataset_split": {"kind": "dataset", "role": "artifact", "digest": digest, "files": files}}
        version = release_version(members)
        manifest = {
            "release": release,
            "version": version,
            "members": members,
            "gates": PASSED,
            "lineage": {"fingerprints": {}},  # no build cache entry: the view extracts the verified bundle
        }
        write_bundle(entries, manifest, Path(tmp) / "bundle.tar.gz")
        store.publish(release, version, Path(tmp) / "bundle.tar.gz", manifest, data=data)
    return version


def _trace(path: Path, rows: list[dict], version: str) -> None:
    spans = []
    for i, row in enumerate(rows):
        meta = {"release": "iris", "version": version, "variant": "champion", "request_id": f"q{i}"}
        attrs = {"metadata": json.dumps(meta), "input.value": json.dumps({"features": row["features"]})}
        spans.append({"name": "iris request", "parent_id": None, "start_time": f"t{i:03d}", "attributes": attrs})
    path.write_text("".join(json.dumps(s) + "\n" for s in spans))


@pytest.mark.parametrize("by_reference", [False, True], ids=["bundled", "by_reference"])
def test_live_drift_materializes_the_verdict_the_canary_reads(tmp_path, by_reference):
    root = tmp_path / "store"
    store = LocalReleaseStore(root)
    version = _publish_split(store, "iris", {"train": _rows(1, 150), "test": _rows(2, 50)}, by_reference)
    promote(store, "iris", version, "alice", "first")
    trace = tmp_path / "serve.jsonl"
    _trace(trace, _rows(3, 60, shift=1.5), version)
    asset = live_drift_asset(load_manifest(REPO / "releases" / "iris.yaml"), REPO)

    result = dg.materialize(
        [asset],
        resources={"store": ArtifactStore(root=str(root))},
        run_config=dg.RunConfig({"iris__live_drift": LiveDriftConfig(traces=str(trace))}),
    )
    assert result.success
    [event] = result.get_asset_materialization_events()
    meta = event.materialization.metadata
    assert meta["verdict"].value == "drifted" and meta["version"].value == version
    assert meta["reference_rows"].value == 200 and meta["live_rows"].value == 60
    assert "| features[0] | ks |" in meta["features"].value
    assert Path(meta["report"].value).name == "report.html" and Path(meta["report"].value).exists()
    saved = read_live_drift(root, "iris", version)
    assert saved["verdict"] == "drifted" and saved["live_from"] == "t000" and saved["live_to"] == "t059"
