"""An asset's code version covers every project module its builder imports, directly or not, found from source."""

import ast
import json
import sys
import uuid
from pathlib import Path

import dagster as dg
import pytest

from release_assets.core import hashing
from release_assets.definitions import build_defs
from release_assets.manifest import load_manifests
from release_assets_tests.conftest import local_resources
from release_assets_tests.test_release_end_to_end import materializations, run_release

REPO = Path(__file__).resolve().parent.parent
CHAIN_EVALUATION = "helpdesk/chain_evaluation"
FLAKY = "release_assets.promotion.flaky"  # imported lazily by the golden-suite scorer, missing from the hand list
# Reached by the chain evaluation only through imports the hand-maintained list does not name.
DEEP = [
    "release_assets.models.trainers",
    FLAKY,
    "release_assets.datasets.digits",
    "release_assets.models.language",  # loaded by name through the registry's MODEL_KINDS
]


# -- a fake package, written by the test --------------------------------------------------------------------------
FAKE = {
    "__init__.py": "",
    "entry.py": """
        import json  # not under the package: never followed
        from {top}.sub import leaf  # a module named in a from-import
        from . import sibling  # relative

        KIND = "{top}.named"  # loaded later by name, like the model registry does
        NOT_A_MODULE = "{top}.nothing_here"


        def later():
            from .sub.deep import thing  # a function-level relative import of a nested module

            return thing
        """,
    "sibling.py": "VALUE = 1\n",
    "named.py": "VALUE = 2\n",
    "unused.py": "VALUE = 3\n",
    "sub/__init__.py": "",
    "sub/leaf.py": "from {top}.entry import KIND  # a cycle back to entry\n",
    "sub/deep.py": "from ..sub import leaf\nthing = leaf\n",
    "ring/__init__.py": "",
    "ring/a.py": "from {top}.ring import b\n",
    "ring/b.py": "import {top}.ring.a\n",
}


