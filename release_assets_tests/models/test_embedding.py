"""The sentence_embedder kind: pinned weights (a changed file is refused), the ONNX export checked against torch and
re-hashed at load, semantic similarity in the golden scoring and the shadow pairs, retrieval by meaning, and the
member in the release's bundle. One exported model is shared by the session (``embedding_model_dir``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from release_assets import keys
from release_assets.chains import bindings
from release_assets.chains.retrieval import fact_scores
from release_assets.chains.runner import CaseResult
from release_assets.chains.schema import EvaluationSpec, StepSpec
from release_assets.evaluation.golden import score
from release_assets.evaluation.shadow_pairs import summarize
from release_assets.manifest import ManifestError, Threshold, load_manifest, parse_member
from release_assets.manifest.models import SentenceEmbedder
from release_assets.models.embedding import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    EmbeddingWeightsError,
    OnnxSentenceEmbedder,
    verified_weights,
)
from release_assets.models.onnx_export import ONNX_FILE
from release_assets.promotion.policy import threshold_verdict
from release_assets.serving.shadow import compare
from release_assets_tests.conftest import EMBEDDING_PACKAGE, EMBEDDING_SHA256, REPO

REFERENCE = "Unused items can be returned within 45 days of delivery."
PARAPHRASE = "You have 45 days after your order arrives to return products you haven't used."
WRONG_NUMBER = "Unused items can be returned within 30 days of delivery."


@pytest.fixture(scope="module")
def embedder(embedding_model_dir: Path) -> OnnxSentenceEmbedder:
    return OnnxSentenceEmbedder(embedding_model_dir)


def _member(**fields) -> SentenceEmbedder:
    return SentenceEmbedder(kind="sentence_embedder", **{"weights_sha256": EMBEDDING_SHA256, **fields})


def test_weights_whose_sha256_is_not_the_pinned_one_are_refused(tmp_path):
    assert verified_weights(_member(package=EMBEDDING_PACKAGE), REPO).name == WEIGHTS_FILE
    folder = tmp_path / "minilm"
    folder.mkdir()
    (folder / WEIGHTS_FILE).write_bytes(b"not the reviewed weights")
    with pytest.raises(EmbeddingWeightsError) as refused:
        verified_weights(_member(path="minilm"), tmp_path)
    message = str(refused.value)
    assert str(folder / WEIGHTS_FILE) in message and EMBEDDING_SHA256 in message and "refusing" in message
    with pytest.raises(EmbeddingWeightsError, match="not installed"):
        verified_weights(_member(package="no_such_weights_package"), REPO)


def test_the_manifest_names_exactly_one_source_and_no_dataset():
    for fields in ({}, {"package": EMBEDDING_PACKAGE, "path": "models/minilm"}):
        with pytest.raises(ManifestError, match="exactly one of `package`"):
            parse_member("embedder", {"kind": "sentence_embedder", "weights_sha256": EMBEDDING_SHA256, **fields})
    with pytest.raises(ManifestError, match="not trained from a dataset"):
        parse_member(
            "embedder",
            {
                "kind": "sentence_embedder",
                "package": EMBEDDING_PACKAGE,
                "weights_sha256": EMBEDDING_SHA256,
                "data": "x",
            },
        )
    with pytest.raises(ManifestError, match="weights_sha256"):
        parse_member("embedder", {"kind": "sentence_embedder", "package": EMBEDDING_PACKAGE, "weights_sha256": "abc"})


def test_the_export_matches_torch_and_a_changed_onnx_file_is_refused_at_load(embedding_model_dir, tmp_path):
    model = OnnxSentenceEmbedder(embedding_model_dir)
    assert model.config["dimension"] == 384 and model.config["parity_max_abs_diff"] <= 1e-5
    assert model.config["weights_sha256"] == EMBEDDING_SHA256 and model.labels == []
    vectors = model.embed([REFERENCE, PARAPHRASE])
    assert vectors.shape == (2, 384)
    assert abs(float((vectors**2).sum(axis=1).max()) - 1.0) < 1e-5  # unit length: cosine is a dot product
    tampered = tmp_path / "tampered"
    shutil.copytree(embedding_model_dir, tampered)
    with (tampered / ONNX_FILE).open("ab") as fh:
        fh.write(b"\0")
    with pytest.raises(EmbeddingWeightsError, match=f"recorded in {CONFIG_FILE}"):
        OnnxSentenceEmbedder(tampered)


def _scored(embedder: OnnxSentenceEmbedder, reply: str) -> dict:
    case = {"id": "c1", "message": "How long can I return things?", "reference_reply": REFERENCE}
    case["must_contain"] = ["45 days"]
    result = CaseResult("c1", outputs={"answer": {"reply": reply}})
    return score([case], [result], EvaluationSpec(reply="answer.reply"), embedder)


def test_a_correct_paraphrase_passes_the_similarity_gate_where_token_f1_fails_it(embedder):
    summary = _scored(embedder, PARAPHRASE)
    metrics = summary["metrics"]
    token_gate = threshold_verdict("chain", "reply_similarity", metrics["reply_similarity"], Threshold(min=0.5))
    semantic_gate = threshold_verdict(
        "chain", "semantic_similarity", metrics["semantic_similarity"], Threshold(min=0.65)
    )
    assert token_gate.status == "failed", token_gate.reason
    assert semantic_gate.status == "passed", semantic_gate.reason
    assert summary["case_scores"]["c1"]["semantic_similarity"] == pytest.approx(metrics["semantic_similarity"])
    # Without an embedding model the metric is not measured at all (its gate says so), never guessed.
    assert "semantic_similarity" not in _scored(None, PARAPHRASE)["metrics"]


def test_a_wrong_number_looks_similar_and_only_the_fact_check_catches_it(embedder):
    metrics = _scored(embedder, WRONG_NUMBER)["metrics"]
    assert metrics["semantic_similarity"] > 0.9  # embeddings barely see one changed number...
    assert metrics["required_facts"] == 0.0  # ...the key phrase the answer must quote does


def test_retrieval_by_meaning_finds_what_shares_no_word_with_the_question(embedder):
    facts = {
        "returns": REFERENCE,
        "rentals": "Tents and stoves can be rented from $15 per day.",
        "gift_cards": "Gift cards never expire.",
    }
    step = StepSpec(
        id="find",
        template="q.j2",
        binding="retrieve:embedder",
        output={"fact": "str?", "score": "float"},
        min_score=0.3,
    )
    asked = ["Could I borrow a camping stove for a weekend?", "Does the present card I got run out at some point?"]
    found = bindings.retrieve(step, [*asked, "What is the capital of Mongolia?"], facts, {}, embedder)
    assert [r["fact"] for r in found] == ["rentals", "gift_cards", None]  # the last abstains: nothing is close
    assert bindings.retrieve(step, asked, facts, {}, embedder) == found[:2]  # the fact index is reused, same answers


def test_hybrid_retrieval_ranks_first_the_keyword_match_the_embeddings_miss(embedder):
    # A name the embedding model has no meaning for: "what time" pulls the question towards the opening hours.
    facts = {
        "repair_desk": "Ms Okonkwo runs the repair desk on Tuesdays.",
        "store_hours": "The store is open every day from 10 am to 7 pm.",
        "gift_cards": "Gift cards never expire.",
    }
    asked = ["What time can I catch Okonkwo?", "Who won the football world cup in 1998?"]

    def ranked(retrieval: dict) -> list[list[str]]:
        step = StepSpec(
            id="find",
            template="q.j2",
            binding="retrieve" if retrieval["method"] == "bm25" else "retrieve:embedder",
            output={"fact": "str?", "score": "float"},
            retrieval=retrieval,
        )
        scores = fact_scores(step, asked, facts, {}, embedder)
        return [[list(facts)[i] for i in np.argsort(-row, kind="stable")] for row in scores]

    assert ranked({"method": "embedding"})[0][0] == "store_hours"  # by meaning alone: the wrong fact
    assert ranked({"method": "bm25"})[0][0] == "repair_desk"  # the one fact with the name
    assert ranked({"method": "hybrid", "bm25_weight": 0.3})[0][0] == "repair_desk"
    assert ranked({"method": "hybrid", "bm25_weight": 0.3, "passages": "each"})[0][0] == "repair_desk"
    step = StepSpec(
        id="find",
        template="q.j2",
        binding="retrieve:embedder",
        output={"fact": "str?", "score": "float"},
        min_score=0.2,
        retrieval={"method": "hybrid", "bm25_weight": 0.3},
    )
    found = bindings.retrieve(step, asked, facts, {}, embedder)
    assert found[0]["fact"] == "repair_desk" and found[0]["score"] >= 0.2
    assert found[1]["fact"] is None and 0 <= found[1]["score"] < 0.2  # unrelated: abstains


def test_shadow_pairs_compare_replies_by_meaning_when_the_chain_has_an_embedding_model(embedder):
    champion = {"intent": "returns", "reply": REFERENCE}
    reworded = compare(champion, {"intent": "returns", "reply": PARAPHRASE}, embedder)
    assert reworded["reply_semantic_similarity"] > 0.65 > reworded["reply_similarity"]
    assert "reply_semantic_similarity" not in compare(champion, champion)  # no embedding model, no such number
    pairs = [{**reworded, "request_id": f"r{i}"} for i in range(3)]
    metrics = summarize(pairs)["metrics"]
    assert metrics["shadow_reply_semantic_similarity"] == pytest.approx(reworded["reply_semantic_similarity"])
    assert (
        summarize([{**compare(champion, champion), "request_id": "r"}])["metrics"]["shadow_reply_semantic_similarity"]
        is None
    )


def test_the_embedding_model_is_a_bundled_member_without_a_report():
    manifest = load_manifest(REPO / "releases" / "kbqa.yaml")
    bundled = keys.bundled(manifest)
    assert bundled["embedder"] == keys.model("kbqa", "embedder") and "embedder_report" not in bundled
    assert manifest.chain("chain").uses == ["embedder", "judge"] and manifest.members["embedder"].upstream == ()
