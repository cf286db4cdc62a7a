"""ReleaseComponent in a `dg` project's defs/ folder: the same graph as this repository's, shared definitions once,
paths relative to each release's folder, errors that name the defs.yaml file and line."""

from __future__ import annotations

import json
import re
import sys

import dagster as dg
import pytest
import yaml

from release_assets.component.component import ReleaseComponent, ReleasePlatformComponent
from release_assets.core.settings import Settings
from release_assets.manifest import ManifestError, ReleaseManifest, load_each, load_manifests
from release_assets_tests.component.projects import FAQ, REPO, write_faq_release, write_project
from release_assets_tests.test_asset_graph import SNAPSHOT, graph_of

PLATFORM = {"type": "release_assets.ReleasePlatformComponent"}


@pytest.fixture
def project(tmp_path, monkeypatch):
    """An empty dg project, importable (as `pip install -e .` would make it), with its own store and MLflow."""
    package = re.sub(r"\W", "_", f"p_{tmp_path.name}")
    defs = write_project(tmp_path, package)
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    for var in ("RELEASE_ASSETS_PROJECT_ROOT", "RELEASE_ASSETS_STORE_ROOT", "RELEASE_ASSETS_RELEASES_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("RELEASE_ASSETS_MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    yield tmp_path, defs
    for name in [m for m in sys.modules if m == package or m.startswith(f"{package}.")]:
        del sys.modules[name]


def _declare(folder, document):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "defs.yaml").write_text(yaml.safe_dump(document, sort_keys=False))


def test_the_repository_releases_as_defs_yaml_build_the_snapshot_graph(project):
    # Each releases/<name>.yaml as a dg project declares it: defs/<name>/defs.yaml, its files beside it.
    root, defs = project
    for path in sorted((REPO / "releases").glob("*.yaml")):
        folder = defs / path.stem
        _declare(folder, {"type": "release_assets.ReleaseComponent", "attributes": yaml.safe_load(path.read_text())})
        for shared in ("data", "prompts"):
            (folder / shared).symlink_to(REPO / shared)
    _declare(defs / "platform", PLATFORM)

    loaded = dg.load_from_defs_folder(path_within_project=root)

    assert graph_of(loaded) == json.loads(SNAPSHOT.read_text())
    repo = loaded.get_repository_def()
    shared = {"release_all", "promote_release", "rollback_release", "start_canary", "abort_canary"}
    assert shared <= {j.name for j in repo.get_all_jobs()}
    assert {"iris_release", "helpdesk_release", "kbqa_release"} <= {j.name for j in repo.get_all_jobs()}
    assert {"code_change_sensor", "failed_gate_sensor", "canary_monitor"} <= {s.name for s in repo.sensor_defs}
    # The store and MLflow belong to the project dg loads, not to this repository.
    store = loaded.resources["store"]
    assert store.root == str(root / ".release_store")


def test_paths_are_relative_to_the_defs_yaml_folder_and_the_cli_finds_the_releases(project, monkeypatch):
    root, defs = project
    defs_yaml = write_faq_release(defs)
    _declare(defs / "platform", PLATFORM)
    loaded = dg.load_from_defs_folder(path_within_project=root)
    assert "faq/chain_evaluation" in graph_of(loaded)

    monkeypatch.chdir(defs_yaml.parent)  # anywhere inside the project
    settings = Settings()
    assert settings.project_root == root
    assert settings.releases_path == defs  # no releases/ folder: the dg project's defs folder
    manifests, errors = load_each(settings.releases_path, settings.project_root)
    assert errors == []
    assert [(m.name, m.source) for m in manifests] == [("faq", defs_yaml)]  # the platform's defs.yaml is not one


def test_the_component_schema_is_the_manifest_schema():
    component = set(ReleaseComponent.model_fields)
    assert component == set(ReleaseManifest.model_fields) - {"source"}
    for name in component:
        assert repr(ReleaseComponent.model_fields[name].annotation) == repr(
            ReleaseManifest.model_fields[name].annotation
        )
        assert ReleaseComponent.model_fields[name].default == ReleaseManifest.model_fields[name].default


