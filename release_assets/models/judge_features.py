"""What the trained judge reads of a (message, facts, reply) triple: a few named, explainable signals per rubric.

The judge model (``models/judge_model.py``) is a logistic regression over these features, so each verdict can say
which signal decided it (the reason a failed check's table shows). They are written for the two rubrics of the
judge section (``chains/schema.py``): **factual consistency** (does the reply state only what its facts hold, and
the fact the question needs?) and **tone** (is it courteous?). Nothing here is fitted: the word lists are general
English markers (negation, second-person blame, dismissive adverbs, courtesy), not phrases of any labelled row.

Pure Python over the standard library, so serving computes features without numpy's help or any model download.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

# Number words a paraphrase spells out ("four to six business days", "two years", "half an hour"): the value, so a
# spelled-out number is the same number as its digits.
NUMBER_WORDS = {
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
    "eleven": "11",
    "twelve": "12",
    "fifteen": "15",
    "twenty": "20",
    "thirty": "30",
    "forty": "40",
    "fifty": "50",
    "hundred": "100",
    "twice": "2",
    "half": "0.5",
}
# What a spelled-out number counts: "two years" is a number, "one of our products" is not.
UNITS = {"day", "hour", "minute", "week", "month", "year", "business", "point", "payment", "code", "item", "box"}
NEGATIONS = {
    "not",
    "no",
    "never",
    "cannot",
    "can't",
    "cant",
    "don't",
    "doesn't",
    "didn't",
    "won't",
    "isn't",
    "aren't",
    "wasn't",
    "shouldn't",
    "nothing",
    "none",
    "neither",
    "nor",
    "without",
    "unable",
    "only",
    "unfortunately",
}
# How many content words after a negation it governs, for the polarity comparison.
SCOPE = 2
# Sweeping words a policy rarely holds unless it says so: a reply that adds one invents a promise.
ABSOLUTES = {
    "free",
    "always",
    "every",
    "any",
    "all",
    "anytime",
    "automatically",
    "guaranteed",
    "cash",
    "including",
    "also",
    "even",
    "immediately",
    "unlimited",
    "whenever",
}
# Words a reply can swap for their opposite without a negation ("closed" for "open", "next" for "same"). Not
# "free"/"cost": "no cost" and "costs nothing" say "free" with the other word.
ANTONYMS = (
    ("open", "closed"),
    ("always", "never"),
    ("same", "next"),
    ("include", "exclude"),
    ("accept", "refuse"),
    ("accept", "reject"),
    ("allow", "forbid"),
    ("earliest", "latest"),
    ("minimum", "maximum"),
)
# Claims that something was done or will happen, which a fact sheet of policies cannot back.
ACTION_CLAIM = re.compile(
    r"\b(?:i|we)(?:'ve| have| had)\s+(?:just\s+|already\s+)?\w+(?:ed|en|t)\b|\b(?:already|just now|tomorrow|today|"
    r"this morning|yesterday|automatically|right away)\b",
    re.IGNORECASE,
)
# A question asking the customer for what the reply needs before it can act (an order number, an address).
CLARIFYING = re.compile(
    r"\b(?:could|can|would|will) you (?:please )?(?:reply|send|share|tell|give|confirm|let (?:me|us) know|provide)"
    r"\b[^?]*\?",
    re.IGNORECASE,
)
# A number with its unit ("45 days", "3 weeks"): the same number in another unit is another fact.
_MEASURE = re.compile(
    r"(\d+(?:\.\d+)?)(?:-\d+)?\s*(?:business\s+)?(minute|hour|day|week|month|year|second|point|percent|%)s?\b",
    re.IGNORECASE,
)
# Lengths of time in minutes, so "24 hours" and "a day", or "1 hour" and "an hour", are the same duration. Months
# and years are not whole multiples of these, so they only equal themselves.
_MINUTES = {"minute": 1, "hour": 60, "day": 1440, "week": 10080}
_DURATION = re.compile(
    r"\b(\d+(?:\.\d+)?|an?|one|two|three|four|five|six|seven|ten|twelve|fourteen|twenty|thirty)[\s-]+"
    r"(?:business\s+|working\s+)?(minute|hour|day|week)s?\b",
    re.IGNORECASE,
)
REFUSAL = re.compile(
    r"\b(?:(?:i am|i'm|we are|we're) (?:not able|unable)|(?:i|we) (?:can't|cannot|can not) (?:help|say|discuss|"
    r"share|advise|change|process)|not able to (?:help|process|discuss|give|share)|unable to (?:help|share|give)|"
    r"for security reasons)\b",
    re.IGNORECASE,
)
ABSTAIN = re.compile(
    r"\b(?:could not find|couldn't find|can't find|don't have (?:information|that)|not sure about|passed (?:your|it|"
    r"the)|sent your question)\b",
    re.IGNORECASE,
)
# Courtesy: apology, thanks, offers of help.
COURTESY = re.compile(
    r"\b(?:sorry|apolog\w*|thank\w*|please|happy to|glad|of course|no problem|good news|great question|"
    r"good question|congratulations|appreciate|understand|don't worry|wonderful|lovely|sure)\b",
    re.IGNORECASE,
)
# Dismissive or condescending wording: adverbs of impatience, telling the customer what they should have done,
# sarcasm markers and blame. General English, not phrases of the labelled set.
DISMISSIVE = re.compile(
    r"\b(?:obviously|clearly|literally|ugh|whatever|wow|nice try|eventually|not really|not that hard|"
    r"not complicated|rocket science|like everyone else|you know|should have|could have|would know|next time|"
    r"instead of|before (?:asking|you ask|writing)|try to|try not|be more careful|keep up|not our problem|"
    r"not our employee|on you|that is how|that's how|hurry up|shout|civil|yourself|your own|google|"
    r"check a clock|count them|scroll down|no need to|permission|if you must|anything else you|don't take it|"
    r"take it out|not a (?:job|tour)|so that's|make up your mind|changed your mind|another address|"
    r"you clearly|did you actually|if that is too|honestly|basic|pay attention|read carefully|by now|bothered|"
    r"many times|don't have time|not sure why you)\b",
    re.IGNORECASE,
)
# A sentence that opens with a bare command at the customer ("Stop refreshing", "Don't expect it faster", "Maybe
# look that up"): support replies instruct with "please" or "you can"; a bare imperative reads as an order. Only the
# verbs of impatience, not instructions a reply gives ("use the code", "send photos").
IMPERATIVE = re.compile(
    r"^(?:just |maybe |so |then |now )?(?:don't (?!worry)|do not (?!worry)|stop|go|look|check|read|try|learn|figure|"
    r"wait|calm|relax|deal)\b",
    re.IGNORECASE,
)
_CLAUSE_END = re.compile(r"[.;:,!?]+(?:\s|$)")
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+")
_WORD = re.compile(r"[a-z0-9]+(?:['.@/-][a-z0-9]+)*", re.IGNORECASE)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
_EMAILISH = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+|\b[\w-]+\.(?:com|org|net|example)(?:/[\w/-]*)?\b")
_CAPITALISED = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][a-z]+(?:\s+[A-Z][a-z0-9]+)*")
_STOPWORD_TEXT = """
    a an the and or but if of to in on at by for from with as is are was were be been being it its this that these
    those you your yours we our us i me my he she they them their there here what which who whom when where why how all
    any both each few more most other some such than too very can will would should could may might must do does did
    have has had so up out about into over after before again once also just only own same then"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())

