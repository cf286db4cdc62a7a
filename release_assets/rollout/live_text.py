"""Live text features beside the offline gate's: reference text redacted as live text is, and a per-message
out-of-vocabulary share with its one-sided drift test (``rollout/live_drift.py`` uses both).

The offline gate's vocabulary features (``text.oov_rate``, ``text.tokens``) are distances between two whole
samples; a row-by-row drift test needs one value per message, so this is the per-message form of the first.
Evidently's own text drift (a domain classifier over TF-IDF) took 8 to 13 s on 300 messages and did not flag the
helpdesk messages with an appended sentence that the offline gate fails, so vocabulary drift is measured here.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from release_assets.datasets.profile import tokens
from release_assets.promotion.drift import DEFAULT_THRESHOLDS


def redact_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Reference rows with their text redacted as ``serve``'s exporter redacts live inputs (order ids and e-mail
    addresses become ``[REDACTED]``); otherwise the redaction alone would look like drift in length and vocabulary."""
    from release_assets.serving.trace_export import Redactor

    text = Redactor.from_env().text
    return [{**r, "text": text(r["text"])} if isinstance(r.get("text"), str) else r for r in rows]


def oov_columns(reference: list[dict[str, Any]], live: list[dict[str, Any]]) -> tuple[list, list]:
    """Per message, the share of its tokens the reference vocabulary lacks. A reference message is scored
    leave-one-out (a token no other reference message has counts as unknown), so it is as new to the vocabulary as
    a live message is without drift; scoring it against a vocabulary that contains its own words would make every
    live window look drifted."""

    def toks(row: dict[str, Any]) -> list[str] | None:
        return tokens(row["text"]) if isinstance(row.get("text"), str) else None

    ref_toks = [toks(r) for r in reference]
    in_rows = Counter(t for ts in ref_toks if ts for t in set(ts))  # how many reference messages hold each token

    def share(ts: list[str] | None, unknown: Any) -> float | None:
        return None if ts is None else (sum(map(unknown, ts)) / len(ts) if ts else 0.0)

    return (
        [share(ts, lambda t: in_rows[t] <= 1) for ts in ref_toks],
        [share(toks(r), lambda t: t not in in_rows) for r in live],
    )


def oov_increase_test() -> Any:
    """A one-sided K-S test registered with Evidently for ``text.oov_rate``. Only more unknown words is drift, as in
    the offline gate (traffic repeating the reference's own messages has fewer), and, as there, only when the mean
    share rises by the offline gate's ``oov_increase`` floor too: the recorded helpdesk traffic has 3.4 points more
    unknown words than the training messages, which K-S alone calls drifted at p=1e-37 on 640 messages."""
    from evidently.legacy.calculations.stattests.registry import StatTest, register_stattest
    from evidently.legacy.core import ColumnType
    from scipy.stats import ks_2samp

    floor = DEFAULT_THRESHOLDS["oov_increase"]
    name = "oov_increase_ks_p_value"
    test = StatTest(name, f"one-sided K-S p_value, mean increase >= {floor:g}", [ColumnType.Numerical], 0.05)

    def increase(reference: Any, current: Any, feature_type: Any, threshold: float) -> tuple[float, bool]:
        p = float(ks_2samp(reference, current, alternative="greater").pvalue)  # "greater": current's values larger
        return p, bool(p <= threshold and float(current.mean()) - float(reference.mean()) >= floor)

    register_stattest(test, increase)  # by name, so the preset's per-column method can refer to it
    return test
