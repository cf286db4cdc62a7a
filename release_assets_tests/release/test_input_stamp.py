"""Nothing to do is proven from a stamp of every input; any change, or anything the stamp cannot vouch for, runs."""

import json
from pathlib import Path

import pytest

from release_assets.manifest import load_manifests
from release_assets.release import input_stamp
from release_assets.release.input_stamp import record, stamp_path, unchanged

URI = "sqlite:///mlflow.db"


@pytest.fixture
def stamped(project: Path, tmp_path: Path):
    [iris] = [m for m in load_manifests(project / "releases") if m.name == "iris"]
    store = tmp_path / "store"
    (store / "releases" / "iris" / "v1").mkdir(parents=True)
    (store / "releases" / "iris" / "v1" / "manifest.json").write_text("{}")
    (store / "ledger").mkdir()
    (store / "ledger" / "iris.jsonl").write_text('{"seq": 1}\n')
    data = project / "data" / "extra.csv"
    data.write_text("a,b\n1,2\n")
    record(store, iris, "v1", [data, iris.source], URI)
    return iris, store, data


def test_the_same_inputs_are_unchanged(stamped):
    iris, store, _ = stamped
    assert unchanged(store, iris, URI) == "v1"


def test_an_edited_input_file_runs(stamped):
    iris, store, data = stamped
    data.write_text("a,b\n1,3\n")
    assert unchanged(store, iris, URI) is None


def test_a_deleted_input_file_runs(stamped):
    iris, store, data = stamped
    data.unlink()
    assert unchanged(store, iris, URI) is None


def test_a_manifest_change_runs(stamped):
    iris, store, _ = stamped
    changed = iris.model_copy(update={"owners": ["someone-else@example.com"]})
    assert unchanged(store, changed, URI) is None


def test_a_new_ledger_event_runs(stamped):
    """A promotion changes the champion the regression gates compare with."""
    iris, store, _ = stamped
    with (store / "ledger" / "iris.jsonl").open("a") as fh:
        fh.write('{"seq": 2}\n')
    assert unchanged(store, iris, URI) is None


def test_another_tracking_server_runs(stamped):
    iris, store, _ = stamped
    assert unchanged(store, iris, "http://127.0.0.1:5000") is None


def test_a_version_gone_from_the_store_runs(stamped):
    iris, store, _ = stamped
    (store / "releases" / "iris" / "v1" / "manifest.json").unlink()
    assert unchanged(store, iris, URI) is None


def test_a_changed_or_added_module_runs(stamped, monkeypatch, tmp_path):
    iris, store, _ = stamped
    module = tmp_path / "gate.py"
    module.write_text("x = 1\n")
    real = input_stamp.package_files()
    monkeypatch.setattr(input_stamp, "package_files", lambda: [*real, module])
    assert unchanged(store, iris, URI) is None  # added since the stamp
    record(store, iris, "v1", [], URI)
    assert unchanged(store, iris, URI) == "v1"
    module.write_text("x = 2\n")
    assert unchanged(store, iris, URI) is None


def test_a_library_upgrade_runs(stamped, monkeypatch):
    iris, store, _ = stamped
    real = input_stamp._libraries()
    monkeypatch.setattr(input_stamp, "_libraries", lambda: {**real, "torch": "99.0"})
    assert unchanged(store, iris, URI) is None


@pytest.mark.parametrize("content", ["", "not json", json.dumps({"version": "v1"}), json.dumps([1])])
def test_an_unreadable_stamp_runs(stamped, content):
    iris, store, _ = stamped
    stamp_path(store, "iris").write_text(content)
    assert unchanged(store, iris, URI) is None
