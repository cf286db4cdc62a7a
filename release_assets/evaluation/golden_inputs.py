"""What a golden evaluation reads: the golden suite (one case per line) and the attachments it names (the knowledge
base the chain answers from is read by ``chains/knowledge.py``).

Every problem names the file and the line, because the person fixing it is editing that file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from release_assets.chains.knowledge import GoldenSuiteError
from release_assets.chains.runner import ChainRequest
from release_assets.chains.schema import EvaluationSpec
from release_assets.core.textfiles import NotUTF8Error, byte_lines, decode_utf8
from release_assets.datasets.digits import load_digits_arrays


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
                images, _ = load_digits_arrays()
            attachment = [images[i].ravel().astype(int).tolist() for i in case["attachment"]["digits"]]
        requests.append(ChainRequest(id=case["id"], message=case["message"], attachment=attachment))
    return requests
