"""Training rows for the judge generated from the golden suites' facts, by rule: each golden case's facts become a
correct reply and its broken twins (one number swapped, a statement negated, a fact dropped, a rude sentence
added), each labelled by the rule that made it.

They teach the judge what the hand-labelled set (``data/judge/labelled.jsonl``) has too few of; the labelled set's
held-out half, written by hand and independently of these rules, is what the judge is scored on. Seeded, so the
same golden files always give the same rows.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable
from typing import Any

PASS, FAIL = "pass", "fail"
# Frames a correct reply is written in; `{facts}` is the fact sentences, `{order}` a mention of the order number.
OPENERS = (
    "",
    "Thanks for your message. ",
    "Happy to help{order}. ",
    "Thank you for getting in touch{order}. ",
    "Sorry for the trouble{order}. ",
    "Good question. ",
)
CLOSERS = ("", " Let us know if there is anything else.", " I hope this helps.", " Have a good day.")
# Rude sentences a rewrite adds before or after the facts: generic impatience and blame, no facts of their own.
RUDE_BEFORE = (
    "As we have said many times already, ",
    "Honestly, this is basic stuff. ",
    "Not sure why you are asking us, but ",
    "Pay attention this time: ",
    "Obviously, ",
    "Read carefully. ",
)
RUDE_AFTER = (
    " You should know this by now.",
    " Please read the FAQ before writing to us.",
    " We really don't have time for questions like this.",
    " It is all on our website if you bothered to look.",
    " Next time, check yourself first.",
    " Try to keep up.",
)
# Statement polarity, flipped by the first rule that matches a sentence: (pattern, replacement).
NEGATIONS: tuple[tuple[str, str], ...] = (
    (r"\bcannot\b", "can"),
    (r"\bdoes not\b", "does"),
    (r"\bdo not\b", "do"),
    (r"\bnever\b", "always"),
    (r"\bnot\b ", ""),
    (r"\bcan be\b", "cannot be"),
    (r"\bcan\b", "cannot"),
    (r"\bwill\b", "will not"),
    (r"\bare\b", "are not"),
    (r"\bis\b", "is not"),
    (r"\bmust\b", "do not need to"),
    (r"\bcome with\b", "do not come with"),
    (r"\bget\b", "do not get"),
    (r"\bearn\b", "do not earn"),
    (r"\btakes\b", "never takes"),
    (r"\barrives\b", "never arrives"),
    (r"\b(ship|shipping)\b", r"do not \1"),
)
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def _swap_number(text: str, rng: random.Random) -> str | None:
    """``text`` with one of its numbers changed to a plausible other value (same shape), or None."""
    found = list(_NUMBER.finditer(text))
    if not found:
        return None
    m = rng.choice(found)
    value = m.group()
    if "." in value:
        whole, cents = value.split(".")
        new = f"{int(whole) + rng.choice([1, 2, 5, 10])}.{cents}"
    elif len(value) == 5:  # an order number: the same digits in another order, or one digit changed
        digits = list(value)
        i = rng.randrange(1, 5)
        digits[i] = str((int(digits[i]) + rng.randrange(1, 10)) % 10)
        new = "".join(digits)
    else:
        n = int(value)
        new = str(rng.choice([n + 1, n + 2, n * 2, n * 3, max(1, n - 1), n + 10]) if n else rng.choice([1, 2, 5]))
        if new == value:
            new = str(n + 1)
    return text[: m.start()] + new + text[m.end() :]


def _negate(sentence: str) -> str | None:
    for pattern, replacement in NEGATIONS:
        flipped, n = re.subn(pattern, replacement, sentence, count=1)
        if n and flipped != sentence:
            return flipped
    return None


def _frame(rng: random.Random, body: str, order: str | None) -> str:
    opener = rng.choice(OPENERS).format(order=f" (order {order})" if order else "")
    return (opener + body + rng.choice(CLOSERS)).strip()


def rows_for(
    facts: list[str], message: str, order: str | None, rng: random.Random, source: str
) -> Iterable[dict[str, Any]]:
    """A correct reply to ``message`` from ``facts`` and its broken twins, each with its rubric labels."""

    def row(kind: str, reply: str, factual: str, tone: str) -> dict[str, Any]:
        return {
            "id": f"{source}-{kind}",
            "kind": kind,
            "message": message,
            "facts": facts,
            "reply": reply,
            "verdicts": {"factual_consistency": factual, "tone": tone},
        }

    if not facts:  # nothing to answer from: the honest reply abstains, anything specific is invented
        yield row("abstain", "I could not find that in our help centre, so I have passed your question on.", PASS, PASS)
        yield row("invented", "Yes, we offer that at every store, free of charge.", FAIL, PASS)
        return
    body = " ".join(facts if order is None else [f for f in facts if order not in f])
    yield row("faithful", _frame(rng, body, order), PASS, PASS)
    swapped = _swap_number(body, rng)
    if swapped is not None:
        yield row("wrong_number", _frame(rng, swapped, order), FAIL, PASS)
    if order is not None:
        wrong_order = _swap_number(order, rng)
        if wrong_order is not None:
            yield row("wrong_entity", _frame(rng, body, wrong_order), FAIL, PASS)
    sentences = [s for s in re.split(r"(?<=[.;])\s+", body) if s]
    i = rng.randrange(len(sentences))
    negated = _negate(sentences[i])
    if negated is not None:
        yield row("negation", _frame(rng, " ".join([*sentences[:i], negated, *sentences[i + 1 :]]), order), FAIL, PASS)
    if len(sentences) > 1:  # one fact left out of several: the reply no longer holds everything it was given
        kept = [s for j, s in enumerate(sentences) if j != i]
        yield row("dropped", _frame(rng, " ".join(kept), order), FAIL, PASS)
    rude = rng.choice(RUDE_BEFORE) + body[0].lower() + body[1:] if rng.random() < 0.5 else body + rng.choice(RUDE_AFTER)
    yield row("rude", rude, PASS, FAIL)


def generated_rows(
    golden: list[dict[str, Any]], kb_facts: dict[str, str], seed: int = 0, source: str = "golden"
) -> list[dict[str, Any]]:
    """Rows from every golden case that names its facts: the KB sentences holding one of its ``must_contain``
    phrases (a kbqa case's ``expected.intent`` fact), plus its order number as a sentence; a kbqa case with no fact
    (``expected.intent: null``) gives the abstain pair. Cases that must ask a clarifying question are skipped."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    for case in golden:
        expected = case.get("expected") or {}
        if expected.get("abstain"):
            continue
        if "intent" in expected and expected["intent"] in kb_facts:
            facts = [kb_facts[expected["intent"]]]
        elif "intent" in expected and expected["intent"] is None and not expected.get("entities"):
            facts = []
        else:
            phrases = [p.lower() for p in case.get("must_contain", [])]
            facts = [s for s in kb_facts.values() if any(p in s.lower() for p in phrases)]
            if not facts:
                continue
        order = (expected.get("entities") or {}).get("order_id")
        if order:
            facts = [*facts, f"The customer's order number is {order}."]
        out.extend(rows_for(facts, case["message"], order, rng, f"{source}-{case['id']}"))
    return out
