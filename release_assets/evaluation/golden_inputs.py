"""What a golden evaluation reads: the golden suite (one case per line), the knowledge base, the attachments.

Every problem names the file and the line, because the person fixing it is editing that file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from release_assets.chains.runner import ChainRequest, KnowledgeBase
from release_assets.chains.schema import EvaluationSpec
from release_assets.core.textfiles import NotUTF8Error, byte_lines, decode_utf8, read_yaml


class GoldenSuiteError(ValueError):
    """A golden case that cannot be scored; the message names file and line."""


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


def load_cases(path: Path, evaluation: EvaluationSpec | None = None) -> list[dict[str, Any]]:
    """Every case needs an ``id`` and a ``message``; ``expected.intent`` only when the chain maps ``intent``."""
    needs_intent = evaluation is not None and evaluation.intent is not None
    cases = []
    for line_no, raw in byte_lines(path):
        try:
            case = json.loads(decode_utf8(raw, line_no))
            case["id"], case["message"]
            if needs_intent:
                case["expected"]["intent"]
        except NotUTF8Error as exc:
            raise GoldenSuiteError(f"{path}:{line_no}: {exc.detail}") from None
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise GoldenSuiteError(f"{path}:{line_no}: not a golden case ({type(exc).__name__}: {exc})") from None
        cases.append(case)
    return cases


def to_requests(cases: list[dict[str, Any]]) -> list[ChainRequest]:
    """Attachments name images of scikit-learn's digits by index; resolve them to pixels once."""
    images = None
    requests = []
    for case in cases:
        attachment = None
        if case.get("attachment"):
            if images is None:
                from release_assets.datasets.digits import load_digits_arrays

                images, _ = load_digits_arrays()
            attachment = [images[i].ravel().astype(int).tolist() for i in case["attachment"]["digits"]]
        requests.append(ChainRequest(id=case["id"], message=case["message"], attachment=attachment))
    return requests
