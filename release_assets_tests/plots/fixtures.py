"""Small inputs for every plot: what each stage measured, made up so that every plot has something to show."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from release_assets.datasets.profile import build_profile
from release_assets.manifest.rollout import RolloutSpec
from release_assets.plots import chain, gates, model, triage
from release_assets.plots.render import Plot
from release_assets.promotion.drift import drift_verdict
from release_assets.promotion.slices import slice_gap_verdict
from release_assets.rollout.canary_plot import canary_plot

LABELS = ["cancel", "refund", "status"]
WORDS = ["order", "parcel", "refund", "money", "late", "where", "cancel", "please", "thanks", "box", "card"]


def classifier_rows(n: int = 60, binary: bool = False) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    rng = random.Random(7)
    labels = ["no", "yes"] if binary else LABELS
    expected = [labels[i % len(labels)] for i in range(n)]
    predicted = [e if rng.random() < 0.75 else rng.choice(labels) for e in expected]
    confidence = [round(0.4 + 0.6 * rng.random(), 4) for _ in expected]
    matrix = [
        [sum(1 for e, p in zip(expected, predicted, strict=True) if (e, p) == (a, b)) for b in labels] for a in labels
    ]
    per_class = {
        a: {"recall": matrix[i][i] / max(sum(matrix[i]), 1), "support": sum(matrix[i]), "precision": 0.0, "f1": 0.0}
        for i, a in enumerate(labels)
    }
    summary = {
        "task": "binary" if binary else "multiclass",
        "labels": labels,
        "confusion": matrix,
        "per_class": per_class,
        "metrics": {"roc_auc": 0.81, "pr_auc": 0.77} if binary else {},
    }
    rows: dict[str, list[Any]] = {"expected": expected, "predicted": predicted, "confidence": confidence}
    if binary:
        rows["positive"] = [e == "yes" for e in expected]
        rows["score"] = [round(min(1.0, 0.6 * (e == "yes") + 0.5 * rng.random()), 4) for e in expected]
    return summary, rows


def regression_rows(n: int = 80) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    rng = random.Random(3)
    expected = [round(100 + 10 * rng.gauss(0, 1), 3) for _ in range(n)]
    return {"task": "regression", "metrics": {}}, {
        "expected": expected,
        "predicted": [round(e + rng.gauss(0, 3), 3) for e in expected],
    }


def message_rows(n: int, channel: str, extra: str = "", seed: int = 0) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [
        {
            "id": f"m{i}",
            "text": " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 9))) + extra,
            "label": LABELS[i % 3],
            "channel": channel if i % 4 else "chat",
            "length": "long" if extra else "short",
            "register": "formal",
        }
        for i in range(n)
    ]


def drift_profiles() -> tuple[dict[str, Any], dict[str, Any]]:
    """The champion's messages, and this build's: mostly email, every one longer. Channel and length drift."""
    reference = build_profile(message_rows(300, "chat", seed=1))
    current = build_profile(message_rows(300, "email", " kindly find the warehouse paperwork attached", seed=2))
    return reference, current


def failing_drift():
    reference, current = drift_profiles()
    return drift_verdict("messages", reference, current), reference, current


SLICES = {
    "channel": {"email": {"accuracy": 0.92, "n": 120}, "chat": {"accuracy": 0.70, "n": 100}},
    "length": {"short": {"accuracy": 0.5, "n": 4}, "long": {"accuracy": 0.89, "n": 60}},
}


def failing_slice_gap():
    return slice_gap_verdict("intent_model", 0.90, SLICES, max_gap=0.05)


def slice_gap_verdict_passing():
    return slice_gap_verdict("intent_model", 0.90, SLICES, max_gap=0.5)


def chain_cases() -> list[dict[str, Any]]:
    rng = random.Random(5)
    out = []
    for i in range(40):
        expected = LABELS[i % 3]
        got = expected if rng.random() < 0.7 else rng.choice(LABELS)
        out.append({"expected": expected, "got": got, "abstained": rng.random() < (0.6 if got != expected else 0.1)})
    return out


SPEC = RolloutSpec.model_validate(
    {
        "steps": [10, 50, 100],
        "bake_s": 60,
        "min_requests": 20,
        "budgets": {"error_rate": {"max_increase": 0.02}, "p99_ms": {"max_increase": 25, "max_ratio": 1.5}},
    }
)


def _analysis(percent: int, nxt: int | None, decision: str, error: float, p99: float) -> dict[str, Any]:
    kpis = [
        {"name": "error_rate", "canary": error, "champion": 0.01, "budget": "", "breached": error - 0.01 > 0.02},
        {"name": "p99_ms", "canary": p99, "champion": 120.0, "budget": "", "breached": False},
        {"name": "abstain_rate", "canary": 0.1, "champion": 0.1, "budget": "no budget", "breached": None},
    ]
    return {"decision": decision, "percent": percent, "next_percent": nxt, "kpis": kpis}


def canary_events() -> list[dict[str, Any]]:
    """A canary's ledger: started at 10%, advanced to 50%, breached, rolled back."""
    t0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def at(minutes: float) -> str:
        return (t0 + timedelta(minutes=minutes)).isoformat()

    return [
        {"action": "promoted", "time": at(-60), "to_version": "v1"},
        {"action": "canary_started", "time": at(0), "to_version": "v2", "rollout": {"steps": [10, 50, 100]}},
        {"action": "canary_advanced", "time": at(11), "analysis": _analysis(10, 50, "advance", 0.012, 130.0)},
        {"action": "canary_breach", "time": at(22), "analysis": _analysis(50, 100, "breach", 0.05, 150.0)},
        {
            "action": "rolled_back",
            "scope": "canary",
            "time": at(23),
            "analysis": _analysis(50, 100, "breach", 0.06, 160.0),
        },
    ]


