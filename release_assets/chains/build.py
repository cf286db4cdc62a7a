"""Validate a chain config and freeze it, with its knowledge base, into an artifact folder."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from release_assets.chains.knowledge import load_knowledge_base
from release_assets.chains.spec import load_chain

KB_FILE = "knowledge_base.yaml"


def chain_files(chain_dir: Path) -> list[Path]:
    return sorted(p for p in chain_dir.rglob("*") if p.is_file() and p.suffix in {".yaml", ".yml", ".j2"})


def build_chain(
    chain_dir: Path,
    knowledge_base: Path | None,
    model_labels: dict[str, list[str]],
    out_dir: Path,
    chain_file: str = "chain.yaml",
) -> dict[str, Any]:
    spec, _ = load_chain(chain_dir, model_labels, chain_file)
    for path in chain_files(chain_dir):
        target = out_dir / "chain" / path.relative_to(chain_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    if knowledge_base is not None:
        # Refuse an unreadable knowledge base here, where it is frozen, rather than when the chain is evaluated.
        load_knowledge_base(knowledge_base)
        shutil.copyfile(knowledge_base, out_dir / KB_FILE)
    return {
        "name": spec.name,
        "chain_file": chain_file,
        "steps": [{"id": s.id, "binding": s.binding, "template": s.template} for s in spec.steps],
        "templates": [p.relative_to(chain_dir).as_posix() for p in chain_files(chain_dir) if p.suffix == ".j2"],
    }
