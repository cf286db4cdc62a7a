"""Behavioural tests (CheckList style) for a text intent classifier: what accuracy on a test set cannot show.

Invariance: a customer's name, an order number, casing or a typo must not change the intent. Directional: adding
"Also, please cancel my order." should make a message a cancellation. Minimum functionality: a few hand-written
cases from the manifest that any acceptable model gets right. Perturbations come from a seeded RNG, so the same
seed gives the same cases and the same metrics; all texts go to ``predict`` in one batch.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from typing import Any

FIRST_NAMES = ("Sam", "Priya", "Daniel", "Maria", "Tom", "Aisha", "Lukas", "Chen", "Olivia", "Mateo", "Grace")
LAST_NAMES = ("Nair", "Okafor", "Garcia", "Miller", "Rahman", "Schmidt", "Wei", "Brown", "Rossi", "Kim", "Patel")
_NAME = re.compile(r"\b(" + "|".join(FIRST_NAMES + LAST_NAMES) + r")\b")
_ORDER_ID = re.compile(r"\b\d{5}\b")
_LONG_WORD = re.compile(r"\b[A-Za-z]{5,}\b")
CANCEL_SUFFIX = " Also, please cancel my order."
CANCEL = "cancel_order"
MAX_EXAMPLES = 10  # per kind of test, so many invariance failures cannot hide the MFT ones

Predict = Callable[[list[str]], list[str]]


def _swap_names(text: str, rng: random.Random) -> str | None:
    def other(m: re.Match[str]) -> str:
        pool = FIRST_NAMES if m.group(0) in FIRST_NAMES else LAST_NAMES
        return rng.choice([n for n in pool if n != m.group(0)])

    return _NAME.sub(other, text) if _NAME.search(text) else None


def _swap_order_ids(text: str, rng: random.Random) -> str | None:
    def other(m: re.Match[str]) -> str:
        new = m.group(0)
        while new == m.group(0):
            new = str(rng.randint(10000, 99999))
        return new

    return _ORDER_ID.sub(other, text) if _ORDER_ID.search(text) else None


def _casing(text: str, rng: random.Random) -> str | None:
    changed = [t for t in (text.upper(), text.lower(), text.title()) if t != text]
    return rng.choice(changed) if changed else None


def _typo(text: str, rng: random.Random) -> str | None:
    """Swap two adjacent letters (never the first) inside one word longer than four letters."""
    words = [m for m in _LONG_WORD.finditer(text) if len(set(m.group(0)[1:])) > 1]
    if not words:
        return None
    m = rng.choice(words)
    w = m.group(0)
    i = rng.choice([k for k in range(1, len(w) - 1) if w[k] != w[k + 1]])
    return text[: m.start()] + w[:i] + w[i + 1] + w[i] + w[i + 2 :] + text[m.end() :]


PERTURBATIONS: dict[str, Callable[[str, random.Random], str | None]] = {
    "names": _swap_names,
    "order_ids": _swap_order_ids,
    "casing": _casing,
    "typo": _typo,
}


def invariance_cases(messages: list[str], seed: int) -> list[tuple[str, int, str]]:
    """``(perturbation, message index, perturbed text)`` for every perturbation that applies to a message."""
    rng = random.Random(seed)
    cases = []
    for i, text in enumerate(messages):
        for name, perturb in PERTURBATIONS.items():
            new = perturb(text, rng)
            if new is not None and new != text:
                cases.append((name, i, new))
    return cases


def _rate(hits: int, total: int) -> float | None:
    return hits / total if total else None


def _first_per_kind(failures: list[dict[str, Any]]) -> list[dict[str, Any]]:
    kept: dict[str, int] = {}
    out = []
    for f in failures:
        kind = f["test"].split(":")[0]
        kept[kind] = kept.get(kind, 0) + 1
        if kept[kind] <= MAX_EXAMPLES:
            out.append(f)
    return out


def behaviour_summary(
    predict: Predict, messages: list[str], mft_cases: list[dict[str, str]], seed: int = 0
) -> dict[str, Any]:
    """``{"metrics": {invariance_rate, directional_rate, mft_accuracy, *_cases}, "examples": [failures]}``.

    A rate is ``None`` when no case of its kind exists (e.g. every message already predicted as a cancellation).
    """
    cases = invariance_cases(messages, seed)
    directional = [m + CANCEL_SUFFIX for m in messages]
    mft_texts = [c["text"] for c in mft_cases]
    batch = messages + [c[2] for c in cases] + directional + mft_texts
    predicted = list(predict(batch)) if batch else []
    if len(predicted) != len(batch):
        raise ValueError(f"predict returned {len(predicted)} labels for {len(batch)} texts")
    n, k = len(messages), len(cases)
    before, after_inv = predicted[:n], predicted[n : n + k]
    after_dir, got_mft = predicted[n + k : 2 * n + k], predicted[2 * n + k :]

    failures: list[dict[str, Any]] = []
    unchanged = 0
    for (name, i, new), after in zip(cases, after_inv, strict=True):
        unchanged += after == before[i]
        if after != before[i]:
            failures.append(
                {
                    "test": f"invariance:{name}",
                    "original": messages[i],
                    "perturbed": new,
                    "before": before[i],
                    "after": after,
                }
            )
    eligible = [i for i in range(n) if before[i] != CANCEL]
    moved = sum(after_dir[i] == CANCEL for i in eligible)
    failures += [
        {
            "test": "directional:cancel",
            "original": messages[i],
            "perturbed": directional[i],
            "before": before[i],
            "after": after_dir[i],
        }
        for i in eligible
        if after_dir[i] != CANCEL
    ]
    right = 0
    for case, got in zip(mft_cases, got_mft, strict=True):
        right += got == case["expected"]
        if got != case["expected"]:
            failures.append(
                {
                    "test": "mft",
                    "original": case["text"],
                    "perturbed": case["text"],
                    "before": None,
                    "after": got,
                    "expected": case["expected"],
                }
            )
    return {
        "metrics": {
            "invariance_rate": _rate(unchanged, k),
            "directional_rate": _rate(moved, len(eligible)),
            "mft_accuracy": _rate(right, len(mft_cases)),
            "invariance_cases": k,
            "directional_cases": len(eligible),
            "mft_cases": len(mft_cases),
        },
        "examples": _first_per_kind(failures),
    }
