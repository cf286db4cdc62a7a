"""Okapi BM25 over a small set of passages (a chain's knowledge base), in numpy: the keyword side of the retrieve
binding's ``hybrid`` method, or the whole of its ``bm25`` method.

Scores are normalised to [0, 1): a passage's BM25 score divided by the most any passage could score for the
question's indexed words (each word's idf times ``k1 + 1``, what a saturating term frequency approaches). So a
score says how much of the question's known vocabulary a passage matches, comparable across questions, and one
``min_score`` can abstain on it, where raw BM25 grows with the question's length.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

# Function words carry no topic; in passages of one sentence and a heading or two they would otherwise decide
# which fact a question "matches" ("Can I ...?" asks like every heading).
_STOPWORD_TEXT = """
    a about after all also am an and any are as at be been before being but by can could did do does doing for
    from had has have he her here him his how i if in into is it its just may me might more most much must my no
    not of on once only or our out over same she should so some such than that the their them then there these
    they this those to too under until up very was we were what when where which while who whom why will with
    would you your
"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())
# Inflections a question and a fact often differ by ("returns"/"returned"/"returning"); longest suffix first.
SUFFIXES = ("ing", "ed", "es", "s")
MIN_STEM = 3


def tokens(text: str) -> list[str]:
    """Lower-cased, accent-free words and numbers without stop words, each cut to a crude stem. ``_`` separates
    words, so a fact id (``return_window``) is indexed as the two words of its title."""
    plain = unicodedata.normalize("NFKD", text.lower()).encode("ascii", "ignore").decode()
    return [_stem(w) for w in re.findall(r"[a-z0-9]+", plain.replace("_", " ")) if w not in STOPWORDS]


def _stem(word: str) -> str:
    for suffix in SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= MIN_STEM:
            return word[: -len(suffix)]
    return word


class BM25Index:
    """The passages' term weights, computed once; :meth:`scores` is one matrix slice per question."""

    def __init__(self, passages: Sequence[str], k1: float = 1.2, b: float = 0.75) -> None:
        if k1 <= 0 or not 0 <= b <= 1:
            raise ValueError(f"BM25 needs k1 > 0 and 0 <= b <= 1, got k1={k1}, b={b}")
        docs = [tokens(p) for p in passages]
        self.vocabulary = {w: i for i, w in enumerate(sorted({w for d in docs for w in d}))}
        counts = np.zeros((len(docs), len(self.vocabulary)))
        for row, doc in enumerate(docs):
            for word in doc:
                counts[row, self.vocabulary[word]] += 1
        n = len(docs)
        df = (counts > 0).sum(axis=0)
        # The "plus one" idf (Lucene's): never negative, even for a word most passages share.
        self.idf = np.log1p((n - df + 0.5) / (df + 0.5))
        lengths = counts.sum(axis=1)
        relative = lengths / lengths.mean() if n and lengths.mean() > 0 else np.ones(n)
        self.weights = self.idf * counts * (k1 + 1) / (counts + k1 * (1 - b + b * relative[:, None]))
        self.k1 = k1

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        """One row per text, one column per passage, each in [0, 1): 0 when the text shares no indexed word."""
        out = np.zeros((len(texts), self.weights.shape[0]))
        for row, text in enumerate(texts):
            known = sorted({self.vocabulary[w] for w in tokens(text) if w in self.vocabulary})
            if known:
                ceiling = float(self.idf[known].sum() * (self.k1 + 1))
                out[row] = self.weights[:, known].sum(axis=1) / ceiling
        return out


@lru_cache(maxsize=8)
def bm25_index(passages: tuple[str, ...], k1: float, b: float) -> BM25Index:
    """Built once per knowledge base and parameters, not once per request: latency is measured one at a time."""
    return BM25Index(passages, k1, b)