def _error_text(exc: BaseException | None) -> str:
    """Every message down the exception chain: dagster wraps a component's error in its tree's."""
    out = []
    while exc is not None and len(out) < 20:
        out.append(f"{type(exc).__name__}: {exc}")
        exc = exc.__cause__ or exc.__context__
    return "\n".join(out)


def test_a_manifest_error_in_defs_yaml_names_the_file_and_line(project):
    root, defs = project
    manifest = json.loads(json.dumps(FAQ))
    manifest["gates"]["chain"]["acuracy"] = {"min": 0.5}
    defs_yaml = write_faq_release(defs, manifest)
    _declare(defs / "platform", PLATFORM)
    line = next(i for i, text in enumerate(defs_yaml.read_text().splitlines(), 1) if "acuracy" in text)

    with pytest.raises(Exception) as info:
        dg.load_from_defs_folder(path_within_project=root)

    assert f"{defs_yaml}:{line}: attributes.gates.chain.acuracy: unknown gate" in _error_text(info.value)
    # The CLI (release-assets validate) reads the same file the same way.
    _, errors = load_each(defs, root)
    assert errors and errors[0].startswith(f"{defs_yaml}:{line}: attributes.gates.chain.acuracy: unknown gate")


def test_a_missing_file_names_the_line_of_its_field(project):
    root, defs = project
    manifest = json.loads(json.dumps(FAQ))
    manifest["members"]["chain"]["golden"] = "data/no_such.jsonl"
    defs_yaml = write_faq_release(defs, manifest)
    line = next(i for i, text in enumerate(defs_yaml.read_text().splitlines(), 1) if "no_such" in text)
    with pytest.raises(ManifestError, match=re.escape(f"{defs_yaml}:{line}: attributes.members.chain.golden: ")):
        load_manifests(defs, root)


def test_releases_need_the_platform_once(project):
    root, defs = project
    write_faq_release(defs)
    with pytest.raises(Exception, match="store"):  # no platform: the resources the assets need are missing
        dg.load_from_defs_folder(path_within_project=root).get_repository_def()

    _declare(defs / "platform", PLATFORM)
    _declare(defs / "platform_again", PLATFORM)
    with pytest.raises(Exception) as info:
        dg.load_from_defs_folder(path_within_project=root).get_repository_def()
    assert "different resources with same key 'store'" in _error_text(info.value)


def test_the_platform_refuses_a_project_without_releases(project):
    root, defs = project
    _declare(defs / "platform", PLATFORM)
    with pytest.raises(Exception) as info:
        dg.load_from_defs_folder(path_within_project=root)
    assert "declares no ReleaseComponent" in _error_text(info.value)
    assert ReleasePlatformComponent.__doc__


def test_a_defs_yaml_is_read_as_its_manifest_by_the_sensor_and_the_weakened_gate_check(tmp_path):
    from release_assets.manifest import load_manifest
    from release_assets.promotion.weakened import committed_manifest, weakened_gates
    from release_assets.sensors import detect_changes

    defs_yaml = write_faq_release(tmp_path / "defs")
    manifest = load_manifest(defs_yaml)  # named faq in a folder of any name: no name/file check for defs.yaml
    assert manifest.name == "faq" and manifest.source == defs_yaml

    _, cursor, _, problems = detect_changes({"faq": defs_yaml}, {}, {})
    assert problems == [] and set(cursor["sections"]["faq"]) == {"chain"}
    document = yaml.safe_load(defs_yaml.read_text())
    document["attributes"]["members"]["chain"]["repeats"] = 2
    defs_yaml.write_text(yaml.safe_dump(document, sort_keys=False))
    _, _, reasons, problems = detect_changes({"faq": defs_yaml}, {}, cursor)
    assert problems == [] and reasons[-1] == "faq.yaml: members.chain"

    committed, origin = committed_manifest(manifest)  # not in git here: the file on disk
    assert committed is not None and "on disk" in origin
    loosened = manifest.model_copy(update={"gates": {"chain": {**manifest.gates["chain"]}}})
    loosened.gates["chain"].pop("p95_ms")
    # The file on disk now asks for 2 repeats, the manifest loaded before it for 1: fewer repeats weaken too.
    assert sorted(weakened_gates(committed, loosened)) == [
        "gates.chain.p95_ms: removed",
        "members.chain.repeats: 2 -> 1",
    ]
