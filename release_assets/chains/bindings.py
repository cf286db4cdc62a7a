"""What turns a step's rendered text into its raw output: the release's own models, patterns, templates,
retrieval over the knowledge base, or a function of the team's own package.

Each binding works on a whole batch of cases at once, so a classifier sees one batched forward pass per step
rather than one per case.

A ``python:package.module:function`` binding calls that function once per case, as ``function(text, context)``:

- ``text`` (str): the step's template rendered, exactly what any other binding would receive;
- ``context`` (a dict, a fresh copy per call): what the template saw: ``message`` (the request's text),
  ``attachment`` (whether an image sequence came with it), ``kb`` (fact id -> fact text), ``products`` (the
  catalogue's names), and one entry per earlier step, keyed by its id: that step's validated output.

It returns a dict of the step's output fields, validated against the step's ``output:`` like every binding's
answer: anything else (a missing or mistyped field, a field the step does not declare, not a dict at all) is that
step's schema failure, and whatever it raises is that step's error; either way the case stops there, is counted
as format-invalid and is traced like any other failure, and the other cases run on. The function is imported when
the chain is built or run (never when it is merely loaded and checked), so its package must be importable
wherever the chain runs, the server included: the bundle holds the reference and the digests of the source it was
evaluated with (``build.PYTHON_STEPS_FILE``), never the code, and nothing in it is pickled.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any

from release_assets.chains import retrieval
from release_assets.chains.schema import ChainSpec, ChainSpecError, StepSpec
from release_assets.core.team_code import import_function, one_line
from release_assets.models.trainers import Predictor, predict_labels

StepFunction = Callable[[str, dict[str, Any]], Any]


def classify(step: StepSpec, texts: Sequence[str], predictor: Predictor) -> list[dict[str, Any]]:
    enum_field = next(name for name, f in step.fields().items() if f.type == "enum")
    labels, proba = predict_labels(predictor, [{"text": t} for t in texts])
    wants_confidence = "confidence" in step.output
    threshold = confidence_threshold(step, predictor) if "unsure" in step.output else None
    out = []
    for label, p in zip(labels, proba, strict=True):
        row: dict[str, Any] = {enum_field: label}
        if wants_confidence:
            row["confidence"] = float(p.max())
        if threshold is not None:
            row["unsure"] = bool(float(p.max()) < threshold)
        out.append(row)
    return out


def confidence_threshold(step: StepSpec, predictor: Predictor) -> float:
    """The confidence below which the step is unsure: the chain's number, or (``min_confidence: model``) the one
    the model's trainer chose on its validation split and froze into the model folder (``abstain.json``), so the
    threshold travels with the model it was measured on.

    A model that recorded none (no validation split, or a test stand-in) gives 0: the step is never unsure, the
    entity checks of ``clarify.requires`` still apply, and the confident_wrong_rate gate measures the result.
    """
    if step.min_confidence == "model":
        recorded = getattr(predictor, "abstain_threshold", None)
        return float(recorded) if recorded is not None else 0.0
    return float(step.min_confidence or 0.0)


def extract(
    step: StepSpec, text: str, catalogue: Sequence[str], aliases: Mapping[str, Sequence[str]] | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, pattern in step.patterns.items():
        match = re.search(pattern, text)
        if match:
            # A pattern may offer alternatives ("$49.99" or "49.99"), each with its own group: the one that matched.
            out[name] = next((g for g in match.groups() if g is not None), match.group(0))
    product = match_product(text, catalogue, aliases or {})
    if product is not None:
        out["product"] = product
    return out


def match_product(text: str, catalogue: Sequence[str], aliases: Mapping[str, Sequence[str]]) -> str | None:
    """The catalogue product a text names, in full or by one of its aliases ("rain jacket" for "Harbor Rain
    Jacket"): whole words, any case, the longest name or alias found wins ("Desk Lamp Pro" over "Desk Lamp");
    equally long ones go to the catalogue's order. Aliases of products not in the catalogue are ignored."""
    # On ASCII text a phrase can only match where its first word (lower-cased, when ASCII itself) is a substring of
    # the lower-cased text: a substring test skips most of the phrases' regexes, which are tried at every position.
    lower = text.lower() if text.isascii() else None
    for phrase, product, first_word in _phrases(tuple(catalogue), tuple((k, tuple(v)) for k, v in aliases.items())):
        if lower is not None and first_word is not None and first_word not in lower:
            continue
        if phrase.search(text):
            return product
    return None


@lru_cache(maxsize=8)
def _phrases(
    catalogue: tuple[str, ...], aliases: tuple[tuple[str, tuple[str, ...]], ...]
) -> list[tuple[re.Pattern[str], str, str | None]]:
    """Compiled once per catalogue: the chain's latency is measured one request at a time. Each phrase's regex, its
    product, and its first word lower-cased when that word is ASCII (else None: no shortcut for it)."""
    named = dict(aliases)
    pairs = [(name, name) for name in catalogue]
    pairs += [(alias, name) for name in catalogue for alias in named.get(name, ())]
    pairs.sort(key=lambda pair: -len(pair[0]))  # stable: ties keep catalogue order, full names before aliases
    # Whole words: "mat" must not match inside "format"; any run of spaces between words still matches.
    return [
        (
            re.compile(r"(?<!\w)" + r"\s+".join(map(re.escape, phrase.split())) + r"(?!\w)", re.IGNORECASE),
            name,
            phrase.split()[0].lower() if phrase.split() and phrase.split()[0].isascii() else None,
        )
        for phrase, name in pairs
    ]


def clarification(step: StepSpec, context: Mapping[str, Any], earlier: Sequence[str]) -> dict[str, Any] | None:
    """What a clarifying question must say, or None when the step may act on the earlier steps' decision.

    Unsure (any ``clarify.when`` flag is true): the intent itself is in doubt, so the question asks what the
    customer needs, and no entity is requested on the strength of a guessed intent. Otherwise the entities a
    decided value ``clarify.requires`` that no earlier step found are named, in the order the chain lists them.
    """
    spec = step.clarify
    if spec is None:
        return None
    if any(_field(context, ref) is True for ref in spec.when):
        return {"missing": [], "unsure": True}
    decided = {v for sid in earlier for v in context.get(sid, {}).values() if isinstance(v, str)}
    found = {k for sid in earlier for k, v in context.get(sid, {}).items() if v not in (None, "")}
    for value, needed in spec.requires.items():  # the first listed value decided that lacks an entity
        missing = [name for name in needed if name not in found]
        if value in decided and missing:
            return {"missing": missing, "unsure": False}
    return None


def _field(context: Mapping[str, Any], ref: str) -> Any:
    step_id, _, name = ref.partition(".")
    return (context.get(step_id) or {}).get(name)


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
    embedder: Any = None,
) -> list[dict[str, Any]]:
    """The knowledge-base fact each text is most about, with that score, by the step's retrieval method
    (retrieval.py: TF-IDF, sentence embeddings of the model ``retrieve:<model>`` names, BM25, a hybrid, or a head
    trained on those embeddings).

    The index (and the trained head's only training data) is the chain's own knowledge base. Deterministic: a
    tie goes to the fact listed first. Below ``min_score`` (or within ``retrieval.min_margin`` of the second fact)
    the fact is None, so a later step can abstain rather than answer from a fact that merely shares a word with
    the question.
    """
    if not texts:
        return []
    if not facts:
        return [{"fact": None, "score": 0.0} for _ in texts]
    if embedder is not None and not hasattr(embedder, "embed_corpus"):
        raise TypeError(f"step {step.id}: binding {step.binding!r} names a model that computes no embeddings")
    scores = retrieval.fact_scores(step, texts, facts, questions or {}, embedder)
    return retrieval.decide(step, scores, list(facts))


