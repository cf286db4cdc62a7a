"""The package as a library (issue #32): every library it imports is installed by the core or by a named extra of
pyproject.toml, core/extras.py knows which extra installs each optional one, and a missing extra is one line naming
it, from the CLI and from a failed Dagster step. Read from pyproject.toml and from what this (full) venv installed:
``importlib.metadata`` says which distribution ships which importable name. The wheel installed without extras is
release_assets_tests/test_light_core.py (`make core-test`)."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from functools import cache
from importlib import metadata

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from release_assets.core import extras
from release_assets.core.extras import EXTRAS, PURPOSE, extra_for, missing_extra, not_installed
from release_assets.core.lazy_imports import HEAVY
from release_assets_tests.conftest import REPO

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
SELF = re.compile(r"^release[_-]assets\[([\w,\s-]+)\]$")
# Extras that are not features of the package but tools and deployment profiles: not part of [all].
NOT_IN_ALL = {"all", "dev", "scale", "k8s"}


def _name(requirement: str) -> str:
    return canonicalize_name(Requirement(requirement).name)


def _requirements(extra: str | None) -> list[str]:
    """The distributions the core (None) or an extra declares, other extras of the package included in them."""
    out: list[str] = []
    for requirement in PYPROJECT["dependencies"] if extra is None else PYPROJECT["optional-dependencies"][extra]:
        named = SELF.match(requirement)
        if named:
            for inner in named.group(1).split(","):
                out += _requirements(inner.strip())
        else:
            out.append(_name(requirement))
    return out


@cache
def _files(distribution: str) -> frozenset[str] | None:
    try:
        return frozenset(str(f) for f in metadata.files(distribution) or [])
    except metadata.PackageNotFoundError:  # an extra this venv does not have (scale, k8s: `make scale-test`)
        return None


def _provides(distribution: str, module: str) -> bool:
    """Whether ``distribution`` ships the importable ``module`` (a dotted name): by its installed files, or, not
    installed here, when its name is the module's (dagster-celery ships dagster_celery)."""
    files = _files(distribution)
    if files is None:
        return distribution.replace("-", "_") == module.split(".")[0]
    path = module.replace(".", "/")
    return any(f.startswith(path + "/") or f == path + ".py" or f.startswith(path + ".") for f in files)


def _provided_by(distributions: list[str], module: str) -> bool:
    return any(_provides(d, module) for d in distributions)


def _third_party_imports() -> dict[str, set[str]]:
    """Top-level name -> the package's modules importing it, at module level or inside functions."""
    package = REPO / "release_assets"
    found: dict[str, set[str]] = {}
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top != "release_assets" and top != "__future__":
                    found.setdefault(top, set()).add(str(path.relative_to(REPO)))
    return found


def _closure(names: list[str]) -> list[str]:
    """``names`` and every distribution they require here (no extras), as pip installs them."""
    out: list[str] = []
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in out:
            continue
        out.append(name)
        for requirement in map(Requirement, metadata.requires(name) or []):
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(canonicalize_name(requirement.name))
    return out


CORE = _requirements(None)
CORE_INSTALLS = _closure(CORE)  # what `pip install release_assets` brings: the core and what it requires
OPTIONAL = {extra: _requirements(extra) for extra in PYPROJECT["optional-dependencies"]}


def test_every_imported_library_is_installed_by_the_core_or_by_the_extra_extras_py_names():
    """A new import (at the top of a module or inside a function) cannot land without saying who installs it."""
    wrong = []
    for top, importers in sorted(_third_party_imports().items()):
        if _provided_by(CORE_INSTALLS, top):
            continue
        extra = extra_for(top)
        if extra is None or not _provided_by(OPTIONAL.get(extra, []), top):
            wrong.append(f"{top} ({', '.join(sorted(importers))}): not core, and extras.EXTRAS says {extra!r}")
    assert wrong == [], "declare these in pyproject.toml and name their extra in core/extras.py:\n" + "\n".join(wrong)


def test_every_heavy_library_is_core_or_an_extra():
    """lazy_imports.HEAVY: the libraries imported only where needed; each is installed by the core or an extra."""
    for top in HEAVY:
        if not _provided_by(CORE_INSTALLS, top):
            extra = extra_for(top)
            assert extra is not None, f"{top}: imported lazily, not core, and no extra in core/extras.py installs it"
            assert _provided_by(OPTIONAL[extra], top), f"{top}: [{extra}] declares nothing that installs it"


def test_each_name_in_extras_py_is_installed_by_its_extra_and_not_by_the_core():
    for module, extra in EXTRAS.items():
        assert extra in PYPROJECT["optional-dependencies"], f"{module}: no extra [{extra}] in pyproject.toml"
        assert extra in PURPOSE, f"[{extra}]: say what it is for in extras.PURPOSE"
        assert _provided_by(OPTIONAL[extra], module), f"{module}: [{extra}] declares nothing that installs it"
        assert not _provided_by(CORE, module), f"{module} is core: no extra needed"
    assert set(PURPOSE) == set(EXTRAS.values()), "PURPOSE names an extra nothing in EXTRAS maps to"


def test_the_core_installs_no_torch_transformers_mlflow_evidently_or_server():
    heavy = {"torch", "transformers", "mlflow", "mlflow-skinny", "evidently", "onnxruntime", "starlette", "uvicorn"}
    assert not set(CORE_INSTALLS) & heavy, sorted(set(CORE_INSTALLS) & heavy)


