"""Issue #32: the wheel installed without extras, in a venv that shares nothing with this repository's (no .pth to
its site-packages, unlike component/projects.py's fresh_venv), on Python 3.11 and on 3.12 where the machine has
it. pip installs the core's dependencies from the package index, held at requirements.lock's versions. No torch,
transformers, MLflow or Evidently is installed; `release-assets release` publishes iris (scikit-learn) and a team's
table with its own training function (examples/your_project's loans) and its chain (desk), `promote` moves the
ledger with no MLflow to mirror it to, and `predict` answers; `serve`, and a release with a torch model, each fail
with the one line naming the extra to install.

Slow (a wheel, a venv per interpreter, ~1 min each): `make core-test`, which .ci/run calls; skipped by `make test`.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from release_assets_tests.component.projects import build_wheel, project_env, run
from release_assets_tests.conftest import REPO

pytestmark = pytest.mark.skipif(
    os.environ.get("RELEASE_ASSETS_CORE_TEST") != "1",
    reason="builds the wheel and fresh venvs from the package index (~2 min): run `make core-test`",
)

INSTALL_TIMEOUT_S = 900
RUN_TIMEOUT_S = 300
NOT_IN_THE_CORE = ("torch", "transformers", "mlflow", "evidently", "onnxruntime", "starlette", "uvicorn", "boto3")
# A release whose model is torch's (the image classifier on scikit-learn's digits): it needs the `torch` extra.
DIGITS = {
    "name": "digits",
    "owners": ["team@example.com"],
    "members": {
        "digits": {"kind": "sklearn_dataset", "name": "digits", "split": {"test": 0.25, "seed": 7}},
        "vision_model": {"kind": "image_classifier", "data": "digits", "params": {"epochs": 1}},
    },
    "gates": {"vision_model": {"accuracy": {"min": 0.5}}},
}
TORCH_LINE = (
    "training the image and text models (and the llm:transformers binding) needs the 'torch' extra "
    "(torch is not installed): pip install 'release_assets[torch]'"
)
SERVE_LINE = (
    "FAILED: serving (`serve`, flag routing, the canary and the shadow report) needs the 'serve' extra "
    "(uvicorn is not installed): pip install 'release_assets[serve]'"
)


def _interpreter(version: str) -> str | None:
    """A Python of that version other than this venv's: the one this venv was made from, else one on the machine."""
    base = Path(getattr(sys, "_base_executable", sys.executable))
    candidates = [str(base)] if f"{sys.version_info[0]}.{sys.version_info[1]}" == version else []
    candidates += sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}*/bin/python{version}")))
    candidates += [p for p in (shutil.which(f"python{version}"), f"/usr/bin/python{version}") if p]
    for candidate in candidates:
        try:
            out = subprocess.run(
                [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                capture_output=True,
                text=True,
                timeout=30,
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if out.returncode == 0 and out.stdout.strip() == version:
            return candidate
    return None


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("build"))


@pytest.fixture(scope="module")
def pins(tmp_path_factory) -> Path:
    """requirements.lock's exact versions as constraints. Without its hashes: a hashed constraint puts pip in
    hash-checking mode, and the wheel built here has no hash to check."""
    lock = (REPO / "requirements.lock").read_text(encoding="utf-8")
    path = tmp_path_factory.mktemp("pins") / "pins.txt"
    path.write_text("".join(f"{m[1]}=={m[2]}\n" for m in re.finditer(r"^([A-Za-z0-9_.-]+)==(\S+) \\$", lock, re.M)))
    return path


def _version(out: str, release: str) -> str:
    match = re.search(rf"^== {release}: published\n\s+version: ([0-9a-f]{{16}})$", out, re.M)
    assert match, out
    return match.group(1)


@pytest.mark.parametrize("python_version", ["3.11", "3.12"])
def test_the_wheel_without_extras_installs_no_torch_and_releases_scikit_learn_models(
    python_version, wheel, pins, tmp_path
):
    python = _interpreter(python_version)
    if python is None:
        pytest.skip(f"no Python {python_version} on this machine")
    started = time.perf_counter()
    venv = tmp_path / "venv"
    env = project_env(tmp_path)
    made = run([python, "-m", "venv", str(venv)], tmp_path, env, timeout=120)
    assert made.returncode == 0, made.stderr
    vpython = str(venv / "bin" / "python")
    installed = run(
        [vpython, "-m", "pip", "install", "-q", "-c", str(pins), str(wheel)], tmp_path, env, timeout=INSTALL_TIMEOUT_S
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    check = run([vpython, "-m", "pip", "check"], tmp_path, env, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr
    probe = (
        "import importlib.util, json, sys; print(json.dumps([m for m in sys.argv[1:] if importlib.util.find_spec(m)]))"
    )
    present = run([vpython, "-c", probe, *NOT_IN_THE_CORE], tmp_path, env, timeout=60)
    assert present.returncode == 0 and json.loads(present.stdout) == [], present.stdout + present.stderr
    install_s = time.perf_counter() - started

    # The team's project (its tables, training functions and chain), importable as `pip install -e .` makes it,
    # with this repository's iris beside its releases and a torch model that must say what it needs.
    project = tmp_path / "project"
    shutil.copytree(REPO / "examples" / "your_project", project, ignore=shutil.ignore_patterns("__pycache__", ".*"))
    shutil.copy(REPO / "releases" / "iris.yaml", project / "releases" / "iris.yaml")
    (project / "releases" / "digits.yaml").write_text(yaml.safe_dump(DIGITS, sort_keys=False))
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "_your_models.pth").write_text(str(project) + "\n")
    env = {**project_env(project, venv), "RELEASE_ASSETS_PROJECT_DEFINITIONS": "your_models.definitions:defs"}
    cli = str(venv / "bin" / "release-assets")

    released = run([cli, "release", "iris", "loans", "desk"], project, env, timeout=RUN_TIMEOUT_S)
    assert released.returncode == 0, released.stdout + released.stderr
    for name in ("iris", "loans", "desk"):
        version = _version(released.stdout, name)
        assert (project / ".release_store" / "releases" / name / version / "bundle.tar.gz").is_file()
    assert "MLflow registration follows" not in released.stdout  # no registry without the mlflow extra

    # Promotion stands on the ledger alone: no MLflow to mirror it to, and nothing pending that fails the move.
    iris = _version(released.stdout, "iris")
    promoted = run([cli, "promote", "iris", iris, "--approved-by", "ci", "--reason", "core"], project, env)
    assert promoted.returncode == 0, promoted.stdout + promoted.stderr
    flower = json.dumps({"features": [6.7, 3.0, 5.2, 2.3]})
    predicted = subprocess.run(
        [cli, "predict", "iris", "--json", "-"],
        input=flower,
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )
    assert predicted.returncode == 0, predicted.stdout + predicted.stderr
    answer = json.loads(predicted.stdout)
    assert (answer["label"], answer["version"], answer["variant"]) == ("virginica", iris, "champion")

    # A person's mistake is still its one line: the CLI's error handling itself loads nothing of an extra.
    unknown = run([cli, "release", "no_such_release"], project, env, timeout=RUN_TIMEOUT_S)
    assert unknown.returncode == 2, unknown.stdout + unknown.stderr
    assert unknown.stderr.strip().splitlines()[-1].startswith("FAILED: release(s) no_such_release not found")
    assert "Traceback" not in unknown.stderr

    served = run([cli, "serve"], project, env, timeout=RUN_TIMEOUT_S)
    assert served.returncode == 2, served.stdout + served.stderr
    assert served.stderr.strip().splitlines()[-1] == SERVE_LINE, served.stderr
    assert "Traceback" not in served.stderr

    torch_model = run([cli, "release", "digits"], project, env, timeout=RUN_TIMEOUT_S)
    assert torch_model.returncode != 0, torch_model.stdout + torch_model.stderr
    assert f"   error:   digits__vision_model: {TORCH_LINE}" in torch_model.stdout.splitlines()
    assert "Traceback" not in torch_model.stdout + torch_model.stderr
    print(
        f"Python {python_version}: venv and core install {install_s:.0f} s, all {time.perf_counter() - started:.0f} s"
    )