@pytest.fixture
def fake(tmp_path, monkeypatch) -> str:
    """A package under a fresh top-level name (the closure caches per module name for the process)."""
    top = f"closure_fake_{uuid.uuid4().hex[:8]}"
    for rel, text in FAKE.items():
        path = tmp_path / top / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = text.format(top=top).splitlines()
        indent = min((len(x) - len(x.lstrip()) for x in lines if x.strip()), default=0)
        path.write_text("\n".join(x[indent:] for x in lines) + "\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return top


def names(top: str, *modules: str) -> set[str]:
    return {top} | {f"{top}.{m}" for m in modules}


def test_closure_of_a_fake_package_follows_every_kind_of_import(fake):
    closure = set(hashing.module_closure([f"{fake}.entry"], prefix=fake))
    assert f"{fake}.sub.leaf" in closure  # `from pkg.sub import leaf`, leaf being a module
    assert f"{fake}.sibling" in closure  # `from . import sibling`
    assert f"{fake}.sub.deep" in closure  # inside a function, relative
    assert f"{fake}.named" in closure  # a string constant naming a module
    assert {fake, f"{fake}.sub"} <= closure  # the packages' __init__ run on import
    assert closure == names(fake, "entry", "sub", "sub.leaf", "sub.deep", "sibling", "named")  # not unused, json
    assert fake not in sys.modules  # found by reading source, nothing imported


def test_import_cycles_terminate(fake):
    assert set(hashing.module_closure([f"{fake}.ring.a"], prefix=fake)) == names(fake, "ring", "ring.a", "ring.b")
    # entry -> leaf -> entry
    assert f"{fake}.entry" in hashing.module_closure([f"{fake}.sub.leaf"], prefix=fake)


def test_import_lines_find_what_parsing_whole_files_finds():
    """The closure parses only the lines that start an import (whole files cost ~100 ms); compared here with a
    full parse of every module in the package, so an import written where the fast path cannot see it fails."""
    for path in sorted((REPO / "release_assets").rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        names = set()
        for node in ast.walk(ast.parse(path.read_bytes())):
            if isinstance(node, ast.Import):
                names |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = hashing._absolute(node.module, node.level, package)
                names |= {base} | {f"{base}.{a.name}" for a in node.names}
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                names.add(node.value)
        names.add(module.rpartition(".")[0])
        expected = {n for n in names if n.startswith("release_assets") and n != module and hashing.module_file(n)}
        assert expected <= hashing.imported_modules(module), module  # nothing missed (a quoted name may add)


# -- the real tree ---------------------------------------------------------------------------------------------------
def _code_inputs(defs: dg.Definitions, key: str) -> dict:
    meta = defs.get_repository_def().asset_graph.get(dg.AssetKey.from_user_string(key)).metadata
    return getattr(meta["code_inputs"], "value", meta["code_inputs"])


def _code_version(defs: dg.Definitions, key: str) -> str:
    return defs.get_repository_def().asset_graph.get(dg.AssetKey.from_user_string(key)).code_version


@pytest.fixture
def repo_defs(tmp_path) -> dg.Definitions:
    return build_defs(load_manifests(REPO / "releases"), REPO, local_resources(REPO, tmp_path / "store"))


def test_chain_evaluation_watches_modules_its_builder_reaches_only_indirectly(repo_defs):
    watched = {Path(f).resolve() for f in _code_inputs(repo_defs, CHAIN_EVALUATION)["files"]}
    for module in DEEP:
        assert hashing.module_source_path(module).resolve() in watched, module


def test_the_code_change_sensor_requests_a_run_when_a_module_deep_in_the_closure_changes(project, tmp_path):
    defs = build_defs(load_manifests(project / "releases"), project, local_resources(project, tmp_path / "store"))
    sensor = defs.get_sensor_def("code_change_sensor")
    flaky = str(hashing.module_source_path(FLAKY))
    assert flaky in _code_inputs(defs, CHAIN_EVALUATION)["files"]
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, cursor=None, definitions=defs)
        sensor(context)  # baseline
        cursor = json.loads(context.cursor)
        # What the sensor would have recorded before an edit of flaky.py: another stat, another content.
        cursor["files"][flaky] = [0, 0, "0" * 64]
        context = dg.build_sensor_context(instance=instance, cursor=json.dumps(cursor), definitions=defs)
        request = sensor(context)
    assert isinstance(request, dg.RunRequest), request
    keys = {k.to_user_string() for k in request.asset_selection}
    assert CHAIN_EVALUATION in keys
    assert "helpdesk/intent_model" not in keys  # models do not import the flakiness statistics
    assert "flaky.py" in request.tags["release_assets/trigger"]


def test_an_edit_deep_in_the_imports_rebuilds_the_chain_evaluation_and_reuses_the_models(
    tiny_project, tmp_path, monkeypatch
):
    store = tmp_path / "store"
    resources = local_resources(tiny_project, store)
    before = _code_version(
        build_defs(load_manifests(tiny_project / "releases"), tiny_project, resources), CHAIN_EVALUATION
    )
    with dg.instance_for_test() as instance:
        first, _ = run_release(tiny_project, store, instance, only=["helpdesk"])
        assert first.success

        # Edit flaky.py as the definitions see it, without touching the package on disk.
        read = hashing.module_source
        monkeypatch.setattr(hashing, "module_source", lambda m: read(m) + b"\n# edited\n" if m == FLAKY else read(m))
        after = _code_version(
            build_defs(load_manifests(tiny_project / "releases"), tiny_project, resources), CHAIN_EVALUATION
        )
        assert after != before

        second, _ = run_release(tiny_project, store, instance, only=["helpdesk"])
        assert second.success
    mats = materializations(second)
    assert mats[CHAIN_EVALUATION]["reused"] is False
    assert mats["helpdesk/intent_model"]["reused"] is True
    assert mats["helpdesk/vision_model"]["reused"] is True


def test_the_settings_enter_no_closure():
    """A module reading a setting (the registry: the model runtime) does not carry the settings' source into code
    versions: adding or describing a setting must not rebuild every model."""
    settings = "release_assets.core.settings"
    assert settings in hashing.imported_modules("release_assets.models.trainers")
    assert settings not in hashing.module_closure(["release_assets.models.trainers", "release_assets.definitions"])
