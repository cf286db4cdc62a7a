"""data/golden/kbqa.jsonl: one case per question of the kbqa knowledge base, plus questions it cannot answer."""

from __future__ import annotations

import random
import re

from generators.common import ROOT
from generators.kbqa_kb import KBQA_FACTS

# Questions the knowledge base cannot answer: the chain must abstain rather than quote the nearest fact.
KBQA_OUT_OF_SCOPE = [
    "Do you sell fishing licenses?",
    "Can you recommend a good hiking trail near Seattle?",
    "Are you hiring seasonal staff this summer?",
    "Who founded Pinecrest?",
    "Do you run guided climbing trips?",
    "Is it safe to drink from mountain streams?",
    "What's the best way to waterproof leather boots?",
    "Can I bring my dog into the Portland shop?",
]


# What the kbqa chain answers when no fact scores min_score (prompts/kbqa/answer.j2 says it word for word).
KBQA_ABSTAIN = "I could not find that in our help centre, so I have passed your question to our customer service team."
KBQA_ABSTAIN_KEY = "could not find"
# Template debris, never acceptable in an answer.
KBQA_MUST_NOT = ["{{", "}}", "None", "null", "undefined"]
_WORDS = re.compile(r"[a-z0-9$%@.'-]+")


def build_kbqa_golden(rng: random.Random) -> list[dict]:
    """One case per question: the fact it must be answered from (null: abstain) and that fact's key phrase."""
    cases = [
        {
            "message": question,
            "expected": {"intent": fact_id},
            "must_contain": [key],
            "must_not_contain": KBQA_MUST_NOT,
            "reference_reply": sentence,
        }
        for fact_id, (sentence, key, _, questions) in KBQA_FACTS.items()
        for question in questions
    ]
    cases += [
        {
            "message": question,
            "expected": {"intent": None},
            "must_contain": [KBQA_ABSTAIN_KEY],
            "must_not_contain": KBQA_MUST_NOT,
            "reference_reply": KBQA_ABSTAIN,
        }
        for question in KBQA_OUT_OF_SCOPE
    ]
    rng.shuffle(cases)  # so the first cases (the latency sample) mix topics and abstentions
    return [{"id": f"k{i:03d}", **case} for i, case in enumerate(cases, start=1)]


def split_kbqa_golden(cases: list[dict], rng: random.Random) -> tuple[list[dict], list[dict]]:
    """``(build, held_out)``: per fact, half its questions (rounded up) for building the chain (choosing the
    retriever, its threshold, the headings it indexes) and the rest held out, on which the release's gates report;
    half the unanswerable questions each way. Drawn per fact, so every fact is asked in both parts."""
    by_fact: dict[str | None, list[dict]] = {}
    for case in cases:
        by_fact.setdefault(case["expected"]["intent"], []).append(case)
    build_ids: set[str] = set()
    for fact in sorted(by_fact, key=str):
        group = sorted(by_fact[fact], key=lambda c: c["id"])
        rng.shuffle(group)
        build_ids |= {c["id"] for c in group[: (len(group) + 1) // 2 if fact is not None else len(group) // 2]}
    return [c for c in cases if c["id"] in build_ids], [c for c in cases if c["id"] not in build_ids]


def _word_runs(text: str, n: int = 4) -> set[tuple[str, ...]]:
    words = _WORDS.findall(text.lower())
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def check_kbqa(golden: list[dict]) -> None:
    template = (ROOT / "prompts" / "kbqa" / "answer.j2").read_text(encoding="utf-8")
    assert KBQA_ABSTAIN in template, "prompts/kbqa/answer.j2 must abstain with KBQA_ABSTAIN word for word"
    sentences = {fact_id: entry[0] for fact_id, entry in KBQA_FACTS.items()}
    for fact_id, (sentence, key, headings, questions) in KBQA_FACTS.items():
        assert key in sentence, (fact_id, key)
        # A key phrase found in another fact would let a wrong answer pass required_facts.
        assert not [f for f, s in sentences.items() if f != fact_id and key.lower() in s.lower()], (fact_id, key)
        indexed = _word_runs(sentence + " " + " ".join(headings))
        for question in questions:
            # Phrased differently: no question quotes its answer's key phrase or 4+ words of what is indexed.
            assert key.lower() not in question.lower(), (fact_id, question)
            assert not _word_runs(question) & indexed, (fact_id, question, _word_runs(question) & indexed)
    assert all(KBQA_ABSTAIN_KEY not in s.lower() for s in sentences.values())
    for case in golden:  # scoring compares case-insensitively, so must these checks
        assert all(m.lower() in case["reference_reply"].lower() for m in case["must_contain"]), case["id"]
        assert not [m for m in case["must_not_contain"] if m.lower() in case["reference_reply"].lower()], case["id"]
    messages = [c["message"] for c in golden]
    assert len(messages) == len(set(messages)), "a golden question is asked twice"
    headings = {h.lower() for entry in KBQA_FACTS.values() for h in entry[2]}
    assert not headings & {m.lower() for m in messages}, "a golden question is a help-centre heading"
