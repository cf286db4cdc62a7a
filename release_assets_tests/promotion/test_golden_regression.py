"""The golden_regression gate: a chain's per-case golden scores against the champion's on the same unchanged cases.

The fixtures are real golden cases (kbqa's held-out part) scored by evaluation/golden.score, written as a chain
evaluation writes them (cases.jsonl with per-case scores, the golden.jsonl it scored), for a candidate and a
champion whose replies differ as a prompt edit makes them differ.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from release_assets.artifacts import ArtifactRef
from release_assets.chains.runner import CaseResult
from release_assets.chains.schema import EvaluationSpec
from release_assets.evaluation.golden import score
from release_assets.evaluation.golden_inputs import load_cases
from release_assets.manifest import Threshold
from release_assets.promotion.golden_regression import GATE, golden_regression
from release_assets.promotion.inputs import MemberInputs
from release_assets.promotion.policy import threshold_verdict
from release_assets.promotion.stats import paired_mean_ci
from release_assets_tests.conftest import REPO

CASES = load_cases(REPO / "data" / "golden" / "kbqa.jsonl")
EVALUATION = EvaluationSpec(intent="retrieve.fact", reply="answer.reply")
GATE_MIN = Threshold(min=-0.03, on_inconclusive="warn")
# A prompt edit: every answer now opens with a pleasantry. Still the right fact, still the key phrase.
PREAMBLE = "Good question, thanks for asking! "


def _results(replies: list[str], facts: list[str | None]) -> list[CaseResult]:
    return [
        CaseResult(c["id"], outputs={"retrieve": {"fact": f, "score": 0.5}, "answer": {"reply": r}})
        for c, r, f in zip(CASES, replies, facts, strict=True)
    ]


def _write_evaluation(folder: Path, cases: list[dict], results: list[CaseResult], with_scores: bool = True) -> dict:
    """What evaluation/chain_evaluation.py writes: golden.jsonl, and cases.jsonl with each case's scores."""
    folder.mkdir(parents=True)
    summary = score(cases, results, EVALUATION)
    (folder / "golden.jsonl").write_text("".join(json.dumps(c) + "\n" for c in cases))
    rows = [
        {
            "id": r.id,
            "outputs": r.outputs,
            "errors": r.errors,
            **({"scores": summary["case_scores"][r.id]} if with_scores else {}),
        }
        for r in results
    ]
    (folder / "cases.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return summary["metrics"]


@dataclass
class Champion:
    version: str | None
    folder: Path | None

    def member_dir(self, name: str) -> Path | None:
        return self.folder if name == "chain_evaluation" else None


def _inputs(candidate: Path, champion: Champion | None) -> MemberInputs:
    ref = ArtifactRef(
        release="kbqa",
        member="chain_evaluation",
        kind="chain_evaluation",
        fingerprint="f",
        location=candidate.name,
        files={},
    )
    return MemberInputs(refs={"evaluation": ref}, store_root=candidate.parent, champion=champion)


def _champion_and_candidate(tmp_path: Path, candidate_replies: list[str], candidate_facts=None):
    facts = [c["expected"]["intent"] for c in CASES]
    references = [c["reference_reply"] for c in CASES]
    champion_metrics = _write_evaluation(tmp_path / "champion", CASES, _results(references, facts))
    candidate_metrics = _write_evaluation(
        tmp_path / "candidate", CASES, _results(candidate_replies, candidate_facts or facts)
    )
    return champion_metrics, candidate_metrics


def test_a_prompt_edit_that_loses_many_points_above_the_floor_is_held(tmp_path):
    champion, candidate = _champion_and_candidate(tmp_path, [PREAMBLE + c["reference_reply"] for c in CASES])
    # Above kbqa's floors (releases/kbqa.yaml): the fixed gates would publish it...
    for gate, floor in {"reply_similarity": 0.65, "required_facts": 0.62, "intent_accuracy": 0.62}.items():
        assert threshold_verdict("chain", gate, candidate[gate], Threshold(min=floor)).status == "passed"
    assert candidate["reply_similarity"] < champion["reply_similarity"] - 0.15  # ...though it lost over 15 points
    verdict = golden_regression(
        "chain", _inputs(tmp_path / "candidate", Champion("v1", tmp_path / "champion")), GATE_MIN
    )
    assert verdict.status == "failed" and verdict.holds_release, verdict.reason
    assert "Worse beyond noise: reply_similarity" in verdict.reason and "champion v1" in verdict.reason
    assert verdict.observed == pytest.approx(candidate["reply_similarity"] - champion["reply_similarity"])
    assert {e["metric"] for e in verdict.examples} == {"reply_similarity"} and len(verdict.examples) == 20
    # intent and facts are unchanged: compared, and not worse
    assert "intent_accuracy 1.0000 vs 1.0000" in verdict.reason and "required_facts 1.0000" in verdict.reason


def test_the_same_answers_pass_and_noise_does_not_fail(tmp_path):
    references = [c["reference_reply"] for c in CASES]
    _champion_and_candidate(tmp_path, references)
    verdict = golden_regression(
        "chain", _inputs(tmp_path / "candidate", Champion("v1", tmp_path / "champion")), GATE_MIN
    )
    assert verdict.status == "passed" and verdict.observed == 0.0, verdict.reason
    # One case lost out of 39 is a 2.6-point drop whose CI reaches above the tolerance: noise, not a regression.
    facts = [c["expected"]["intent"] for c in CASES]
    wrong = facts.copy()
    wrong[0] = "no_such_fact"
    other = tmp_path / "other"
    _champion_and_candidate(other, references, wrong)
    verdict = golden_regression("chain", _inputs(other / "candidate", Champion("v1", other / "champion")), GATE_MIN)
    assert verdict.status == "passed", verdict.reason
    assert "intent_accuracy 0.9744 vs 1.0000" in verdict.reason and "McNemar" in verdict.reason


def test_a_wrong_fact_on_many_cases_fails_intent_and_the_lower_is_better_rate_points_the_right_way(tmp_path):
    facts = [c["expected"]["intent"] for c in CASES]
    wrong = [("no_such_fact" if i % 3 == 0 else f) for i, f in enumerate(facts)]  # a third of the cases
    _champion_and_candidate(tmp_path, [c["reference_reply"] for c in CASES], wrong)
    verdict = golden_regression(
        "chain", _inputs(tmp_path / "candidate", Champion("v1", tmp_path / "champion")), GATE_MIN
    )
    assert verdict.status == "failed" and "Worse beyond noise: intent_accuracy" in verdict.reason, verdict.reason


def test_no_champion_too_few_unchanged_cases_or_no_scores_is_inconclusive(tmp_path):
    references = [c["reference_reply"] for c in CASES]
    _champion_and_candidate(tmp_path, references)
    candidate = tmp_path / "candidate"
    for champion in (None, Champion(None, None)):
        verdict = golden_regression("chain", _inputs(candidate, champion), GATE_MIN)
        assert verdict.status == "inconclusive" and "no champion" in verdict.reason
    # A champion evaluated on another version of the suite: edited cases are not paired (here: all but 20).
    edited = tmp_path / "edited"
    changed = [{**c, "must_contain": ["something else"]} if i >= 20 else c for i, c in enumerate(CASES)]
    _write_evaluation(edited, changed, _results(references, [c["expected"]["intent"] for c in CASES]))
    verdict = golden_regression("chain", _inputs(candidate, Champion("v1", edited)), GATE_MIN)
    assert verdict.status == "inconclusive" and "share only 20 unchanged golden cases" in verdict.reason
    # A champion published before per-case scores existed.
    old = tmp_path / "old"
    _write_evaluation(old, CASES, _results(references, [c["expected"]["intent"] for c in CASES]), with_scores=False)
    verdict = golden_regression("chain", _inputs(candidate, Champion("v0", old)), GATE_MIN)
    assert verdict.status == "inconclusive" and "no per-case scores" in verdict.reason


def test_paired_mean_ci_is_paired_and_deterministic():
    rng = np.random.default_rng(1)
    base = rng.uniform(0, 1, 200)
    diff, low, high = paired_mean_ci(base - 0.05, base)  # the same rows, each 0.05 lower: no row noise at all
    assert diff == pytest.approx(-0.05) and low == pytest.approx(-0.05) and high == pytest.approx(-0.05)
    assert paired_mean_ci(base, base[::-1], seed=3) == paired_mean_ci(base, base[::-1], seed=3)
    with pytest.raises(ValueError, match="equal, non-empty"):
        paired_mean_ci([], [])
    assert GATE == "golden_regression"
