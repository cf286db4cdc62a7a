"""A throwaway copy of the project and the tiny model settings: what the tests and the scale bench release."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
# What writes data/ (data/generate.py and its data/generators/ package): never part of a project's copy.
GENERATORS = ("generate.py", "generators")

# Small enough to train in seconds, large enough that the pipeline is the real one.
TINY_PARAMS = {
    "intent_model": {"layers": 1, "hidden": 32, "heads": 2, "epochs": 2, "vocab_size": 600, "max_length": 48},
    "vision_model": {"epochs": 1, "channels": 4},
}
# Tiny models are weak; these thresholds keep gates meaningful without demanding production accuracy.
TINY_GATES = {
    "intent_model": {"accuracy": {"min": 0.0}, "p95_ms": {"max": 1000}},
    "vision_model": {"accuracy": {"min": 0.3}, "p95_ms": {"max": 1000}},
    "chain": {"format_valid": {"min": 0.99}, "forbidden_absent": {"min": 1.0}},
}


def copy_project(root: Path) -> Path:
    """The repository's releases, prompts and data copied to ``root`` (generators and notes left out)."""
    for folder in ("releases", "prompts", "data"):
        shutil.copytree(REPO / folder, root / folder, ignore=shutil.ignore_patterns(*GENERATORS, "*.md"))
    return root


def edit_manifest(project: Path, release: str, fn) -> None:
    path = project / "releases" / f"{release}.yaml"
    data = yaml.safe_load(path.read_text())
    fn(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def make_tiny(project: Path) -> None:
    def shrink(data: dict) -> None:
        for member, params in TINY_PARAMS.items():
            data["members"][member]["params"] = params
        data["gates"].update(TINY_GATES)

    edit_manifest(project, "helpdesk", shrink)
