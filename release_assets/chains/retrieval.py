"""How the retrieve binding scores a question against each knowledge-base fact, by the step's ``retrieval:``
method (schema.RetrievalSpec): TF-IDF character n-grams, sentence-embedding cosine, BM25 keywords, a weighted
sum of embedding and BM25 (hybrid), or the probability of a logistic-regression head trained on the frozen
embeddings of the facts' own passages (trained); and which fact that makes the answer, or none (abstain).

Every method indexes a fact with its title (the id, ``return_window`` read as "return window") and its help-centre
headings (the knowledge base's ``questions``), never the golden questions. Indexes are built once per knowledge
base and reused, so a request pays only for its own question.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from release_assets.chains.bm25 import bm25_index
from release_assets.chains.schema import RetrievalSpec, StepSpec

BM25_K1 = 1.2
BM25_B = 0.75
# The trained head's inverse regularisation: of 1, 10 and 100, 1 did best on kbqa's build part (5-fold CV).
TRAINED_C = 1.0


def retrieval_of(step: StepSpec) -> RetrievalSpec:
    """The step's ``retrieval:``, or its binding's default: embeddings when it names a model, else TF-IDF."""
    if step.retrieval is not None:
        return step.retrieval
    return RetrievalSpec(method="embedding" if step.binding_target else "tfidf")


def fact_passages(fact_id: str, text: str, questions: Sequence[str]) -> list[str]:
    """A fact's title, its headings and its sentence: what is indexed for it, in that order."""
    return [fact_id.replace("_", " ") + ".", *questions, text]


def fact_scores(
    step: StepSpec,
    texts: Sequence[str],
    facts: Mapping[str, str],
    questions: Mapping[str, Sequence[str]],
    embedder: Any = None,
) -> np.ndarray:
    """One row per text, one column per fact (in the knowledge base's order): how much the text is about it."""
    spec = retrieval_of(step)
    passages = [fact_passages(fact_id, text, questions.get(fact_id, ())) for fact_id, text in facts.items()]
    joined = tuple(" ".join(p) for p in passages)
    if spec.method == "tfidf":
        # The title, then the fact, then its headings: the order is irrelevant to n-gram counts, and no period
        # after the title, so its last word is the n-grams it always was.
        vectorizer, matrix = _tfidf_index(tuple(" ".join([p[0][:-1], p[-1], *p[1:-1]]) for p in passages))
        # Rows are l2-normalised, so the dot product is the cosine similarity.
        return (vectorizer.transform(list(texts)) @ matrix.T).toarray()
    if spec.method == "bm25":
        return _bm25_scores(spec, texts, joined)
    if embedder is None or not hasattr(embedder, "embed_corpus"):
        raise TypeError(
            f"step {step.id}: retrieval method {spec.method} needs an embedding model: bind `retrieve:<model>` to "
            "a sentence_embedder of the release"
        )
    if spec.method == "trained" and len(passages) > 1:  # one fact leaves nothing to tell apart: its cosine
        return _trained_scores(embedder, texts, passages, spec.c if spec.c is not None else TRAINED_C)
    cosine = _embedding_scores(embedder, texts, passages, spec.passages or "joined")
    if spec.method in ("embedding", "trained"):
        return cosine
    weight = float(spec.bm25_weight or 0.0)
    # Both in [0, 1]: a negative cosine says as little as zero does, and BM25 is normalised (bm25.py).
    return (1 - weight) * np.clip(cosine, 0.0, 1.0) + weight * _bm25_scores(spec, texts, joined)


def decide(step: StepSpec, scores: np.ndarray, fact_ids: Sequence[str]) -> list[dict[str, Any]]:
    """Each row's best fact and its score; the fact is None (abstain) below ``min_score``, or when the best beats
    the second by less than ``min_margin``. A tie goes to the fact listed first, so every run answers alike."""
    margin = retrieval_of(step).min_margin
    out = []
    for row in scores:
        order = np.argsort(-row, kind="stable")
        best = int(order[0])
        score = float(row[best])
        runner_up = float(row[order[1]]) if len(order) > 1 else float("-inf")
        sure = (step.min_score is None or score >= step.min_score) and score - runner_up >= margin
        out.append({"fact": fact_ids[best] if sure else None, "score": score})
    return out


def _embedding_scores(embedder: Any, texts: Sequence[str], passages: list[list[str]], pooling: str) -> np.ndarray:
    """Cosine of each text with each fact: with its passages joined into one, or the best of its passages."""
    asked = embedder.embed(list(texts))
    if pooling == "joined":
        return asked @ embedder.embed_corpus(tuple(" ".join(p) for p in passages)).T
    flat = tuple(p for fact in passages for p in fact)
    each = asked @ embedder.embed_corpus(flat).T
    starts = np.cumsum([0, *(len(p) for p in passages[:-1])])
    return np.maximum.reduceat(each, starts, axis=1)


def _trained_scores(embedder: Any, texts: Sequence[str], passages: list[list[str]], c: float) -> np.ndarray:
    """The probability of each fact by a multinomial logistic regression over the frozen sentence embeddings,
    fitted on every passage of every fact (title, each heading, the sentence, and all of them joined), one class
    per fact. Unlike the cosine with one joined passage, it learns which directions tell facts apart: a word that
    many facts share counts for little, a heading that only one fact has counts for much."""
    examples = tuple(p for fact in passages for p in [*fact, " ".join(fact)])
    labels = tuple(i for i, fact in enumerate(passages) for _ in range(len(fact) + 1))
    head = _trained_head(embedder, examples, labels, c)
    return np.asarray(head.predict_proba(embedder.embed(list(texts))))


@lru_cache(maxsize=4)
def _trained_head(embedder: Any, examples: tuple[str, ...], labels: tuple[int, ...], c: float) -> Any:
    """Fitted once per knowledge base and model (milliseconds: a few passages per fact, 384 features). lbfgs draws
    nothing at random, so the same passages and model give the same head in every process."""
    from sklearn.linear_model import LogisticRegression  # scikit-learn loads only when a chain retrieves

    head = LogisticRegression(C=c, solver="lbfgs", max_iter=1000)
    return head.fit(embedder.embed_corpus(examples), np.asarray(labels))


def _bm25_scores(spec: RetrievalSpec, texts: Sequence[str], joined: tuple[str, ...]) -> np.ndarray:
    k1 = spec.k1 if spec.k1 is not None else BM25_K1
    b = spec.b if spec.b is not None else BM25_B
    return bm25_index(joined, k1, b).scores(texts)


@lru_cache(maxsize=4)
def _tfidf_index(docs: tuple[str, ...]) -> tuple[Any, Any]:
    """Fit once per knowledge base, not once per case: latency is measured one request at a time."""
    from sklearn.feature_extraction.text import TfidfVectorizer  # scikit-learn loads only when a chain retrieves

    # Character n-grams within words match inflections and spellings a word index would miss ("returned" and
    # "return", "instalments" and "installments"); sublinear tf keeps a repeated word from outweighing the rest.
    vectorizer = TfidfVectorizer(
        lowercase=True, strip_accents="unicode", analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True
    )
    matrix = vectorizer.fit_transform(list(docs))
    return vectorizer, matrix
