"""Live text beside the offline gate's: reference text redacted as live text is (``rollout/live_drift.py`` judges
with the gate's own tests), and a per-message out-of-vocabulary share, the per-row form of the gate's
``text.oov_rate`` that Evidently's report draws beside the verdict.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from release_assets.datasets.profile import tokens


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
