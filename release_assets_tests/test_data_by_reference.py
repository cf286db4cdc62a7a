"""Data held by reference: a release unit names its big data files by sha256 and keeps them once in the release
store's data/, so a bundle (and every server, region and MLflow run that gets it) carries no training rows."""

from __future__ import annotations

import hashlib
import json
import shutil
import tarfile

from bench.support.project import make_tiny
from release_assets.artifacts import ArtifactRef, FileEntry
from release_assets.cli import main as cli
from release_assets.core.settings import get_settings
from release_assets.manifest import load_manifests
from release_assets.models.trainers import MODEL_KINDS
from release_assets.release.bundle import extract_bundle, referenced_files
from release_assets.release.publish import ByReference
from release_assets.release.store import LocalReleaseStore
from release_assets.serving.loader import load_release
from release_assets_tests.conftest import point_cli


def _ref(member: str, kind: str, sizes: dict[str, int]) -> ArtifactRef:
    files = {p: FileEntry(sha256="0" * 64, size=n) for p, n in sizes.items()}
    return ArtifactRef(release="r", member=member, kind=kind, fingerprint="f", location="x", files=files)


def test_which_files_are_held_by_reference():
    policy = ByReference(1000, lambda sha: f"data/{sha}", always=frozenset({"events"}))
    rows = {"rows.jsonl": 900, "table.json": 5000}
    split = {"train.jsonl": 600, "test.jsonl": 600, "profile.json": 9000}
    assert policy.files("big_split", _ref("big", "split", split)) == {"train.jsonl", "test.jsonl"}
    assert policy.files("small", _ref("small", "table", rows)) == set()  # 900 bytes of rows: copied
    assert policy.files("big_split", _ref("big", "table", split)) == {"train.jsonl", "test.jsonl"}
    assert policy.files("events", _ref("events", "table", {"rows.jsonl": 10})) == {"rows.jsonl"}  # `asset:`
    assert policy.files("model", _ref("model", "python_model", {"rows.jsonl": 10**6})) == set()  # never a model
    evidence = {"traces.jsonl": 5000, "report.json": 100}
    assert policy.files("chain_evaluation", _ref("chain", "chain_evaluation", evidence)) == {"traces.jsonl"}
    everything = ByReference(0, lambda sha: sha)
    assert everything.files("small", _ref("small", "table", rows)) == {"rows.jsonl"}


def _published(store_root, release: str) -> tuple[str, dict]:
    store = LocalReleaseStore(store_root)
    version = store.latest(release)
    return version, store.manifest(release, version)


def test_helpdesk_publishes_its_rows_by_reference_and_verify_serve_and_rebuild_use_them(
    cli_env, tmp_path, capsys, monkeypatch
):
    make_tiny(cli_env)
    assert cli.main(["release", "helpdesk"]) == 0, capsys.readouterr()
    capsys.readouterr()
    store_root = tmp_path / "store"
    version, manifest = _published(store_root, "helpdesk")
    held = {f["path"]: f for f in referenced_files(manifest)}
    assert {"messages/rows.jsonl", "messages_split/train.jsonl", "digits/rows.jsonl"} <= set(held)
    served_members = sorted(n for n, m in manifest["members"].items() if m["kind"] in MODEL_KINDS or n == "chain")
    assert served_members == ["chain", "intent_model", "judge", "vision_model"]
    assert not any(p.split("/", 1)[0] in served_members for p in held)  # a model's or chain's file is never held
    bundle = store_root / "releases" / "helpdesk" / version / "bundle.tar.gz"
    with tarfile.open(bundle) as tar:
        names = set(tar.getnames())
    assert not set(held) & names and "messages_split/profile.json" in names and "intent_model/model.onnx" in names
    rows = held["messages/rows.jsonl"]
    stored = store_root / "data" / "sha256" / rows["sha256"][:2] / rows["sha256"]
    assert rows["uri"] == str(stored)
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == rows["sha256"]

    # verify re-hashes the bundle, and each file it holds by reference where the store keeps it
    assert cli.main(["verify", str(bundle.parent)]) == 0
    assert "held by reference, in the release store" in capsys.readouterr().out
    # Another environment's store holds a copy of the bundle, not the data: the copy the unit names answers.
    region = tmp_path / "region"
    shutil.copytree(bundle.parent, region / "releases" / "helpdesk" / version)
    point_cli(monkeypatch, cli_env, region, tmp_path)
    assert cli.main(["verify", str(region / "releases" / "helpdesk" / version)]) == 0, capsys.readouterr().err
    point_cli(monkeypatch, cli_env, store_root, tmp_path)
    capsys.readouterr()
    stored.unlink()
    assert cli.main(["verify", str(bundle.parent)]) == 1
    err = capsys.readouterr().err
    assert f"FAILED: messages/rows.jsonl is held by reference (sha256 {rows['sha256'][:16]}...)" in err
    assert cli.main(["verify", str(bundle.parent), "--bundle-only"]) == 0
    assert "not checked: --bundle-only" in capsys.readouterr().out

    # a server extracts its models and chain only: no rows, no split, no evaluation evidence on its disk
    loaded = load_release(LocalReleaseStore(store_root), "helpdesk", version, cache_dir=tmp_path / "serving")
    assert loaded.predict({"message": "Where is my package? Order 12345"})["version"] == version
    served = tmp_path / "serving" / "helpdesk" / version / "files"
    assert sorted(p.name for p in served.iterdir() if p.is_dir()) == served_members


def test_a_model_rebuilt_from_the_data_held_by_reference_is_the_published_model(cli_env, tmp_path, monkeypatch):
    monkeypatch.setenv("RELEASE_ASSETS_DATA_BY_REFERENCE_ABOVE", "0")  # every data file, however small
    get_settings.cache_clear()
    assert cli.main(["release", "iris"]) == 0
    store = LocalReleaseStore(tmp_path / "store")
    version, manifest = _published(tmp_path / "store", "iris")
    assert {f["path"] for f in referenced_files(manifest)} >= {"dataset_split/train.jsonl"}
    bundle = tmp_path / "store" / "releases" / "iris" / version / "bundle.tar.gz"
    extract_bundle(bundle, tmp_path / "unit", fetch_data=store.fetch_data)
    assert (tmp_path / "unit" / "dataset_split" / "train.jsonl").is_file()

    [iris] = [m for m in load_manifests(cli_env / "releases") if m.name == "iris"]
    model = iris.model("classifier")
    (tmp_path / "again").mkdir()
    MODEL_KINDS[model.kind].build(model, tmp_path / "unit" / "dataset_split", tmp_path / "again", cli_env)
    published = {f["path"].split("/", 1)[1]: f["sha256"] for f in manifest["members"]["classifier"]["files"]}
    rebuilt = {p: hashlib.sha256((tmp_path / "again" / p).read_bytes()).hexdigest() for p in published}
    assert rebuilt == published, json.dumps({"published": published, "rebuilt": rebuilt}, indent=1)
