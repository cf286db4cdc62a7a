"""Throwaway ``dg`` projects outside this repository: the layout `create-dagster project` makes, a release of
their own (a prompt chain over their own knowledge base and golden suite), and the environment to run ``dg`` in."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]

# A knowledge-base chain small enough to evaluate in milliseconds: retrieve the fact a question is about, quote it.
KB = {"facts": {"returns": "Unused items can be returned within 45 days.", "shipping": "Shipping takes 4 days."}}
GOLDEN = [
    {"id": "g1", "message": "Can I return unused items?", "expected": {"intent": "returns"}, "must_contain": ["45"]},
    {"id": "g2", "message": "How many days does shipping take?", "expected": {"intent": "shipping"}},
]
CHAIN = {
    "name": "faq",
    "description": "Quote the fact a question is about.",
    "steps": [
        {
            "id": "retrieve",
            "template": "question.j2",
            "binding": "retrieve",
            "output": {"fact": "str?", "score": "float"},
        },
        {"id": "answer", "template": "answer.j2", "binding": "template", "output": {"reply": "str"}},
    ],
    "evaluation": {"intent": "retrieve.fact", "reply": "answer.reply"},
}
ANSWER = "{% if retrieve.fact %}{{ kb[retrieve.fact] }}{% else %}I do not know.{% endif %}\n"
FAQ = {
    "name": "faq",
    "owners": ["team@example.com"],
    "members": {
        "chain": {
            "kind": "prompt_chain",
            "path": "prompts/faq",
            "uses": [],
            "golden": "data/golden.jsonl",
            "knowledge_base": "data/knowledge_base.yaml",
        }
    },
    "gates": {"chain": {"format_valid": {"min": 0.99}, "intent_accuracy": {"min": 0.5}, "p95_ms": {"max": 500}}},
}


def write_project(root: Path, package: str = "shop") -> Path:
    """A `dg` project as `create-dagster project` lays it out: pyproject, src/<package>/definitions.py, defs/."""
    (root / "src" / package / "defs").mkdir(parents=True)
    (root / "pyproject.toml").write_text(
        textwrap.dedent(f"""\
            [project]
            name = "{package}"
            version = "0.1.0"
            requires-python = ">=3.11"
            dependencies = ["release_assets"]

            [tool.dg]
            directory_type = "project"

            [tool.dg.project]
            root_module = "{package}"
            """)
    )
    (root / "src" / package / "__init__.py").write_text("")
    (root / "src" / package / "defs" / "__init__.py").write_text("")
    (root / "src" / package / "definitions.py").write_text(
        textwrap.dedent("""\
            from pathlib import Path

            from dagster import definitions, load_from_defs_folder


            @definitions
            def defs():
                return load_from_defs_folder(path_within_project=Path(__file__).parent)
            """)
    )
    return root / "src" / package / "defs"


def write_faq_release(defs: Path, manifest: dict | None = None) -> Path:
    """defs/faq/: its defs.yaml, and its prompts and data beside it (the manifest's paths start there)."""
    folder = defs / "faq"
    (folder / "prompts" / "faq").mkdir(parents=True)
    (folder / "data").mkdir()
    (folder / "prompts" / "faq" / "chain.yaml").write_text(yaml.safe_dump(CHAIN, sort_keys=False))
    (folder / "prompts" / "faq" / "question.j2").write_text("{{ message }}\n")
    (folder / "prompts" / "faq" / "answer.j2").write_text(ANSWER)
    (folder / "data" / "knowledge_base.yaml").write_text(yaml.safe_dump(KB))
    (folder / "data" / "golden.jsonl").write_text("".join(json.dumps(case) + "\n" for case in GOLDEN))
    document = {"type": "release_assets.ReleaseComponent", "attributes": manifest or FAQ}
    (folder / "defs.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    return folder / "defs.yaml"


def project_env(root: Path, venv: Path | None = None) -> dict[str, str]:
    """The environment a person has in the project: its venv active, its own Dagster home, nothing of this
    repository's settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RELEASE_ASSETS_", "DAGSTER_", "PYTHON"))}
    env.update(DAGSTER_HOME=str(root / ".dagster"), NO_COLOR="1", COLUMNS="200")
    if venv is not None:
        env.update(VIRTUAL_ENV=str(venv), PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}")
    (root / ".dagster").mkdir(exist_ok=True)
    return env


def run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def dg(python: Path | str = sys.executable) -> list[str]:
    """`dg` run by a given interpreter (the one whose environment it should see)."""
    return [str(python), "-m", "dagster_dg_cli.cli"]


def build_wheel(tmp: Path) -> Path:
    """This package as a wheel, built offline from a copy of its sources."""
    # From a copy of the sources: building in place would leave build/ and egg-info in the checkout.
    src = tmp / "src"
    src.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "release_assets", src / "release_assets", ignore=shutil.ignore_patterns("__pycache__"))
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp / "dist")]
    out = run([*cmd, str(src)], tmp, project_env(tmp), timeout=300)
    assert out.returncode == 0, out.stderr
    [wheel] = (tmp / "dist").glob("release_assets-*.whl")
    return wheel


def fresh_venv(venv: Path, wheel: Path) -> Path:
    """A new venv with release_assets from ``wheel`` only; third-party packages through a .pth line to this
    repository's site-packages (see test_out_of_repo.py). Returns its python."""
    base = Path(getattr(sys, "_base_executable", sys.executable))
    out = run([str(base), "-m", "venv", "--without-pip", str(venv)], venv.parent, project_env(venv.parent))
    assert out.returncode == 0, out.stderr
    python = venv / "bin" / "python"
    env = project_env(venv.parent)
    site = Path(
        run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], venv, env).stdout.strip()
    )
    (site / "_release_assets_test_deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    out = run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], venv.parent, env)
    assert out.returncode == 0, out.stderr
    return python
