"""The ``judge_model`` member kind's manifest entry: the trained judge (``models/judge_model.py``), built from the
files it names rather than from a dataset member's split: the hand-labelled set (its `train` half; the `heldout`
half is what the judge's calibration is scored on) and the golden suites whose facts its generated rows come from
(`generated_from`).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from release_assets.manifest.models import ModelConfig, _Strict


class GoldenFacts(_Strict):
    """A golden suite and the knowledge base its facts come from."""

    golden: str
    knowledge_base: str


class JudgeModel(ModelConfig):
    from_data: ClassVar[bool] = False  # trained from the files below, not from a dataset member's split
    kind: Literal["judge_model"]
    data: None = None
    labelled: str  # e.g. data/judge/labelled.jsonl: rows with `split` train / heldout, verdicts per rubric
    # The golden suites whose facts its generated training rows come from (models/judge_negatives.py).
    generated_from: list[GoldenFacts] = Field(min_length=1)

    @property
    def upstream(self) -> tuple[str, ...]:
        return ()
