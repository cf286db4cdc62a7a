"""Member kinds are plugins (#25): a third-party package adds a kind with one entry point, and it is validated, built
and released like a built-in. The plugin is ``fixtures/plugin_kind`` (the dataset kind ``inline_points``, its rows
written in the manifest), installed with pip into a temporary ``--target`` folder.

``installed_kinds()`` is read once per process, and this test process must never see the plugin: everything that
needs it (or a broken plugin) runs in a subprocess with that folder on its PYTHONPATH. Every subprocess has a
timeout (the constants below), so the whole file is bounded: 10-20 s on a quiet machine, far under its budget.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from release_assets.manifest import ManifestError, load_manifest, parse_manifest
from release_assets_tests.conftest import REPO

FIXTURE = REPO / "release_assets_tests" / "fixtures" / "plugin_kind"
PIP_TIMEOUT_S = 120
PYTHON_TIMEOUT_S = 60  # parsing a manifest, building a data set by hand
RELEASE_TIMEOUT_S = 180  # one whole release of 40 rows and a logistic regression (~8 s alone)
BUILTINS = {"sklearn_dataset", "jsonl_dataset", "table", "tabular_classifier", "prompt_chain"}


# ------------------------------------------------------------------------------------------------ helpers


def _points(n_per_class: int = 20) -> list[dict]:
    """Two classes far apart on both features: any working linear classifier separates them perfectly."""
    out = []
    for i in range(n_per_class):
        dx, dy = round((i % 5) * 0.25, 2), round((i // 5) * 0.3, 2)
        out.append({"features": [dx, dy], "label": "low"})
        out.append({"features": [6.0 + dx, 6.0 + dy], "label": "high"})
    return out


def _manifest(points: list[dict] | None = None) -> dict:
    return {
        "name": "points",
        "description": "A release whose data set is a plugin kind.",
        "owners": ["ml@example.com"],
        "members": {
            "points_data": {"kind": "inline_points", "points": points or _points(), "split": {"test": 0.3, "seed": 0}},
            "classifier": {"kind": "tabular_classifier", "data": "points_data", "params": {"C": 1.0, "max_iter": 200}},
        },
        "gates": {
            "points_data": {"invalid_rows": {"max": 0}, "leakage": {"max": 0}, "label_coverage": {"min": 2}},
            "classifier": {"accuracy": {"min": 0.8}},
        },
    }


def _env(pythonpath: Path | None, **extra: str) -> dict[str, str]:
    """This process's environment, with ``pythonpath`` (a --target folder) first on PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELEASE_ASSETS_")}
    paths = [str(pythonpath)] if pythonpath else []
    if os.environ.get("PYTHONPATH"):
        paths.append(os.environ["PYTHONPATH"])
    env.pop("PYTHONPATH", None)
    if paths:
        env["PYTHONPATH"] = os.pathsep.join(paths)
    return {**env, **extra}


