import shutil
from pathlib import Path

import pytest

from release_assets.chains.knowledge import load_knowledge_base
from release_assets.chains.runner import ChainRequest, ChainRunner
from release_assets.chains.spec import load_chain
from release_assets.evaluation.golden import score
from release_assets_tests.fakes import KeywordIntents, PixelSumDigits

REPO = Path(__file__).resolve().parents[2]


def _runner(chain_dir: Path) -> ChainRunner:
    predictors = {"intent_model": KeywordIntents(), "vision_model": PixelSumDigits()}
    spec, schemas = load_chain(chain_dir, {k: v.labels for k, v in predictors.items()})
    kb = load_knowledge_base(REPO / "data" / "support" / "knowledge_base.yaml")
    return ChainRunner(spec, schemas, predictors, kb)


@pytest.fixture
def chain_dir(tmp_path) -> Path:
    shutil.copytree(REPO / "prompts" / "helpdesk", tmp_path / "helpdesk")
    return tmp_path / "helpdesk"


def _image(digit: int) -> list[int]:
    return [digit] + [0] * 63


def test_chain_classifies_extracts_and_replies_with_facts(chain_dir):
    runner = _runner(chain_dir)
    [res] = runner.run(
        [ChainRequest("a", "I want a refund of $49.99 for order 12345, mail me at jo.doe@example.com on March 3")]
    )
    assert res.format_valid, res.errors
    assert res.outputs["classify_intent"]["intent"] == "refund"
    entities = res.outputs["extract_entities"]
    assert entities["order_id"] == "12345"
    assert entities["amount"] == 49.99
    assert entities["email"] == "jo.doe@example.com"
    assert entities["date"] == "March 3"
    reply = res.outputs["generate_response"]["reply"]
    assert "30 days" in reply and "12345" in reply
    assert res.outputs["generate_response"]["escalate"] is False


def test_attachment_is_read_by_the_vision_binding_and_complaints_escalate(chain_dir):
    runner = _runner(chain_dir)
    [res] = runner.run(
        [
            ChainRequest(
                "b",
                "This is unacceptable, the order number is in the photo",
                [_image(d) for d in (4, 0, 7, 1, 9)],
            )
        ]
    )
    assert res.outputs["extract_entities"]["order_id"] == "40719"
    assert "40719" in res.outputs["generate_response"]["reply"]
    assert res.outputs["generate_response"]["escalate"] is True


def test_schema_violation_is_a_format_failure_not_a_crash(chain_dir):
    text = (chain_dir / "chain.yaml").read_text().replace("amount: float?", "amount: int?")
    (chain_dir / "chain.yaml").write_text(text)
    results = _runner(chain_dir).run([ChainRequest("c", "refund $12.50 please"), ChainRequest("d", "refund please")])
    assert not results[0].format_valid
    assert "extract_entities" in results[0].errors and "amount" in results[0].errors["extract_entities"]
    assert results[1].format_valid


def test_render_error_is_recorded_per_case(chain_dir):
    (chain_dir / "responses" / "other.j2").write_text("{{ kb.no_such_fact }}\n")
    [res] = _runner(chain_dir).run([ChainRequest("e", "what are your opening hours")])
    assert "generate_response" in res.errors and "no_such_fact" in res.errors["generate_response"]


def test_score_counts_each_failure_kind(chain_dir):
    runner = _runner(chain_dir)
    cases = [
        {
            "id": "1",
            "message": "refund for 12345",
            "expected": {"intent": "refund", "entities": {"order_id": "12345"}},
            "must_contain": ["30 days"],
            "must_not_contain": ["guarantee"],
        },
        {
            "id": "2",
            "message": "where is 54321",  # with its order id: order_status acts (and names the tracking link)
            "expected": {"intent": "cancel_order", "entities": {"order_id": "54321"}},
            "must_contain": ["until they ship"],
            "must_not_contain": ["tracking link"],
        },
    ]
    results = runner.run([ChainRequest(c["id"], c["message"]) for c in cases])
    summary = score(cases, results, runner.spec.evaluation)
    m = summary["metrics"]
    assert m["format_valid"] == 1.0
    assert m["intent_accuracy"] == 0.5
    assert m["required_facts"] == 0.5
    assert m["forbidden_absent"] == 0.5
    assert m["entity_f1"] == 1.0
    assert summary["examples"][0]["id"] == "2"
    assert "intent order_status" in summary["examples"][0]["problems"]
