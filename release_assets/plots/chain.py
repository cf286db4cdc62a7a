"""A chain evaluation's plots: accuracy per expected intent, how the cases split between right and wrong, acted on
and asked about (a wrong intent acted on is the costly mistake: ``confident_wrong_rate``), and the judge's scores."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from release_assets.plots.render import BAD, GOOD, MUTED, Plot, draw, kept, shorten

TITLES = {
    "intent_accuracy": "Intent accuracy per expected intent",
    "abstain_split": "Right or wrong, acted on or asked",
    "judge_scores": "The judge's scores of the golden replies",
}
OUTCOMES = ("right, acted", "right, asked", "wrong, asked", "wrong, acted")
COLOURS = (GOOD, "#98df8a", MUTED, BAD)
MAX_INTENTS = 16


def outcome(case: dict[str, Any]) -> str:
    """One case (``expected``, ``got`` intents, ``abstained``) as one of OUTCOMES."""
    right = case["got"] == case["expected"]
    return f"{'right' if right else 'wrong'}, {'asked' if case.get('abstained') else 'acted'}"


def intent_accuracy(cases: Sequence[dict[str, Any]]) -> Plot | None:
    """Per expected intent, the share of its cases in each outcome (stacked), its accuracy in the label."""
    intents = sorted({str(c["expected"]) for c in cases})
    if not intents:
        return None
    table = np.zeros((len(intents), len(OUTCOMES)))
    for c in cases:
        table[intents.index(str(c["expected"])), OUTCOMES.index(outcome(c))] += 1
    totals = table.sum(axis=1)
    share = table / totals[:, None]
    title = "Intent accuracy per expected intent"
    if len(intents) > MAX_INTENTS:  # (a chain deciding among many values: the least accurate ones)
        keep = sorted(sorted(range(len(intents)), key=lambda i: (share[i, 0] + share[i, 1], intents[i]))[:MAX_INTENTS])
        title = f"Intent accuracy: the {MAX_INTENTS} least accurate of {len(intents)} intents"
        intents, table, totals, share = [intents[i] for i in keep], table[keep], totals[keep], share[keep]

    def paint(fig: Any) -> None:
        ax = fig.add_subplot()
        y = np.arange(len(intents))
        left = np.zeros(len(intents))
        for j, (name, colour) in enumerate(zip(OUTCOMES, COLOURS, strict=True)):
            if table[:, j].any():
                ax.barh(y, share[:, j], left=left, color=colour, label=name, height=0.7)
            left += share[:, j]
        right = share[:, 0] + share[:, 1]
        ax.set_yticks(
            y, [f"{shorten(k, 16)} {r:.0%} (n={int(n)})" for k, r, n in zip(intents, right, totals, strict=True)]
        )
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.set_xlabel("share of the intent's golden cases")
        ax.set_title(title)
        ax.legend(loc="upper left", bbox_to_anchor=(0.0, -0.18), ncols=2, fontsize=6, frameon=False)
        fig.tight_layout()

    return draw("intent_accuracy", TITLES["intent_accuracy"], paint, size=(5.0, max(2.8, 1.6 + 0.25 * len(intents))))


def abstain_split(cases: Sequence[dict[str, Any]]) -> Plot | None:
    if not cases:
        return None
    counts = [sum(outcome(c) == o for c in cases) for o in OUTCOMES]
    n = len(cases)

    def paint(fig: Any) -> None:
        ax = fig.add_subplot()
        x = np.arange(len(OUTCOMES))
        ax.bar(x, [k / n for k in counts], color=COLOURS)
        for i, k in enumerate(counts):
            ax.text(i, k / n, f"{k}\n{k / n:.1%}", ha="center", va="bottom", fontsize=7)
        ax.set_xticks(x, OUTCOMES)
        ax.set_ylim(0, 1.15)
        ax.set_ylabel("share of golden cases")
        wrong = counts[2] + counts[3]
        asked = counts[1] + counts[2]
        ax.set_title(
            f"{n} golden cases: abstain rate {asked / n:.1%}, confident-wrong rate {counts[3] / n:.1%}"
            + (f"\n{counts[2]} of the {wrong} wrong intents asked instead of acting" if wrong else "")
        )
        fig.tight_layout()

    return draw("abstain_split", TITLES["abstain_split"], paint)


def chain_plots(cases: Sequence[dict[str, Any]], abstains: bool) -> list[Plot]:
    """``cases``: ``{"expected", "got", "abstained"}`` per golden case whose intent is mapped; ``abstains``: whether
    the chain maps an abstain decision (else every case counts as acted on, and the split is not drawn)."""
    return kept([intent_accuracy(cases), abstain_split(cases) if abstains else None])


def judge_scores(scores: Sequence[float], judge: dict[str, Any]) -> Plot | None:
    """Histogram of each golden reply's judge score (its lowest rubric score), with each rubric's pass threshold:
    a pile-up just above a threshold is a gate that passes by little."""
    if not scores:
        return None
    thresholds = judge.get("thresholds", {})

    def paint(fig: Any) -> None:
        ax = fig.add_subplot()
        bins = np.linspace(0, 1, 21)
        values = np.asarray(scores, dtype=float)
        below = min(thresholds.values(), default=0.5)
        ax.hist(values[values < below], bins=bins, color=BAD, label="below a threshold")
        ax.hist(values[values >= below], bins=bins, color=GOOD, label="at or above")
        by_value: dict[float, list[str]] = {}
        for rubric, t in sorted(thresholds.items()):
            by_value.setdefault(t, []).append(rubric)
        for k, (t, rubrics) in enumerate(sorted(by_value.items())):  # one line per threshold, its rubrics named once
            ax.axvline(t, color=MUTED, linestyle="--", linewidth=1)
            label = f" threshold {t:g}: {', '.join(rubrics)}"
            ax.text(t, ax.get_ylim()[1] * (0.95 - 0.07 * k), label, fontsize=6, va="top", color=MUTED)
        ax.set_xlim(0, 1)
        ax.set_xlabel("judge score (lowest rubric)")
        ax.set_ylabel("golden replies")
        rate = judge.get("pass_rate")
        ax.set_title(
            f"{len(values)} replies judged by {judge.get('backend', 'the judge')}"
            + (f": {rate:.1%} pass every rubric" if rate is not None else "")
        )
        ax.legend(fontsize=6, frameon=False, loc="upper left")
        fig.tight_layout()

    return draw("judge_scores", TITLES["judge_scores"], paint)