def _python(code: str, pythonpath: Path | None, cwd: Path, *args: str) -> dict:
    """Run ``code`` in a fresh interpreter; it prints one JSON object as its last line of standard output."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        env=_env(pythonpath),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=PYTHON_TIMEOUT_S,
    )
    assert done.returncode == 0, f"subprocess failed ({done.returncode}):\n{done.stdout}\n{done.stderr[-4000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def _cli(*args: str, pythonpath: Path | None, tmp: Path, project: Path) -> subprocess.CompletedProcess:
    """``python -m release_assets.cli.main ...`` as the end-to-end CLI tests run it (release/test_concurrent_runs):
    a throwaway project, store, MLflow and Dagster instance."""
    env = _env(
        pythonpath,
        RELEASE_ASSETS_PROJECT_ROOT=str(project),
        RELEASE_ASSETS_STORE_ROOT=str(tmp / "store"),
        RELEASE_ASSETS_MLFLOW_TRACKING_URI=f"sqlite:///{tmp / 'mlflow.db'}",
        RELEASE_ASSETS_MLFLOW_ARTIFACT_ROOT=str(tmp / "mlartifacts"),
        DAGSTER_HOME=str(tmp / "home"),
    )
    return subprocess.run(
        [sys.executable, "-m", "release_assets.cli.main", *args],
        env=env,
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=RELEASE_TIMEOUT_S,
    )


def _project(root: Path, manifest: dict) -> Path:
    (root / "releases").mkdir(parents=True)
    (root / "releases" / f"{manifest['name']}.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return root


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory) -> Path:
    """The plugin installed (offline, no dependencies) into a folder of its own. Built from a copy, so setuptools'
    build/ and egg-info never land in the source tree."""
    tmp = tmp_path_factory.mktemp("plugin_kind")
    source = tmp / "src"
    shutil.copytree(FIXTURE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = tmp / "site"
    done = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--no-build-isolation"),
            *("--no-cache-dir", "--disable-pip-version-check", "--target", str(target), str(source)),
        ],
        env=_env(None),
        capture_output=True,
        text=True,
        timeout=PIP_TIMEOUT_S,
    )
    assert done.returncode == 0, f"pip could not install the fixture plugin:\n{done.stdout}\n{done.stderr}"
    entry_points = next(target.glob("ra_inline_points-*.dist-info")) / "entry_points.txt"
    assert "inline_points = ra_inline_points.kind:INLINE_POINTS" in entry_points.read_text()
    return target


# ------------------------------------------------------------------- 1. the plugin is found and validated


PARSE = """
    import json, sys
    from release_assets.datasets.build import DatasetRuntime
    from release_assets.manifest import DatasetConfig, ManifestError, installed_kinds, parse_manifest

    kinds = installed_kinds()
    manifest = parse_manifest(json.loads(sys.argv[1]), "points.yaml")
    data = manifest.members["points_data"]
    loaded_before_build = "ra_inline_points.runtime" in sys.modules
    try:
        parse_manifest(json.loads(sys.argv[2]), "bad.yaml")
        bad = None
    except ManifestError as exc:
        bad = str(exc)
    print(json.dumps({
        "kinds": list(kinds),
        "family": kinds["inline_points"].family,
        "gates": sorted(kinds["inline_points"].gates),
        "config": f"{type(data).__module__}.{type(data).__qualname__}",
        "is_dataset": isinstance(data, DatasetConfig),
        "points": len(data.points),
        "split": data.split.model_dump(),
        "task": manifest.task_of("classifier"),
        "order": manifest.topological_order(),
        "gated": sorted(manifest.gates),
        "runtime_loaded_by_parsing": loaded_before_build,
        "runtime_is_dataset_runtime": isinstance(kinds["inline_points"].load_runtime(), DatasetRuntime),
        "bad": bad,
    }))
