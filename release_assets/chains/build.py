"""Validate a chain config and freeze it, with its knowledge base, into an artifact folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from release_assets.chains.bindings import step_functions
from release_assets.chains.contract import chain_expectations
from release_assets.chains.knowledge import load_knowledge_base
from release_assets.chains.runner import KnowledgeBase
from release_assets.chains.schema import ChainSpecError
from release_assets.chains.spec import load_chain
from release_assets.chains.spec_checks import read_spec
from release_assets.core.hashing import module_closure, module_file, module_source_path, sha256_file

KB_FILE = "knowledge_base.yaml"
# Written only for a chain with python steps: each one's function and the sha256 of every module of its package
# it imports, as built. The code itself stays in the team's package (it is never copied or pickled): this file makes
# the artifact's digest change when that code does, so the chain is evaluated again and a new version is released.
PYTHON_STEPS_FILE = "python_steps.json"


def chain_knowledge(chain_artifact: Path) -> KnowledgeBase:
    """A built chain's knowledge base, or an empty one: a chain without `knowledge_base:` has none to copy."""
    path = chain_artifact / KB_FILE
    return load_knowledge_base(path) if path.exists() else KnowledgeBase(facts={}, products=[])


def chain_files(chain_dir: Path) -> list[Path]:
    return sorted(p for p in chain_dir.rglob("*") if p.is_file() and p.suffix in {".yaml", ".yml", ".j2"})


def python_modules(chain_dir: Path, chain_file: str = "chain.yaml") -> list[str]:
    """The modules the chain's python steps name, found without importing them: the entry points of the chain's
    code version. A chain file that does not read, or a module that cannot be found, adds none here: building the
    chain refuses it, naming the file, the step and the field."""
    try:
        spec = read_spec(chain_dir / chain_file, chain_dir)
    except (ChainSpecError, OSError):
        return []
    modules = {ref.partition(":")[0] for ref in (s.python_function for s in spec.steps) if ref}
    return sorted(m for m in modules if module_file(m) is not None)


def python_code(module: str) -> dict[str, str]:
    """sha256 of ``module`` and of every module of its own package it imports, read now."""
    return {m: sha256_file(module_source_path(m)) for m in module_closure([module])}


def build_chain(
    chain_dir: Path,
    knowledge_base: Path | None,
    model_labels: dict[str, list[str]],
    out_dir: Path,
    chain_file: str = "chain.yaml",
) -> dict[str, Any]:
    spec, _ = load_chain(chain_dir, model_labels, chain_file)
    step_functions(spec)  # the team's step functions import and take (text, context), or the build fails here
    for path in chain_files(chain_dir):
        target = out_dir / "chain" / path.relative_to(chain_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    if knowledge_base is not None:
        # Refuse an unreadable knowledge base here, where it is frozen, rather than when the chain is evaluated.
        load_knowledge_base(knowledge_base)
        shutil.copyfile(knowledge_base, out_dir / KB_FILE)
    python_steps = {
        s.id: {"function": s.python_function, "modules": python_code(s.python_function.partition(":")[0])}
        for s in spec.steps
        if s.python_function is not None
    }
    if python_steps:
        (out_dir / PYTHON_STEPS_FILE).write_text(json.dumps(python_steps, indent=1, sort_keys=True) + "\n")
    return {
        "name": spec.name,
        "chain_file": chain_file,
        "steps": [{"id": s.id, "binding": s.binding, "template": s.template} for s in spec.steps],
        "templates": [p.relative_to(chain_dir).as_posix() for p in chain_files(chain_dir) if p.suffix == ".j2"],
        # What its steps need of the models (labels they branch on, classifiers they read): the contract gate.
        "expects": [e.as_json() for e in chain_expectations(spec, chain_dir)],
    }