FEATURES = (
    # factual consistency
    "unsupported_numbers",  # numbers in the reply that neither the facts nor the message hold
    "missing_numbers",  # share of the facts' numbers the reply leaves out
    "unit_mismatch",  # a number the facts give in one unit and the reply in another ("45 hours" for "45 days")
    "negation_surplus",  # negation words beyond what the facts say
    "polarity_flips",  # words of the facts negated in the reply but not in the facts, or the other way round
    "absolute_claims",  # sweeping words ("free", "always", "any") the facts do not use
    "antonym_swaps",  # a word whose opposite the facts use, where they do not use the word itself
    "unsupported_entities",  # emails, addresses, URLs, capitalised names the facts and message do not hold
    "fact_coverage",  # share of the facts' content words the reply carries
    "answer_coverage",  # share of the content words of the fact closest to the message that the reply carries
    "reply_novelty",  # share of the reply's content words from neither the facts nor the message
    "action_claims",  # "I have refunded", "tomorrow": a claim of something done or scheduled
    "refusal",  # declines to answer
    "clarifying",  # asks the customer for what it needs before acting
    "abstains_honestly",  # says it could not find the answer (right only when the facts are empty)
    "no_facts",  # the reply was given no facts
    "cosine",  # bag-of-words cosine between reply and facts
    "weakest_fact_coverage",  # share of content words the reply carries of the fact sentence it carries least of
    "best_fact_coverage",  # the same, of the fact sentence it carries most of
    "novel_sentence",  # the reply sentence with the largest share of content words from neither facts nor message
    # tone
    "dismissive",  # dismissive or condescending wording
    "courtesy",  # apologies, thanks, offers
    "questions",  # question marks (rhetorical questions at the customer)
    "you_blame",  # "you" near a dismissive word
    "short_curt",  # a terse reply with no courtesy
    "imperatives",  # sentences opening with a bare command at the customer ("Stop ...", "Don't expect ...")
)
FACTUAL = FEATURES[:20]
TONE = FEATURES[20:]


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def _stem(word: str) -> str:
    """A crude suffix strip so "refunds"/"refunded"/"refund" meet; enough for overlap, never shown."""
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def _content(text: str) -> list[str]:
    return [_stem(w) for w in _words(text) if w not in STOPWORDS and not w.isdigit()]


