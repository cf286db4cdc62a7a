"""What turns a step's rendered text into its raw output: the release's own models, patterns, templates, or
retrieval over the knowledge base.

Each binding works on a whole batch of cases at once, so a classifier sees one batched forward pass per step
rather than one per case.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from release_assets.chains.spec import StepSpec
from release_assets.models.registry import Predictor, predict_labels


def classify(step: StepSpec, texts: Sequence[str], predictor: Predictor) -> list[dict[str, Any]]:
    enum_field = next(name for name, f in step.fields().items() if f.type == "enum")
    labels, proba = predict_labels(predictor, [{"text": t} for t in texts])
    wants_confidence = "confidence" in step.output
    return [
        {enum_field: label, **({"confidence": float(p.max())} if wants_confidence else {})}
        for label, p in zip(labels, proba, strict=True)
    ]


def extract(step: StepSpec, text: str, catalogue: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, pattern in step.patterns.items():
        match = re.search(pattern, text)
        if match:
            out[name] = match.group(1) if match.groups() else match.group(0)
    lowered = text.lower()
    for product in sorted(catalogue, key=len, reverse=True):  # longest first: "Desk Lamp Pro" over "Desk Lamp"
        if product.lower() in lowered:
            out["product"] = product
            break
    return out


def read_sequences(images: Sequence[Sequence[Sequence[int]]], predictor: Predictor) -> list[str]:
    """Read each attachment (a sequence of 8x8 digit images) into a string, in one batched forward pass."""
    flat = [{"pixels": list(img)} for seq in images for img in seq]
    if not flat:
        return ["" for _ in images]
    labels, _ = predict_labels(predictor, flat)
    out, i = [], 0
    for seq in images:
        out.append("".join(labels[i : i + len(seq)]))
        i += len(seq)
    return out


def retrieve(
    step: StepSpec,
    texts: Sequence[str],
    facts: Mapping[str, str],
    questions: Mapping[str, Sequence[str]] | None = None,
) -> list[dict[str, Any]]:
    """The knowledge-base fact each text is most about, by TF-IDF cosine similarity, with that similarity.

    No model is trained: the index is the chain's own knowledge base, so a release needs no model to answer
    from it. Deterministic: a tie goes to the fact listed first. Below ``min_score`` the fact is None, so a
    later step can abstain rather than answer from a fact that merely shares a word with the question.
    """
    if not texts:
        return []
    if not facts:
        return [{"fact": None, "score": 0.0} for _ in texts]
    questions = questions or {}
    docs = tuple((fact_id, " ".join([text, *questions.get(fact_id, ())])) for fact_id, text in facts.items())
    ids, vectorizer, matrix = _fact_index(docs)
    # Rows are l2-normalised, so the dot product is the cosine similarity.
    scores = (vectorizer.transform(list(texts)) @ matrix.T).toarray()
    out = []
    for row in scores:
        best = int(row.argmax())  # the first maximum: ties resolve the same way on every run
        score = float(row[best])
        fact = ids[best] if step.min_score is None or score >= step.min_score else None
        out.append({"fact": fact, "score": score})
    return out


@lru_cache(maxsize=4)
def _fact_index(docs: tuple[tuple[str, str], ...]) -> tuple[list[str], Any, Any]:
    """Fit once per knowledge base, not once per case: latency is measured one request at a time."""
    from sklearn.feature_extraction.text import TfidfVectorizer  # scikit-learn loads only when a chain retrieves

    # A fact's id is its title (`return_window`), so its words are indexed with its text. Character n-grams
    # within words match inflections and spellings a word index would miss ("returned" and "return",
    # "instalments" and "installments"); sublinear tf keeps a repeated word from outweighing the rest.
    vectorizer = TfidfVectorizer(
        lowercase=True, strip_accents="unicode", analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True
    )
    matrix = vectorizer.fit_transform([f"{fact_id.replace('_', ' ')} {text}" for fact_id, text in docs])
    return [fact_id for fact_id, _ in docs], vectorizer, matrix