"""


def test_installed_plugin_kind_sits_beside_the_builtins_and_validates_its_entries(plugin_path, tmp_path):
    bad = _manifest()
    bad["members"]["points_data"]["points"][3] = {"features": [1.0, 2.0], "labl": "a"}
    out = _python(PARSE, plugin_path, tmp_path, json.dumps(_manifest()), json.dumps(bad))

    assert "inline_points" in out["kinds"] and set(out["kinds"]) >= BUILTINS, out["kinds"]
    assert out["family"] == "dataset" and {"invalid_rows", "leakage", "drift"} <= set(out["gates"])
    assert out["config"] == "ra_inline_points.kind.InlinePoints" and out["is_dataset"]
    assert out["points"] == 40 and out["split"] == {"test": 0.3, "val": 0.0, "seed": 0}
    assert out["task"] == "multiclass"  # DatasetConfig's default, which a tabular_classifier learns
    assert out["order"] == ["points_data", "classifier"] and out["gated"] == ["classifier", "points_data"]
    # Loading a manifest imports the kind's declaration only; its build code is imported when it is built.
    assert not out["runtime_loaded_by_parsing"] and out["runtime_is_dataset_runtime"]
    # The plugin's own model checks its entries, and the error names the field as for a built-in kind.
    assert out["bad"].startswith("bad.yaml: "), out["bad"]
    assert "members.points_data.points.3.label" in out["bad"] and "members.points_data.points.3.labl" in out["bad"]


BUILD = """
    import json, sys
    from pathlib import Path
    from release_assets.datasets import build
    from release_assets.manifest import member_kind, parse_manifest

    manifest = parse_manifest(json.loads(sys.argv[1]), "points.yaml")
    member = manifest.dataset("points_data")
    runtime = member_kind(member.kind).load_runtime()
    raw, split = Path("raw"), Path("split")
    raw.mkdir(); split.mkdir()
    summary = runtime.build_raw(member, Path.cwd(), raw)
    sides = runtime.build_split(member, raw, split)
    iris = parse_manifest(json.loads(sys.argv[2]), "iris.yaml").dataset("d")
    builtin = build.BUILTIN.build_raw(iris, Path.cwd(), Path("."))
    print(json.dumps({
        "summary": summary,
        "sides": sides,
        "rows": build.read_jsonl(raw / build.ROWS_FILE),
        "split": {s: build.read_jsonl(split / f"{s}.jsonl") for s in sides["rows"]},
        "split_files": sorted(p.name for p in split.iterdir()),
        "builtin_keys": sorted(builtin), "builtin_metrics": sorted(builtin["metrics"]),
        "source_files": [str(p) for p in runtime.source_files(member, Path.cwd())],
        "modules": list(runtime.modules),
    }))
