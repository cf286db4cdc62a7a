"""The gates that need data rather than one number: each decides a verdict from a member's inputs.

Duplicates and leakage read rows, label coverage the split, drift the champion's reference profile, regression
the champion's model re-scored on the candidate's test split (a classifier's labels, a regression model's values),
slice gap the report's slices. Each is named by one entry of :data:`release_assets.promotion.gate_table.GATES`.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from release_assets.datasets.quality import duplicates_verdict, label_coverage_verdict, leakage_verdict
from release_assets.models.trainers import MODEL_KINDS as TRAINERS
from release_assets.models.trainers import predict_labels, task_of
from release_assets.promotion.drift import drift_verdict
from release_assets.promotion.inputs import MemberInputs
from release_assets.promotion.policy import Verdict
from release_assets.promotion.slices import slice_gap_verdict
from release_assets.promotion.stats import error_regression_verdict, regression_verdict

if TYPE_CHECKING:
    from release_assets.manifest import Threshold


def duplicates(member: str, inputs: MemberInputs, t: Threshold) -> Verdict:
    return duplicates_verdict(member, inputs.rows("raw"), int(t.max or 0))


class EmptySplit(ValueError):
    """A split side with no rows; the message names the source file a person would edit, not the build cache."""


def _require_sides(inputs: MemberInputs) -> None:
    for side in ("train", "test"):
        if not inputs.rows(side):
            raw = inputs.refs["raw"].summary if "raw" in inputs.refs else {}
            metrics = raw.get("metrics", {})
            counts = f"{metrics.get('rows', '?')} valid rows, {metrics.get('invalid_rows', '?')} invalid"
            raise EmptySplit(f"the {side} split is empty: {raw.get('source', 'the dataset')} has {counts}")


def leakage(member: str, inputs: MemberInputs, t: Threshold) -> Verdict:
    _require_sides(inputs)
    return leakage_verdict(member, inputs.rows("train"), inputs.rows("test"), int(t.max or 0))


def label_coverage(member: str, inputs: MemberInputs, t: Threshold) -> Verdict:
    _require_sides(inputs)
    splits = {side: inputs.rows(side) for side in ("train", "val", "test") if inputs.rows(side)}
    labels = sorted({r["label"] for rows in splits.values() for r in rows})
    return label_coverage_verdict(member, splits, int(t.min or 1), labels)


def drift(member: str, inputs: MemberInputs, t: Threshold) -> Verdict:
    current = json.loads((inputs.dir("split") / "profile.json").read_text())
    reference = None
    if inputs.champion is not None and inputs.champion.version is not None:
        champion_dir = inputs.champion.member_dir(f"{member}_split")
        if champion_dir is None:
            raise FileNotFoundError(f"champion {inputs.champion.version} has no member {member}_split")
        reference = json.loads((champion_dir / "profile.json").read_text())  # missing: an error, which holds
    return drift_verdict(member, reference, current, t.params)


def slice_gap(member: str, inputs: MemberInputs, t: Threshold) -> Verdict:
    summary = inputs.refs["report"].summary
    assert t.max is not None, "the gate table requires `max` (needs='max')"
    return slice_gap_verdict(
        member, summary["metrics"].get("accuracy"), summary["slices"], float(t.max), int(t.params.get("min_n", 10))
    )


def regression(member: str, inputs: MemberInputs, t: Threshold) -> Verdict:
    tolerance = -float(t.min or 0.0)
    model = inputs.refs["model"]
    champion = inputs.champion.member(member) if inputs.champion else None
    if champion is None:
        return regression_verdict(member, {}, None, {}, tolerance, model.digest, None)
    if champion["digest"] == model.digest:
        # The same model bytes as the champion (e.g. a prompt-only change): nothing to compare, nothing regressed.
        return Verdict(
            member,
            "regression",
            "passed",
            f"identical to champion {inputs.champion.version} (same model digest)",
            None,
            {"min": t.min, "max": None},
            champion=None,
        )

    test = inputs.rows("test")
    champion_predictor = TRAINERS[model.kind].load(inputs.champion.member_dir(member))
    if inputs.refs["report"].summary.get("task") == "regression":
        return _error_regression(member, inputs, t, champion["digest"], champion_predictor)
    champion_labels, _ = predict_labels(champion_predictor, test)
    report = json.loads((inputs.dir("report") / "report.json").read_text())
    return regression_verdict(
        member,
        report["predictions"],
        {r["id"]: label for r, label in zip(test, champion_labels, strict=True)},
        {r["id"]: r["label"] for r in test},
        tolerance,
        candidate_id=model.digest,
        champion_id=champion["digest"],
        seed=int(t.params.get("seed", 0)),
    )


def _error_regression(
    member: str, inputs: MemberInputs, t: Threshold, champion_digest: str, champion_predictor
) -> Verdict:
    """The regression gate of a regression model: the champion's values on the candidate's test rows, their
    absolute errors against the candidate's (from its report), compared by MAE with a paired bootstrap."""
    champion_task = task_of(champion_predictor)
    if champion_task != "regression":
        # The member's data changed task since the champion was published: it has no values to compare.
        return Verdict(
            member,
            "regression",
            "inconclusive",
            f"champion {inputs.champion.version} is a {champion_task} model: no MAE to compare the candidate's with",
            None,
            {"min": t.min, "max": None},
        )
    test = inputs.rows("test")
    values = champion_predictor.predict_values(test) if test else []
    report = json.loads((inputs.dir("report") / "report.json").read_text())
    return error_regression_verdict(
        member,
        report["predictions"],
        {r["id"]: float(v) for r, v in zip(test, values, strict=True)},
        {r["id"]: float(r["label"]) for r in test},
        -float(t.min or 0.0),
        candidate_id=inputs.refs["model"].digest,
        champion_id=champion_digest,
        seed=int(t.params.get("seed", 0)),
    )
