"""The retrieve binding: TF-IDF or BM25 over the chain's knowledge base, deterministic, abstaining below min_score
or within min_margin of a second fact; the load-time checks of its `retrieval:` mapping; and the checks that keep
a retrieve or template step's declared output equal to what its binding emits. (Embedding and hybrid retrieval,
which need the embedding model, are tested in models/test_embedding.py.)"""

from pathlib import Path

import numpy as np
import pytest
import yaml

from release_assets.chains import bindings, retrieval
from release_assets.chains.bm25 import BM25Index, tokens
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
    retrieval._tfidf_index.cache_clear()  # a fresh index (another process) answers identically
    assert bindings.retrieve(_step(), texts, FACTS, QUESTIONS) == first
    # One at a time (as latency is measured) or in a batch: the same answers.
    assert [bindings.retrieve(_step(), [t], FACTS, QUESTIONS)[0] for t in texts] == first


def test_retrieve_abstains_below_min_score_and_breaks_ties_by_kb_order():
    [unrelated] = bindings.retrieve(_step(min_score=0.2), ["xyzzy plugh"], FACTS)
    assert unrelated == {"fact": None, "score": 0.0}
    twins = {"b_first": "identical words", "a_second": "identical words"}
    assert bindings.retrieve(_step(), ["identical words"], twins)[0]["fact"] == "b_first"
    assert bindings.retrieve(_step(), ["anything"], {}) == [{"fact": None, "score": 0.0}]


def test_bm25_finds_the_fact_that_shares_the_questions_rare_word_and_abstains_on_none():
    step = _step(min_score=0.1, retrieval={"method": "bm25"})
    found = bindings.retrieve(step, ["Are the returned boots still OK?", "xyzzy plugh"], FACTS, QUESTIONS)
    assert found[0]["fact"] == "returns"  # "returned" and "returns" share the stem "return"
    assert 0.1 < found[0]["score"] < 1
    assert found[1] == {"fact": None, "score": 0.0}  # no indexed word: nothing to go on, so it abstains
    # Normalised by what the question's known words could score at most, so a longer question is not favoured.
    index = BM25Index(["gift cards never expire", "tents can be rented"])
    short, longer = index.scores(["gift card", "gift card gift card expire expire"])
    assert short[0] < 1 and longer[0] < 1 and short[1] == longer[1] == 0.0
    assert tokens("Can I return_window the Boots?") == ["return", "window", "boot"]


def test_a_question_between_two_facts_abstains_within_min_margin():
    twins = {"first": "gift cards never expire", "second": "gift cards can be topped up"}
    asked = ["gift cards"]  # scores both facts nearly alike
    sure = bindings.retrieve(_step(retrieval={"method": "bm25"}), asked, twins)[0]
    assert sure["fact"] is not None
    step = _step(retrieval={"method": "bm25", "min_margin": 0.2})
    assert bindings.retrieve(step, asked, twins) == [{"fact": None, "score": sure["score"]}]


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


@pytest.mark.parametrize(
    ("retrieval_spec", "binding", "message"),
    [
        ({"method": "hybrid"}, "retrieve:embedder", r"retrieval: Value error, bm25_weight: method hybrid needs"),
        ({"method": "dense"}, "retrieve:embedder", r"steps\.0\.retrieval\.method: Input should be"),
        ({"method": "embedding", "k1": 1.5}, "retrieve:embedder", r"k1: a BM25 parameter; method embedding"),
        ({"method": "bm25", "passages": "each"}, "retrieve", r"passages: how facts are embedded; method bm25"),
        ({"method": "embedding", "min_margin": 2}, "retrieve:embedder", r"retrieval\.min_margin: Input should be"),
        ({"method": "embedding", "c": 1.0}, "retrieve:embedder", r"c: the trained head's regularisation; method emb"),
        ({"method": "trained", "c": 0}, "retrieve:embedder", r"retrieval\.c: Input should be greater than 0"),
        ({"method": "trained", "passages": "each"}, "retrieve:embedder", r"passages: .* learns from every passage"),
    ],
)
def test_a_retrieval_mapping_that_cannot_work_is_refused_naming_the_field(tmp_path, retrieval_spec, binding, message):
    chain = _chain(tmp_path, [{**FIND, "binding": binding, "retrieval": retrieval_spec}])
    with pytest.raises(ChainSpecError, match=r"chain\.yaml: .*" + message):
        load_chain(chain, {"embedder": []})