"""


def test_plugin_runtime_builds_rows_and_a_split_shaped_like_a_builtin_dataset(plugin_path, tmp_path):
    points = _points()
    points[5] = {"features": [1.0, 2.0, 3.0], "label": "high"}  # one feature too many: listed, not kept
    iris = {
        "name": "iris",
        "members": {"d": {"kind": "sklearn_dataset", "name": "iris", "split": {"test": 0.3}}},
    }
    out = _python(BUILD, plugin_path, tmp_path, json.dumps(_manifest(points)), json.dumps(iris))

    summary = out["summary"]
    assert sorted(summary) == out["builtin_keys"] and sorted(summary["metrics"]) == out["builtin_metrics"]
    assert summary["metrics"] == {"rows": 39, "invalid_rows": 1}
    assert summary["labels"] == {"high": 19, "low": 20}
    assert summary["examples"] == [{"line": 6, "id": "pt-006", "field": "features", "error": "3 features, not 2"}]
    rows = out["rows"]
    assert len(rows) == 39 and all(sorted(r) == ["features", "group", "id", "label"] for r in rows)
    assert all(len(r["features"]) == 2 and all(isinstance(x, float) for x in r["features"]) for r in rows)
    # The split is release_assets' own (build.build_split with the manifest's SplitSpec): all rows, no group twice.
    assert out["split_files"] == ["profile.json", "test.jsonl", "train.jsonl"]
    assert sum(out["sides"]["rows"].values()) == 39 and set(out["sides"]["rows"]) == {"train", "test"}
    train, test = ({r["group"] for r in out["split"][s]} for s in ("train", "test"))
    assert not train & test and all(set(labels) == {"high", "low"} for labels in out["sides"]["labels"].values())
    assert out["source_files"] == [] and out["modules"] == ["ra_inline_points.runtime"]


# --------------------------------------------------------------------------- 2. released end to end


def _published(out: str) -> str | None:
    status = re.search(r"^== points: (.*)$", out, re.M)
    version = re.search(r"^\s+version: ([0-9a-f]{16})$", out, re.M)
    return version.group(1) if status and status.group(1) == "published" and version else None


def test_a_release_of_a_plugin_dataset_publishes_through_the_cli(plugin_path, tmp_path):
    project = _project(tmp_path / "project", _manifest())
    done = _cli("release", "points", pythonpath=plugin_path, tmp=tmp_path, project=project)
    output = f"exit {done.returncode}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr[-4000:]}"
    assert done.returncode == 0, output
    version = _published(done.stdout)
    assert version, output
    assert "4/4 passed" in done.stdout and "[FAIL]" not in done.stdout, output

    unit = tmp_path / "store" / "releases" / "points" / version
    stored = json.loads((unit / "manifest.json").read_text())
    assert stored["release"] == "points" and stored["version"] == version
    assert stored["members"]["points_data"]["kind"] == "inline_points"
    assert stored["members"]["points_data"]["metrics"] == {"rows": 40, "invalid_rows": 0}
    assert stored["members"]["classifier_report"]["metrics"]["accuracy"] == 1.0
    assert json.loads((unit.parent / "latest.json").read_text())["version"] == version

    verified = _cli("verify", str(unit / "bundle.tar.gz"), pythonpath=plugin_path, tmp=tmp_path, project=project)
    assert verified.returncode == 0 and f"OK: points {version}" in verified.stdout, verified.stdout + verified.stderr


# ------------------------------------------------------------------- 3. the kind without its plugin


def test_without_the_plugin_its_kind_is_unknown_and_the_installed_kinds_are_listed(tmp_path):
    # This process never has the plugin on its path (the tests above install it in subprocesses only).
    with pytest.raises(ManifestError) as caught:
        parse_manifest(_manifest(), "points.yaml")
    message = str(caught.value)
    assert message.startswith("points.yaml: members.points_data.kind: unknown kind 'inline_points'"), message
    listed = re.search(r"\(installed kinds: (.*)\)$", message)
    assert listed and set(listed.group(1).split(", ")) >= BUILTINS, message
    assert "inline_points" not in listed.group(1)

    project = _project(tmp_path / "project", _manifest())
    with pytest.raises(ManifestError, match=r"points\.yaml: members\.points_data\.kind: unknown kind 'inline_points'"):
        load_manifest(project / "releases" / "points.yaml")

    # And a person running the CLI is told the same, in a process of its own.
    done = _cli("release", "points", pythonpath=None, tmp=tmp_path, project=project)
    said = done.stdout + done.stderr
    assert done.returncode != 0, said
    assert "members.points_data.kind: unknown kind 'inline_points'" in said and "tabular_classifier" in said, said


# ------------------------------------------------------------------------------ 4. broken plugins


BROKEN_MODULES = {
    "ra_broken_kinds": """
        from typing import Literal

        from pydantic import BaseModel

        from release_assets.manifest.builtin_kinds import SKLEARN_DATASET
        from release_assets.manifest.kinds import MemberKind
        from release_assets.manifest.models import DatasetConfig

        NOT_A_KIND = {"name": "not_a_kind", "family": "dataset"}
        MISNAMED = SKLEARN_DATASET  # a MemberKind, but named sklearn_dataset


        class Loose(BaseModel):
            kind: str


        class Minimal(DatasetConfig):
            kind: Literal["no_runtime"]


        LOOSE = MemberKind("loose_dataset", "dataset", Loose, "ra_broken_kinds:NOWHERE", "config is no DatasetConfig")
        NO_RUNTIME = MemberKind("no_runtime", "dataset", Minimal, "ra_no_such_module:RUNTIME", "runtime is missing")
    """,
    "ra_exploding_kind": """
        raise RuntimeError("the plugin exploded on import")
    """,
}
# (entry point name, value, the error's expected text, when it is raised: loading the registry or using the kind)
BROKEN = {
    "not_a_member_kind": (
        "not_a_kind",
        "ra_broken_kinds:NOT_A_KIND",
        "member kind plugin not_a_kind = 'ra_broken_kinds:NOT_A_KIND': expected a release_assets MemberKind "
        "named 'not_a_kind', got {'name': 'not_a_kind'",
        "registry",
    ),
    "module_raises_on_import": (
        "exploding",
        "ra_exploding_kind:KIND",
        "member kind plugin exploding = 'ra_exploding_kind:KIND' does not load: the plugin exploded on import",
        "registry",
    ),
    "attribute_missing": (
        "vanished",
        "ra_broken_kinds:NO_SUCH_KIND",
        "member kind plugin vanished = 'ra_broken_kinds:NO_SUCH_KIND' does not load: ",
        "registry",
    ),
    "kind_named_otherwise": (
        "misnamed",
        "ra_broken_kinds:MISNAMED",
        "member kind plugin misnamed = 'ra_broken_kinds:MISNAMED': expected a release_assets MemberKind named "
        "'misnamed', got MemberKind(name='sklearn_dataset'",
        "registry",
    ),
    "config_not_a_dataset_config": (
        "loose_dataset",
        "ra_broken_kinds:LOOSE",
        "broken.yaml: members.d.kind: the 'loose_dataset' plugin's config model <class 'ra_broken_kinds.Loose'> "
        "does not derive from release_assets' DatasetConfig",
        "member",
    ),
    "runtime_does_not_import": (
        "no_runtime",
        "ra_broken_kinds:NO_RUNTIME",
        "member kind 'no_runtime': runtime 'ra_no_such_module:RUNTIME' does not load: No module named "
        "'ra_no_such_module'",
        "runtime",
    ),
}

USE_BROKEN = """
    import json, sys
    from release_assets.manifest import ManifestError, member_kind, parse_manifest

    kind = sys.argv[1]
    iris = {"name": "iris", "members": {"d": {"kind": "sklearn_dataset", "name": "iris", "split": {"test": 0.3}}}}
    broken = {"name": "broken", "members": {"d": {"kind": kind}}}
    errors = {}
    for what, call in (
        ("builtin_manifest", lambda: parse_manifest(iris, "iris.yaml")),
        ("broken_manifest", lambda: parse_manifest(broken, "broken.yaml")),
        ("runtime", lambda: member_kind(kind).load_runtime()),
    ):
        try:
            call()
            errors[what] = None
        except ManifestError as exc:
            errors[what] = str(exc)
    print(json.dumps(errors))