def numbers(text: str) -> set[str]:
    """The numbers a text states, digits or words, ranges split ("5-7" -> 5, 7), "$" and separators ignored."""
    found = {n.replace(",", "") for n in _NUMBER.findall(text)}
    found = {n[:-3] if n.endswith(".00") else n for n in found}
    words = _words(text)
    following = [*words[1:], ""] if words else []
    found |= {
        NUMBER_WORDS[w]
        for w, nxt in zip(words, following, strict=True)
        if w in NUMBER_WORDS and (_stem(nxt) in UNITS or nxt in NUMBER_WORDS or nxt in {"to", "or", "an", "a"})
    }
    # A spelled-out number joined to its unit ("a two-year warranty", "a thirty-day window") is that number, as
    # "2-year" is 2.
    found |= {
        NUMBER_WORDS[head]
        for head, _, unit in (w.partition("-") for w in words if "-" in w)
        if head in NUMBER_WORDS and _stem(unit) in UNITS
    }
    return found


def durations(text: str) -> set[tuple[str, float]]:
    """Each length of time ``text`` states, as (the number as written, minutes): ("24", 1440.0) for "24 hours",
    ("1", 1440.0) for "a day"."""
    found = set()
    for amount, unit in _DURATION.findall(text):
        word = amount.lower()
        value = "1" if word in ("a", "an") else NUMBER_WORDS.get(word, word)
        found.add((value, float(value) * _MINUTES[unit.lower()]))
    return found


def _negations(text: str) -> Counter[str]:
    words = _words(text)
    return Counter(w for w in words if w in NEGATIONS)


def _polarity(text: str) -> tuple[set[str], set[str]]:
    """The content words of ``text`` under a negation (the next SCOPE content words of its clause), and the rest.
    ("until they ship" is not read as a negation: it would flag the subject, "the order", as negated.)"""
    negated, plain = set(), set()
    for clause in _CLAUSE_END.split(text):  # a negation does not reach past its clause
        remaining = 0
        for word in _words(clause):
            if word in NEGATIONS or word.endswith("n't"):
                remaining = SCOPE
                continue
            if word in STOPWORDS or word.isdigit():
                continue
            stem = _stem(word)
            if remaining:
                negated.add(stem)
                remaining -= 1
            else:
                plain.add(stem)
    return negated, plain


def _entities(text: str) -> set[str]:
    found = {m.lower().rstrip(".") for m in _EMAILISH.findall(text)}
    for m in _CAPITALISED.findall(text):
        if m.lower() not in STOPWORDS and m.lower() not in NUMBER_WORDS:
            found.add(m.lower())
    return found


@dataclass(frozen=True)
class Signals:
    """The features of one triple, with what triggered the ones a reason names."""

    values: dict[str, float]
    unsupported_numbers: tuple[str, ...]
    unsupported_entities: tuple[str, ...]
    negations: tuple[str, ...]
    flips: tuple[str, ...]
    absolutes: tuple[str, ...]
    dismissive: tuple[str, ...]
    swaps: tuple[str, ...] = ()
    units: tuple[str, ...] = ()

    def vector(self) -> list[float]:
        return [self.values[name] for name in FEATURES]


