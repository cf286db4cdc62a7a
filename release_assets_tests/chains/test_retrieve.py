"""The retrieve binding: TF-IDF over the chain's knowledge base, deterministic, abstaining below min_score; and the
load-time checks that keep a retrieve or template step's declared output equal to what its binding emits."""

from pathlib import Path

import pytest
import yaml

from release_assets.chains import bindings
from release_assets.chains.knowledge import load_knowledge_base
from release_assets.chains.runner import ChainRequest, ChainRunner, KnowledgeBase
from release_assets.chains.schema import ChainSpecError, StepSpec
from release_assets.chains.spec import load_chain
from release_assets.evaluation.golden_inputs import GoldenSuiteError

FACTS = {
    "returns": "Unused items can be returned within 45 days of delivery.",
    "shipping": "Standard shipping takes 4-6 business days.",
    "gift_cards": "Gift cards never expire.",
    "rentals": "Tents and stoves can be rented from $15 per day.",
}
QUESTIONS = {"rentals": ["Can I borrow gear?"]}
ASKED = {
    "How long do I have to return my boots?": "returns",
    "When will my shipping arrive?": "shipping",
    "Does my gift card expire?": "gift_cards",
    "Could I borrow a tent?": "rentals",  # found through the fact's heading only
}


def _step(**extra) -> StepSpec:
    return StepSpec(id="find", template="q.j2", binding="retrieve", output={"fact": "str?", "score": "float"}, **extra)


def test_retrieve_finds_the_right_fact_and_is_deterministic():
    texts = list(ASKED)
    first = bindings.retrieve(_step(), texts, FACTS, QUESTIONS)
    assert [r["fact"] for r in first] == list(ASKED.values())
    assert all(0 < r["score"] <= 1 for r in first)
    bindings._fact_index.cache_clear()  # a fresh index (another process) answers identically
    assert bindings.retrieve(_step(), texts, FACTS, QUESTIONS) == first
    # One at a time (as latency is measured) or in a batch: the same answers.
    assert [bindings.retrieve(_step(), [t], FACTS, QUESTIONS)[0] for t in texts] == first


def test_retrieve_abstains_below_min_score_and_breaks_ties_by_kb_order():
    [unrelated] = bindings.retrieve(_step(min_score=0.2), ["xyzzy plugh"], FACTS)
    assert unrelated == {"fact": None, "score": 0.0}
    twins = {"b_first": "identical words", "a_second": "identical words"}
    assert bindings.retrieve(_step(), ["identical words"], twins)[0]["fact"] == "b_first"
    assert bindings.retrieve(_step(), ["anything"], {}) == [{"fact": None, "score": 0.0}]


def _chain(tmp_path: Path, steps: list[dict], evaluation: dict | None = None) -> Path:
    (tmp_path / "q.j2").write_text("{{ message }}\n")
    (tmp_path / "a.j2").write_text("{% if find.fact %}{{ kb[find.fact] }}{% else %}I could not find that.{% endif %}\n")
    spec = {"name": "tiny_qa", "steps": steps, **({"evaluation": evaluation} if evaluation else {})}
    (tmp_path / "chain.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return tmp_path


FIND = {
    "id": "find",
    "template": "q.j2",
    "binding": "retrieve",
    "min_score": 0.1,
    "output": {"fact": "str?", "score": "float"},
}
SAY = {"id": "say", "template": "a.j2", "binding": "template", "output": {"reply": "str"}}


def test_a_retrieve_chain_runs_without_any_model(tmp_path):
    chain = _chain(tmp_path, [FIND, SAY], {"intent": "find.fact", "reply": "say.reply"})
    spec, schemas = load_chain(chain, {})
    runner = ChainRunner(spec, schemas, {}, KnowledgeBase(FACTS, [], QUESTIONS))
    results = runner.run([ChainRequest("1", "Could I borrow a tent?"), ChainRequest("2", "xyzzy plugh")])
    assert all(r.format_valid for r in results), [r.errors for r in results]
    assert results[0].outputs["find"]["fact"] == "rentals"
    assert results[0].outputs["say"] == {"reply": FACTS["rentals"]}  # no `escalate`: the step does not declare it
    assert results[1].outputs["find"]["fact"] is None
    assert results[1].outputs["say"]["reply"] == "I could not find that."


@pytest.mark.parametrize(
    ("step", "message"),
    [
        ({**FIND, "output": {"fact": "str?"}}, r"output\.score: binding retrieve outputs \{fact: str, score: float\}"),
        ({**FIND, "output": {"fact": "str?", "score": "float", "rank": "int"}}, r"output\.rank: binding retrieve"),
        ({**FIND, "output": {"fact": "str", "score": "float"}}, r"output\.fact: below min_score there is no fact"),
        # retrieve:<model> names the release's embedding model; one the release does not have is refused.
        ({**FIND, "binding": "retrieve:kb_model"}, r"binding 'retrieve:kb_model' names no model of this release"),
        ({**SAY, "id": "find", "min_score": 0.2}, r"min_score: only a step with binding retrieve"),
        ({**SAY, "id": "find", "output": {"answer": "str"}}, r"output\.reply: binding template outputs"),
    ],
)
def test_a_step_whose_output_its_binding_cannot_fill_is_refused_at_load(tmp_path, step, message):
    chain = _chain(tmp_path, [step])
    with pytest.raises(ChainSpecError, match=r"chain\.yaml: steps\[0\] \(find\): " + message):
        load_chain(chain, {})


def test_knowledge_base_questions_must_name_facts(tmp_path):
    path = tmp_path / "kb.yaml"
    path.write_text('facts:\n  a: "A."\nquestions:\n  a: ["What is A?"]\n')
    assert load_knowledge_base(path).questions == {"a": ["What is A?"]}
    path.write_text('facts:\n  a: "A."\nquestions:\n  b: ["What is B?"]\n')
    with pytest.raises(GoldenSuiteError, match=r"kb\.yaml: questions\.b: no fact with that id"):
        load_knowledge_base(path)
    path.write_text('facts:\n  a: "A."\nquestions:\n  a: "What is A?"\n')
    with pytest.raises(GoldenSuiteError, match=r"kb\.yaml: questions: expected"):
        load_knowledge_base(path)