"""


def _broken_site(root: Path, ep_name: str, ep_value: str) -> Path:
    """A --target folder written by hand: the modules and a dist-info whose entry_points.txt names one kind."""
    root.mkdir()
    for module, source in BROKEN_MODULES.items():
        (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / "ra_broken-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ra-broken\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(f"[release_assets.member_kinds]\n{ep_name} = {ep_value}\n")
    return root


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_plugin_is_an_error_naming_its_entry_point(case, tmp_path):
    ep_name, ep_value, expected, stage = BROKEN[case]
    site = _broken_site(tmp_path / "site", ep_name, ep_value)
    errors = _python(USE_BROKEN, site, tmp_path, ep_name)

    if stage == "registry":
        # Any manifest (one of built-ins only, too) fails, naming the plugin, rather than its kind going missing.
        assert (errors["builtin_manifest"] or "").startswith(f"iris.yaml: {expected}"), errors
        assert (errors["broken_manifest"] or "").startswith(f"broken.yaml: {expected}"), errors
        assert (errors["runtime"] or "").startswith(expected), errors
    elif stage == "member":
        # The registry loads (the plugin's object is a MemberKind); a manifest naming the kind is refused.
        assert errors["builtin_manifest"] is None, errors
        assert (errors["broken_manifest"] or "").startswith(expected), errors
    else:
        # The declaration is fine and a manifest naming the kind loads; building it says which runtime is missing.
        assert errors["builtin_manifest"] is None and errors["broken_manifest"] is None, errors
        assert errors["runtime"] == expected, errors
