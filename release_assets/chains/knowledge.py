"""The knowledge base a chain answers from (``knowledge_base.yaml``): facts, the product catalogue and its aliases,
and the questions each fact answers. Read when a chain is frozen (``build.py``), served and evaluated, by this one
reader; every problem names the file, because the person fixing it is editing that file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from release_assets.chains.runner import KnowledgeBase
from release_assets.core.textfiles import read_yaml


class GoldenSuiteError(ValueError):
    """A golden case, or the knowledge base it is answered from, that cannot be read or scored; the message
    names file and line."""


def load_knowledge_base(path: Path) -> KnowledgeBase:
    """``facts: {id: sentence}``, optionally ``products: [...]`` and ``questions: {fact id: [heading, ...]}``."""
    data = read_yaml(path, GoldenSuiteError, line_sep=":")
    if not isinstance(data, dict) or not isinstance(data.get("facts"), dict):
        raise GoldenSuiteError(f"{path}: expected a mapping with `facts: {{id: sentence}}` and `products: [...]`")
    facts = {str(k): str(v) for k, v in data["facts"].items()}
    questions = data.get("questions") or {}
    if not isinstance(questions, dict) or not all(isinstance(v, list) for v in questions.values()):
        raise GoldenSuiteError(f"{path}: questions: expected `{{fact id: [question, ...]}}`")
    unknown = sorted(str(k) for k in questions if str(k) not in facts)
    if unknown:
        raise GoldenSuiteError(f"{path}: questions.{unknown[0]}: no fact with that id")
    products = data.get("products", [])
    return KnowledgeBase(
        facts=facts,
        products=products,
        questions={str(k): [str(q) for q in v] for k, v in questions.items()},
        aliases=_aliases(path, data.get("aliases") or {}, products),
    )


def _aliases(path: Path, aliases: Any, products: list[str]) -> dict[str, list[str]]:
    """``aliases: {product: [partial name, ...]}``. One alias naming two products would make extraction depend on
    the order of a YAML mapping, so it is refused here, like an alias of a product the catalogue does not sell."""
    if not isinstance(aliases, dict) or not all(isinstance(v, list) for v in aliases.values()):
        raise GoldenSuiteError(f"{path}: aliases: expected `{{product: [alias, ...]}}`")
    owner: dict[str, str] = {name.lower(): name for name in products}
    out: dict[str, list[str]] = {}
    for product, names in aliases.items():
        if product not in products:
            raise GoldenSuiteError(f"{path}: aliases.{product}: not a product of the catalogue")
        for alias in map(str, names):
            key = " ".join(alias.lower().split())
            if not key:
                raise GoldenSuiteError(f"{path}: aliases.{product}: an alias must not be empty")
            if owner.setdefault(key, product) != product:
                raise GoldenSuiteError(f"{path}: aliases.{product}: {alias!r} already names {owner[key]!r}")
        out[str(product)] = [str(a) for a in names]
    return out
