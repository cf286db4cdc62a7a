"""A gate's verdict: the one shape every gate decision takes, wherever it is decided (the data and model stages,
the promotion gates, the release unit) and however it is read back (a published manifest's ``gates``, checked
again before a version may serve).

Plain data, below every stage that decides a gate; the decisions themselves are in ``promotion/``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Status = Literal["passed", "failed", "inconclusive"]


@dataclass(frozen=True)
class Verdict:
    member: str
    gate: str
    status: Status
    reason: str
    observed: float | None
    threshold: dict[str, float | None]
    severity: Literal["block", "warn"] = "block"
    champion: float | None = None
    examples: list[dict[str, Any]] = field(default_factory=list)
    on_inconclusive: Literal["hold", "warn"] = "hold"

    @property
    def holds_release(self) -> bool:
        """Failed blocking gates hold a release, and so do undecidable ones unless the manifest says to pass them
        with a warning (a first release has no champion to compare with); ``warn`` gates only report."""
        if self.severity != "block" or self.status == "passed":
            return False
        return self.status == "failed" or self.on_inconclusive == "hold"

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "examples"}