def signals(message: str, facts: Sequence[str], reply: str) -> Signals:
    """The features of ``reply`` judged against ``facts`` (the sentences it was given) and the customer's message."""
    fact_text = " ".join(facts)
    known_numbers = numbers(fact_text) | numbers(message)
    reply_numbers = numbers(reply)
    # A duration the reply states in other units ("a day" for "24 hours") is the facts' number, not a new one.
    fact_durations, reply_durations = durations(fact_text), durations(reply)
    fact_minutes, reply_minutes = {m for _, m in fact_durations}, {m for _, m in reply_durations}
    restated = {n for n, m in reply_durations if m in fact_minutes}
    unsupported = sorted(reply_numbers - known_numbers - restated)
    fact_numbers = numbers(fact_text)
    carried = reply_numbers | {n for n, m in fact_durations if m in reply_minutes}
    missing = len(fact_numbers - carried) / len(fact_numbers) if fact_numbers else 0.0

    fact_units = {(n, u.lower()) for n, u in _MEASURE.findall(fact_text)}
    fact_measured = {n for n, _ in fact_units}
    mismatched = {
        f"{n} {u.lower()}"
        for n, u in _MEASURE.findall(reply)
        if n in fact_measured and (n, u.lower()) not in fact_units
    }
    unsupported = sorted({*unsupported, *mismatched})
    surplus = sorted((_negations(reply) - _negations(fact_text)).elements())
    fact_negated, fact_plain = _polarity(fact_text)
    reply_negated, reply_plain = _polarity(reply)
    # Negated in the reply, stated plainly in the facts (and never negated there), or the reverse.
    flips = sorted(
        ((reply_negated - reply_plain) & (fact_plain - fact_negated))
        | ((reply_plain - reply_negated) & (fact_negated - fact_plain))
    )
    fact_words = set(_words(fact_text))
    fact_stems, reply_stems = {_stem(w) for w in fact_words}, {_stem(w) for w in _words(reply)}
    message_stems = {_stem(w) for w in _words(message)}
    swaps = sorted(
        {
            w
            for a, b in ANTONYMS
            for w, other in ((a, b), (b, a))
            if w in reply_stems and other in fact_stems and w not in fact_stems and w not in message_stems
        }
    )
    absolutes = sorted({w for w in _words(reply) if w in ABSOLUTES and w not in fact_words})

    known_entities = _entities(fact_text) | _entities(message)
    known_words = set(_words(fact_text)) | set(_words(message))
    known_stems = {_stem(w) for w in known_words}
    odd_entities = sorted(
        e for e in _entities(reply) - known_entities if not all(_stem(w) in known_stems for w in _words(e))
    )

    fact_content, reply_content = set(_content(fact_text)), _content(reply)
    message_content = set(_content(message))
    coverage = len(fact_content & set(reply_content)) / len(fact_content) if fact_content else 1.0
    # The fact that answers: the one sharing most content words with the message (the first on a tie).
    per_fact = [set(_content(f)) for f in facts]
    answer = max(per_fact, key=lambda words: len(words & set(_content(message))), default=set())
    answer_coverage = len(answer & set(reply_content)) / len(answer) if answer else 1.0
    novel = [w for w in reply_content if w not in fact_content and w not in message_content]
    novelty = len(novel) / len(reply_content) if reply_content else 0.0
    # Per fact sentence: a reply that carries every fact but one, or that invents one sentence among faithful ones,
    # shows in its extremes, not in the averages above.
    reply_set = set(reply_content)
    fact_coverages = [len(words & reply_set) / len(words) for words in per_fact if words] or [1.0]
    sentence_novelties = [
        sum(1 for w in words if w not in fact_content and w not in message_content) / len(words)
        for words in (_content(s) for s in _SENTENCE_END.split(reply))
        if words
    ]
    imperatives = sum(1 for s in _SENTENCE_END.split(reply) if IMPERATIVE.search(s.strip()))
    a, b = Counter(_content(fact_text)), Counter(reply_content)
    dot = sum(a[w] * b[w] for w in a.keys() & b.keys())
    norm = math.sqrt(sum(v * v for v in a.values())) * math.sqrt(sum(v * v for v in b.values()))

    dismissive = [m.lower() for m in DISMISSIVE.findall(reply)]
    courtesy = len(COURTESY.findall(reply))
    lowered = reply.lower()
    you_blame = sum(
        1
        for m in re.finditer(r"\byou(?:r|'re|'d)?\b", lowered)
        if DISMISSIVE.search(lowered[m.start() : m.start() + 60])
    )
    words = _words(reply)
    values = {
        "unsupported_numbers": float(len(unsupported)),
        "missing_numbers": missing,
        "unit_mismatch": float(len(mismatched)),
        "negation_surplus": float(len(surplus)),
        "polarity_flips": float(len(flips)),
        "absolute_claims": float(len(absolutes)),
        "antonym_swaps": float(len(swaps)),
        "unsupported_entities": float(len(odd_entities)),
        "fact_coverage": coverage,
        "answer_coverage": answer_coverage,
        "reply_novelty": novelty,
        "action_claims": float(len(ACTION_CLAIM.findall(reply))),
        "refusal": float(bool(REFUSAL.search(reply))),
        "clarifying": float(bool(CLARIFYING.search(reply))),
        "abstains_honestly": float(bool(ABSTAIN.search(reply))),
        "no_facts": float(not facts),
        "cosine": dot / norm if norm else 0.0,
        "weakest_fact_coverage": min(fact_coverages),
        "best_fact_coverage": max(fact_coverages),
        "novel_sentence": max(sentence_novelties, default=0.0),
        "dismissive": float(len(dismissive)),
        "courtesy": float(courtesy),
        "questions": float(reply.count("?")),
        "you_blame": float(you_blame),
        "short_curt": float(len(words) < 14 and courtesy == 0),
        "imperatives": float(imperatives),
    }
    return Signals(
        values,
        tuple(unsupported),
        tuple(odd_entities),
        tuple(surplus),
        tuple(flips),
        tuple(absolutes),
        tuple(dismissive),
        tuple(swaps),
        tuple(sorted(mismatched)),
    )