TRIAGE = {
    "baseline": "1a2b3c4d",
    "candidate": "this build",
    "metrics": [
        {
            "metric": "intent_accuracy",
            "baseline": 0.92,
            "candidate": 0.85,
            "change": -0.07,
            "shares": {"intent_model": -0.06, "chain": -0.012, "golden": 0.0},
            "interaction": 0.002,
        },
        {
            "metric": "reply_similarity",
            "baseline": 0.61,
            "candidate": 0.64,
            "change": 0.03,
            "shares": {"intent_model": 0.0, "chain": 0.03, "golden": 0.0},
            "interaction": 0.0,
        },
        {
            "metric": "entity_f1",
            "baseline": 0.9,
            "candidate": 0.9,
            "change": 0.0,
            "shares": {"intent_model": 0.0, "chain": 0.0, "golden": 0.0},
            "interaction": 0.0,
        },
    ],
}

SHADOW = [
    {"gate": "shadow_intent_agreement", "observed": 0.93, "min": 0.95, "max": None, "status": "failed"},
    {"gate": "shadow_reply_similarity", "observed": 0.81, "min": 0.7, "max": None, "status": "passed"},
    {"gate": "shadow_latency_diff_ms", "observed": 4.2, "min": None, "max": 20.0, "status": "passed"},
]


def every_plot() -> list[Plot]:
    """One of each plot this package draws, from the inputs above."""
    verdict, reference, current = failing_drift()
    drifted = [r for r in verdict.examples if r["drifted"]]
    features = [
        {"feature": r["feature"], "caption": r["feature"], **s}
        for r in drifted
        if (s := gates.drift_series(reference, current, r["feature"])) is not None
    ]
    slices = failing_slice_gap()
    plots = [
        *model.report_plots(*classifier_rows()),
        *model.report_plots(*classifier_rows(binary=True)),
        *model.report_plots(*regression_rows()),
        gates.drift(features),
        gates.slice_gap(slices.examples, 0.90, 0.05),
        gates.gate_bars(SHADOW, "live shadow", name="shadow_gates"),
        *chain.chain_plots(chain_cases(), abstains=True),
        canary_plot("helpdesk", canary_events(), SPEC),
        *triage.waterfalls(TRIAGE),
    ]
    assert all(p is not None for p in plots)
    return [p for p in plots if p is not None]
