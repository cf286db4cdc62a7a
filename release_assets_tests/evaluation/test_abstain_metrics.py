"""abstain_rate and confident_wrong_rate in golden.score(), and the confident_wrong_rate gate failing when a chain
acts on wrong intents instead of asking."""

import shutil
from pathlib import Path

import pytest

from release_assets.artifacts import ArtifactRef
from release_assets.chains.knowledge import load_knowledge_base
from release_assets.chains.runner import CaseResult, ChainRunner
from release_assets.chains.schema import EvaluationSpec
from release_assets.chains.spec import load_chain
from release_assets.evaluation.golden import score
from release_assets.evaluation.golden_inputs import to_requests
from release_assets.manifest import load_manifest
from release_assets.promotion.gates import MemberInputs, member_verdicts
from release_assets_tests.chains.test_abstain import GuessingIntents
from release_assets_tests.fakes import PixelSumDigits

REPO = Path(__file__).resolve().parents[2]
MAPPED = EvaluationSpec(intent="c.intent", reply="r.reply", abstained="r.abstained")


def _case(i: int, intent: str, **expected) -> dict:
    return {"id": str(i), "message": "m", "expected": {"intent": intent, **expected}}


def _result(i: int, intent: str, abstained: bool) -> CaseResult:
    return CaseResult(str(i), outputs={"c": {"intent": intent}, "r": {"reply": "x", "abstained": abstained}})


# (expected intent, decided intent, abstained): one of each kind of outcome
OUTCOMES = [
    ("refund", "refund", False),  # acted, right
    ("refund", "complaint", False),  # acted, wrong: the confident wrong action
    ("other", "complaint", True),  # asked instead of acting on a wrong intent: not counted as wrong
    ("refund", "refund", True),  # asked although right: costs coverage, not counted as wrong
]


def test_rates_over_all_cases():
    cases = [_case(i, e) for i, (e, _, _) in enumerate(OUTCOMES)]
    results = [_result(i, d, a) for i, (_, d, a) in enumerate(OUTCOMES)]
    m = score(cases, results, MAPPED)["metrics"]
    assert m["abstain_rate"] == 2 / 4
    assert m["confident_wrong_rate"] == 1 / 4
    assert m["intent_accuracy"] == 2 / 4  # unchanged by abstaining: the intent is still scored


def test_confident_wrong_needs_the_intent_and_both_need_the_abstained_mapping():
    cases, results = [_case(0, "refund")], [_result(0, "complaint", False)]
    m = score(cases, results, EvaluationSpec(reply="r.reply", abstained="r.abstained"))["metrics"]
    assert m["abstain_rate"] == 0.0 and "confident_wrong_rate" not in m
    m = score(cases, results, EvaluationSpec(intent="c.intent", reply="r.reply"))["metrics"]
    assert "abstain_rate" not in m and "confident_wrong_rate" not in m


def test_a_case_whose_reply_step_failed_did_not_abstain():
    cases = [_case(0, "refund")]
    results = [CaseResult("0", outputs={"c": {"intent": "complaint"}}, errors={"r": "broken"})]
    m = score(cases, results, MAPPED)["metrics"]
    assert m["abstain_rate"] == 0.0 and m["confident_wrong_rate"] == 1.0


def test_the_worst_cases_say_what_was_acted_on_and_what_should_have_been_asked():
    cases = [_case(0, "other", abstain=True), _case(1, "refund"), _case(2, "order_status", abstain=True)]
    results = [_result(0, "other", False), _result(1, "complaint", False), _result(2, "order_status", True)]
    summary = score(cases, results, MAPPED)
    problems = {e["id"]: e["problems"] for e in summary["examples"]}
    assert problems == {"0": "acted, should have asked", "1": "intent complaint (acted on it)"}
    assert summary["failed_cases"] == 2


# The gate, on the shipped helpdesk manifest: a chain forced never to doubt its intent (min_confidence: 0) acts
# on the guesses it would otherwise have asked about, and the release is held.

CASES = [
    {"id": "1", "message": "hello", "expected": {"intent": "other", "entities": {}, "abstain": True}},
    {"id": "2", "message": "Hi there!", "expected": {"intent": "other", "entities": {}, "abstain": True}},
    {"id": "3", "message": "I want a refund for 12345.", "expected": {"intent": "refund", "entities": {}}},
    {"id": "4", "message": "is there a warranty?", "expected": {"intent": "product_question", "entities": {}}},
    {"id": "5", "message": "my password fails", "expected": {"intent": "account_access", "entities": {}}},
]


def _gate(chain_dir: Path, tmp_path: Path):
    predictors = {"intent_model": GuessingIntents(), "vision_model": PixelSumDigits()}
    spec, schemas = load_chain(chain_dir, {k: v.labels for k, v in predictors.items()})
    kb = load_knowledge_base(REPO / "data" / "support" / "knowledge_base.yaml")
    summary = score(CASES, ChainRunner(spec, schemas, predictors, kb).run(to_requests(CASES)), spec.evaluation)
    manifest = load_manifest(REPO / "releases" / "helpdesk.yaml")
    ref = ArtifactRef(
        release="helpdesk",
        member="chain",
        kind="chain_evaluation",
        fingerprint="f",
        location="x",
        files={},
        summary=summary,
    )
    verdicts = member_verdicts(manifest, "chain", MemberInputs(refs={"evaluation": ref}, store_root=tmp_path))
    return summary["metrics"], next(v for v in verdicts if v.gate == "confident_wrong_rate")


@pytest.fixture
def chain_dir(tmp_path) -> Path:
    shutil.copytree(REPO / "prompts" / "helpdesk", tmp_path / "helpdesk")
    return tmp_path / "helpdesk"


def test_the_shipped_chain_asks_and_passes_the_gate(chain_dir, tmp_path):
    metrics, verdict = _gate(chain_dir, tmp_path)
    assert metrics["confident_wrong_rate"] == 0.0 and metrics["abstain_rate"] == 2 / 5
    assert verdict.status == "passed", verdict.reason


def test_a_chain_that_never_doubts_acts_wrongly_and_fails_the_gate(chain_dir, tmp_path):
    path = chain_dir / "chain.yaml"
    path.write_text(path.read_text().replace("min_confidence: model", "min_confidence: 0"))
    metrics, verdict = _gate(chain_dir, tmp_path)
    assert metrics["confident_wrong_rate"] == 2 / 5  # both greetings escalated as complaints
    assert verdict.status == "failed"
    assert verdict.reason.startswith("confident_wrong_rate = 0.4 violates the gate <=")
    assert any(e["message"] == "hello" and "acted" in e["problems"] for e in verdict.examples)