@pytest.mark.parametrize(
    ("step", "message"),
    [
        ({**FIND, "retrieval": {"method": "hybrid", "bm25_weight": 0.3}}, r"retrieval\.method: hybrid needs an"),
        ({**FIND, "binding": "retrieve:embedder", "retrieval": {"method": "bm25"}}, r"retrieval\.method: bm25 uses no"),
        ({**FIND, "retrieval": {"method": "trained"}}, r"retrieval\.method: trained needs an embedding model"),
        ({**SAY, "id": "find", "retrieval": {"method": "bm25"}}, r"retrieval: only a step with binding retrieve"),
    ],
)
def test_a_retrieval_method_that_does_not_fit_its_binding_is_refused(tmp_path, step, message):
    with pytest.raises(ChainSpecError, match=r"chain\.yaml: steps\[0\] \(find\): " + message):
        load_chain(_chain(tmp_path, [step]), {"embedder": []})


class WordCountEmbedder:
    """A stand-in sentence embedder (the real one is tested in models/test_embedding.py): one dimension per word of
    a small vocabulary, one more for every other word, l2-normalised; enough to show what the trained head learns."""

    VOCABULARY = ("order", "parcel", "return", "refund", "gift", "card")

    def embed(self, texts: list[str]) -> np.ndarray:
        rows = []
        for text in texts:
            words = text.lower().replace(".", " ").replace("?", " ").split()
            counts = [words.count(w) for w in self.VOCABULARY] + [sum(w not in self.VOCABULARY for w in words)]
            rows.append(np.asarray(counts, float) / np.linalg.norm(counts))
        return np.stack(rows)

    def embed_corpus(self, docs: tuple[str, ...]) -> np.ndarray:
        return self.embed(list(docs))


# "order" is in most facts, "parcel" only in tracking's: the cosine with a joined passage counts a shared word as
# much as a telling one; a head trained on the facts' passages learns that "order" tells them apart no better.
SHARED_WORD_FACTS = {
    "returns": "order order order return",
    "tracking": "parcel",
    "refunds": "order order refund",
    "gift_cards": "gift card order",
}
SHARED_WORD_HEADINGS = {"tracking": ["parcel order"]}


def _embedding_step(**retrieval_spec) -> StepSpec:
    return StepSpec(
        id="find",
        template="q.j2",
        binding="retrieve:embedder",
        output={"fact": "str?", "score": "float"},
        min_score=0.4,
        retrieval=retrieval_spec,
    )


def test_the_trained_head_finds_the_fact_a_shared_word_hides_from_the_cosine_and_abstains_on_the_unrelated():
    asked = ["my order parcel order", "weather tomorrow"]
    embedder = WordCountEmbedder()
    by_cosine = bindings.retrieve(
        _embedding_step(method="embedding"), asked, SHARED_WORD_FACTS, SHARED_WORD_HEADINGS, embedder
    )
    assert by_cosine[0]["fact"] == "returns"  # three "order"s outweigh the one telling "parcel"
    trained = _embedding_step(method="trained", c=100)
    found = bindings.retrieve(trained, asked, SHARED_WORD_FACTS, SHARED_WORD_HEADINGS, embedder)
    assert [r["fact"] for r in found] == ["tracking", None]
    assert found[0]["score"] >= 0.4 > found[1]["score"]  # a probability over four facts: 0.25 is knowing nothing
    retrieval._trained_head.cache_clear()  # a head fitted afresh (another process) answers identically
    assert bindings.retrieve(trained, asked, SHARED_WORD_FACTS, SHARED_WORD_HEADINGS, embedder) == found


def test_a_trained_head_over_one_fact_scores_by_the_cosine():
    embedder = WordCountEmbedder()
    one = {"tracking": SHARED_WORD_FACTS["tracking"]}
    step, cosine = _embedding_step(method="trained"), _embedding_step(method="embedding")
    assert bindings.retrieve(step, ["parcel"], one, {}, embedder) == bindings.retrieve(
        cosine, ["parcel"], one, {}, embedder
    )