def test_all_is_every_feature_extra():
    [listed] = [SELF.match(r) for r in PYPROJECT["optional-dependencies"]["all"]]
    assert listed is not None
    assert {e.strip() for e in listed.group(1).split(",")} == set(PYPROJECT["optional-dependencies"]) - NOT_IN_ALL


def test_the_lock_pins_everything_a_full_install_declares():
    """requirements.lock (make lock) holds the core, [all] and [dev], each at one exact version, with hashes."""
    lock = (REPO / "requirements.lock").read_text(encoding="utf-8")
    pinned = {canonicalize_name(m[1]): m[2] for m in re.finditer(r"^([A-Za-z0-9_.-]+)==(\S+) \\$", lock, re.M)}
    declared = set(CORE) | {d for extra in ("all", "dev") for d in _requirements(extra)}
    assert sorted(declared - set(pinned)) == [], "not in requirements.lock: run `make lock`"
    assert pinned["torch"] == "2.13.0+cpu"  # the CPU wheel: a range lets pip pick a multi-GB CUDA build
    assert "release-assets @" not in lock and lock.count("--hash=sha256:") >= len(pinned)


@pytest.mark.parametrize(
    ("error", "extra", "module"),
    [
        (ModuleNotFoundError("No module named 'uvicorn'", name="uvicorn"), "serve", "uvicorn"),
        (ModuleNotFoundError("import of torch halted", name="torch.nn"), "torch", "torch"),
        ("ModuleNotFoundError: No module named 'torch'\n", "torch", "torch"),
        ("No module named 'onnxruntime'", "onnx", "onnxruntime"),
        ("No module named 'opentelemetry.exporter'", "serve", "opentelemetry"),
        (ModuleNotFoundError(name="mlflow"), "mlflow", "mlflow"),
        (ModuleNotFoundError(name="evidently"), "drift", "evidently"),
    ],
)
def test_a_missing_library_of_an_extra_is_one_line_naming_the_extra(error, extra, module):
    line = missing_extra(error)
    assert line is not None and "\n" not in line
    assert f"needs the '{extra}' extra ({module} is not installed)" in line
    assert line.endswith(f"pip install 'release_assets[{extra}]'")


@pytest.mark.parametrize(
    "error",
    [
        ModuleNotFoundError("No module named 'your_models'", name="your_models"),  # a team's own code
        ModuleNotFoundError("No module named 'opentelemetry.sdk'", name="opentelemetry.sdk"),  # core
        ImportError("cannot import name 'x' from 'torch'", name="torch"),  # installed, another version
        ValueError("No module named 'torch'"),
        "KeyError: 'torch'",
    ],
)
def test_any_other_error_is_left_alone(error):
    assert missing_extra(error) is None


def test_not_installed_names_the_extra_only_when_the_library_is_absent(monkeypatch):
    assert not_installed("mlflow") is None  # this venv is a full install
    monkeypatch.setattr(extras, "find_spec", lambda name: None)
    assert not_installed("mlflow") == (
        "the MLflow registry needs the 'mlflow' extra (mlflow is not installed): pip install 'release_assets[mlflow]'"
    )
    with pytest.raises(KeyError):
        not_installed("numpy")


def test_without_mlflow_a_ledger_move_mirrors_nothing_and_leaves_nothing_pending(monkeypatch, tmp_path):
    """A core install has no registry: promote, rollback and canary moves stand on the ledger alone, not failed."""
    from release_assets.release.store import LocalReleaseStore
    from release_assets.rollout.aliases import mirror_or_pending

    def registry():
        raise AssertionError("the registry is not opened without MLflow")

    monkeypatch.setattr(extras, "find_spec", lambda name: None)
    state, pending = mirror_or_pending(LocalReleaseStore(tmp_path / "store"), registry, "iris")
    assert pending is None and state.champion is None


def test_the_cli_says_which_extra_serve_needs_in_one_line(monkeypatch, capsys):
    from release_assets.cli.main import main

    monkeypatch.setitem(sys.modules, "uvicorn", None)  # `import uvicorn` now fails as if it were not installed
    assert main(["serve"]) == 2
    err = capsys.readouterr().err
    assert err == (
        "FAILED: serving (`serve`, flag routing, the canary and the shadow report) needs the 'serve' extra "
        "(uvicorn is not installed): pip install 'release_assets[serve]'\n"
    )


def test_the_cli_leaves_a_missing_module_of_no_extra_to_its_traceback(monkeypatch):
    from release_assets.cli import main as cli_main

    def broken(args):
        import your_models_missing  # noqa: F401

    monkeypatch.setattr(cli_main, "cmd_validate", broken)
    with pytest.raises(ModuleNotFoundError, match="your_models_missing"):
        cli_main.main(["validate"])


def test_a_step_that_needs_a_missing_extra_is_reported_as_that_line():
    """A Dagster step's error (SerializableErrorInfo, the cause chain Dagster keeps) reads as the extra's line."""
    from dagster._utils.error import serializable_error_info_from_exc_info

    try:
        try:
            raise ModuleNotFoundError("No module named 'torch'", name="torch")
        except ModuleNotFoundError as exc:
            raise RuntimeError('Error occurred while executing op "digits__vision_model":') from exc
    except RuntimeError:
        info = serializable_error_info_from_exc_info(sys.exc_info())

    from release_assets.release.summary import error_text

    assert error_text(info) == (
        "training the image and text models (and the llm:transformers binding) needs the 'torch' extra "
        "(torch is not installed): pip install 'release_assets[torch]'"
    )
