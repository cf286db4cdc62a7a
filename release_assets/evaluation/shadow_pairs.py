"""Shadow pairs summarized: how a candidate's answers compare with the champion's on the same requests.

Pure: the input is pair records as :func:`release_assets.serving.shadow.compare` makes them (``primary`` is the
champion, ``shadow`` the candidate), from the offline replay of recorded traffic or from the live shadow log, so
both are judged by the same numbers and the same gates.
"""

from __future__ import annotations

import statistics
from typing import Any

MAX_EXAMPLES = 20
MESSAGE_CHARS = 100
TABLE = "disagreeing_pairs"  # the check metadata table these rows go to (promotion/checks.py _example_tables)
METRICS = (
    "shadow_intent_agreement",
    "shadow_entity_agreement",
    "shadow_reply_similarity",
    "shadow_reply_semantic_similarity",
    "shadow_abstain_rate_diff",
    "shadow_escalation_rate_diff",
    "shadow_latency_diff_ms",
)


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 6) if values else None


def _rate(pairs: list[dict[str, Any]], side: str, field: str) -> float | None:
    return _mean([float(bool((p.get(side) or {}).get(field))) for p in pairs])


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 6)


def _short(text: Any, limit: int) -> str:
    text = "" if text is None else " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _from_difference(a: Any, b: Any, limit: int) -> tuple[str, str]:
    """Both replies shortened from a little before where they first differ: two replies that share a long
    opening would otherwise show the same truncated text side by side."""
    a, b = (" ".join(str(x or "").split()) for x in (a, b))
    same = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    start = a.rfind(" ", 0, max(0, same - 20)) + 1 if same > 40 else 0
    prefix = "..." if start else ""
    return prefix + _short(a[start:], limit), prefix + _short(b[start:], limit)


def _flipped(pair: dict[str, Any]) -> list[str]:
    """The decisions one side took and the other did not: asked instead of acting, handed to a person."""
    champion, candidate = pair.get("primary") or {}, pair.get("shadow") or {}
    return [f for f in ("abstained", "escalate") if bool(champion.get(f)) != bool(candidate.get(f))]


def _badness(pair: dict[str, Any]) -> tuple:
    """Sort key, worst first: a failed candidate, then a different intent, different entities, a different
    abstain or escalation decision, the least similar reply."""
    agreement = pair.get("agreement") or {}
    return (
        not pair.get("shadow_error"),
        agreement.get("intent", True),
        agreement.get("entities", True),
        not _flipped(pair),
        pair.get("reply_similarity", 1.0),
        str(pair.get("request_id") or pair.get("id") or ""),
    )


def _disagrees(pair: dict[str, Any]) -> bool:
    if pair.get("shadow_error") or _flipped(pair):
        return True
    return not all((pair.get("agreement") or {}).values()) or pair.get("reply_similarity", 1.0) < 1.0


def _differs(pair: dict[str, Any]) -> str:
    if pair.get("shadow_error"):
        return f"candidate failed: {pair['shadow_error']}"
    parts = [field for field, same in (pair.get("agreement") or {}).items() if not same] + _flipped(pair)
    if pair.get("reply_similarity", 1.0) < 1.0:
        parts.append(f"reply (similarity {pair['reply_similarity']:.2f})")
    return ", ".join(parts)


def example_row(pair: dict[str, Any]) -> dict[str, Any]:
    champion, candidate = pair.get("primary") or {}, pair.get("shadow") or {}
    champion_reply, candidate_reply = _from_difference(champion.get("reply"), candidate.get("reply"), MESSAGE_CHARS)
    return {
        "id": pair.get("request_id") or pair.get("id") or "",
        "message": _short(pair.get("message"), MESSAGE_CHARS),
        "differs": _differs(pair),
        "champion_intent": champion.get("intent") or "",
        "candidate_intent": candidate.get("intent") or "",
        "champion_reply": champion_reply,
        "candidate_reply": candidate_reply,
        "_table": TABLE,
    }


def summarize(pairs: list[dict[str, Any]]) -> dict[str, Any]:
    """``metrics`` (every name in :data:`METRICS`, plus ``pairs`` and ``shadow_errors``) and ``examples``.

    A pair whose candidate failed counts as disagreeing on intent and entities and as similarity 0 (a crashing
    candidate must not look like an agreeing one), and is left out of the rates and latency, which need an
    answer. Pairs whose champion failed (``primary_error``, offline replay only) have nothing to compare with and
    are only counted. Metrics are None when no pair could measure them, which the gates read as inconclusive.
    """
    compared = [p for p in pairs if not p.get("primary_error")]
    answered = [p for p in compared if not p.get("shadow_error")]

    def agreement(field: str) -> float | None:
        measured = [p for p in compared if field in (p.get("agreement") or {}) or _failed_chain(p)]
        return _mean([float(bool((p.get("agreement") or {}).get(field))) for p in measured])

    similarity = [
        0.0 if _failed_chain(p) else float(p["reply_similarity"])
        for p in compared
        if "reply_similarity" in p or _failed_chain(p)
    ]
    # Measured only where the candidate has an embedding model; there, a failed candidate agrees with nothing.
    measured_semantic = any("reply_semantic_similarity" in p for p in compared)
    semantic = [
        0.0 if _failed_chain(p) else float(p["reply_semantic_similarity"])
        for p in compared
        if measured_semantic and ("reply_semantic_similarity" in p or _failed_chain(p))
    ]
    latency = [float(p["latency_diff_ms"]) for p in answered if p.get("latency_diff_ms") is not None]
    metrics = {
        "shadow_intent_agreement": agreement("intent"),
        "shadow_entity_agreement": agreement("entities"),
        "shadow_reply_similarity": _mean(similarity),
        "shadow_reply_semantic_similarity": _mean(semantic),
        "shadow_abstain_rate_diff": _diff(
            _rate(answered, "shadow", "abstained"), _rate(answered, "primary", "abstained")
        ),
        "shadow_escalation_rate_diff": _diff(
            _rate(answered, "shadow", "escalate"), _rate(answered, "primary", "escalate")
        ),
        "shadow_latency_diff_ms": round(statistics.median(latency), 3) if latency else None,
        "pairs": len(compared),
        "shadow_errors": sum(1 for p in compared if p.get("shadow_error")),
        "primary_errors": len(pairs) - len(compared),
    }
    worst = sorted((p for p in compared if _disagrees(p)), key=_badness)[:MAX_EXAMPLES]
    return {"metrics": metrics, "examples": [example_row(p) for p in worst]}


def _failed_chain(pair: dict[str, Any]) -> bool:
    """A chain pair whose candidate failed (the champion's side is recorded, so it was a chain answer)."""
    return bool(pair.get("shadow_error")) and "primary" in pair