def step_functions(spec: ChainSpec) -> dict[str, StepFunction]:
    """The function of every python step, by step id, imported now (running its module). A function that cannot
    be imported, or cannot be called as ``function(text, context)``, is a ChainSpecError naming the chain file,
    the step and the field: the chain cannot run at all, which is not one case's failure."""
    functions = {}
    for i, step in enumerate(spec.steps):
        ref = step.python_function
        if ref is None:
            continue
        try:
            functions[step.id] = import_step_function(ref)
        except ImportError as exc:
            raise ChainSpecError(f"{spec.path}: steps[{i}] ({step.id}): binding: {exc}") from None
    return functions


def import_step_function(ref: str) -> StepFunction:
    function = import_function(ref)  # TeamCodeError, an ImportError, names what is wrong
    attr = ref.partition(":")[2]
    try:
        inspect.signature(function).bind("text", {})
    except TypeError as exc:
        raise ImportError(f"{ref!r} cannot be called as {attr}(text, context): {exc}") from None
    except ValueError:
        pass  # no signature to read (a builtin): calling it will tell
    return function


def call_python(
    step: StepSpec, function: StepFunction, text: str, context: Mapping[str, Any]
) -> tuple[Any, str | None]:
    """One case's answer from a python step: ``(output, None)``, or ``(None, error)`` when the function raised or
    returned nothing. The output is returned as the function gave it: the runner validates it like any other."""
    steps = {k: dict(v) for k, v in context.items() if isinstance(v, dict) and k != "kb"}
    given = {**context, "kb": dict(context.get("kb") or {}), "products": list(context.get("products") or []), **steps}
    try:
        value = function(text, given)
    except Exception as exc:  # the team's code may raise anything: this case's error, not the runner's
        return None, f"{step.python_function} raised {one_line(exc)}"
    if value is None:
        return None, f"{step.python_function} returned None, not a dict of the step's output fields"
    return value, None
