# ruff: noqa: E501  (long literal phrasings, replies and Markdown lines are data, not code)
"""data/SOURCES.md: provenance, counts and split notes of everything under data/."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from generators.common import INTENTS, SEED
from generators.golden_helpdesk import EDGE_GOLDEN, GOLDEN
from generators.kbqa_golden import KBQA_ABSTAIN_KEY, KBQA_OUT_OF_SCOPE
from generators.kbqa_kb import KBQA_FACTS
from generators.messages import TRAIN
from generators.support_kb import ALIASES, FACTS, PRODUCTS
from generators.traffic import EXTRA


def table(counter: Counter, keys=None) -> str:
    keys = keys if keys is not None else sorted(counter)
    return "\n".join(f"| {k} | {counter.get(k, 0)} |" for k in keys)


def write_sources(path: Path, messages, golden, traffic, traffic_meta, test_indices, kbqa_golden, kbqa_build=()) -> str:
    intent_c = Counter(r["intent"] for r in messages)
    stats = {
        "intent": table(intent_c, INTENTS),
        "channel": table(Counter(r["channel"] for r in messages)),
        "register": table(Counter(r["register"] for r in messages)),
        "length": table(Counter(r["length"] for r in messages), ["short", "medium", "long"]),
        "secondary": sum(1 for r in messages if r["secondary_intent"]),
        "entities": table(Counter(e["type"] for r in messages for e in r["entities"])),
        "groups": len({r["paraphrase_group"] for r in messages}),
    }
    hard = [f"{i}-t{k:03d}" for i in INTENTS for k, t in enumerate(TRAIN[i], start=1) if t.startswith("~")]
    g_intent = Counter(c["expected"]["intent"] for c in golden)
    g_att = sum(1 for c in golden if c["attachment"])
    t_att = sum(1 for t in traffic if t["attachment"])
    t_src = Counter(s for _, s in traffic_meta)
    golden_list = "\n".join(f"- **{i}**: " + "; ".join(f"`{t}`" for t in GOLDEN[i]) for i in INTENTS)
    edge_list = "\n".join(f"- {'ask' if ask else 'act'}, **{i}**: `{t}`" for i, t, _, ask in EDGE_GOLDEN)
    g_abstain = sum(1 for c in golden if c["expected"].get("abstain"))
    n_aliases = sum(len(v) for v in ALIASES.values())
    extra_list = "\n".join(f"- **{i}**: " + "; ".join(f"`{t}`" for t in EXTRA[i]) for i in INTENTS)
    kbqa_answerable = sum(1 for c in kbqa_golden if c["expected"]["intent"] is not None)
    kbqa_table = "\n".join(f"| `{f}` | {key} | {len(qs)} |" for f, (_, key, _, qs) in KBQA_FACTS.items())
    text = f"""# Data sources

Everything under `data/` is either bundled with scikit-learn or generated offline by `data/generate.py`.
Nothing is downloaded. This file is itself written by the generator (counts below are printed by it).

## Bundled with scikit-learn (nothing downloaded)

- **Iris** - `sklearn.datasets.load_iris()`, 150 rows, 3 classes (Fisher, 1936; UCI ML repository), shipped
  inside the scikit-learn wheel.
- **Digits** - `sklearn.datasets.load_digits()`, 1,797 8x8 greyscale images of handwritten digits 0-9 (UCI ML
  hand-written digits, test part), shipped inside the scikit-learn wheel. Loaded through
  `release_assets.datasets.digits.load_digits_arrays`.

## Generated: `python data/generate.py` (run from the project root)

- Seed: `{SEED}` (stdlib `random.Random`; one independent `Random(SEED + k)` stream per output file).
- Deterministic: a rerun rewrites every file byte-identically (JSON with fixed key order, `\\n` line endings).
- The generator also validates its own output (entity spans, counts, held-out phrasings, attachment indices)
  and fails loudly if any check breaks.

| file | rows | what |
|---|---|---|
| `support/messages.jsonl` | {len(messages)} | labelled customer-support messages (training data) |
| `support/knowledge_base.yaml` | {len(FACTS)} facts, {len(PRODUCTS)} products | facts replies may quote + catalogue |
| `golden/helpdesk.jsonl` | {len(golden)} | curated chain cases from held-out phrasings |
| `traffic/helpdesk.jsonl` | {len(traffic)} | unlabelled recorded requests for replay / shadow runs |
| `kbqa/knowledge_base.yaml` | {len(KBQA_FACTS)} facts | help-centre facts of a fictional store, with their headings |
| `golden/kbqa.jsonl` | {len(kbqa_golden) - len(kbqa_build)} | held-out questions, each with the fact its answer must come from |
| `golden/kbqa_build.jsonl` | {len(kbqa_build)} | the other questions, used while building the kbqa chain |

### `support/messages.jsonl`

One JSON object per line:
`{{"id", "text", "intent", "secondary_intent", "paraphrase_group", "entities", "channel", "register", "length"}}`.
`entities` is a list of `{{"type", "start", "end", "value"}}` with `text[start:end] == value`; types are
`order_id` (exactly 5 digits; a leading `#` is outside the span), `email` (example.com/.org/.net only),
`product` (catalogue name), `amount` (the number only, e.g. `49.99` inside `$49.99`) and `date` (surface
text, e.g. `March 3`, `3 March`, `Sep 14`, `2026-09-14`). `length` buckets the final text by whitespace word
count: short <= 8, medium 9-30, long > 30.

Every message is rendered from a **core phrasing** (a template with entity slots); `paraphrase_group` is that
phrasing's id (e.g. `refund-t017`). There are {stats["groups"]} groups ({len(TRAIN["refund"])} per intent),
each rendered 3-5 times with different entities, shared openers/fillers/closers, channel/register styling,
casing (lower-case chat, occasional ALL CAPS), typos (~15% of messages: swapped, dropped, doubled or
neighbouring-key letters in non-entity words) and, for ~7%, an appended second ask (`secondary_intent`, from a
small pool of secondary clauses; `intent` stays the main ask). Openers, fillers and closers are drawn from one
pool shared by all intents, so they carry no intent signal.

**Leakage-free splits:** split with
`assign_splits(intents, paraphrase_groups, test=..., val=..., seed=...)` from
`release_assets.datasets.split`. All renderings of one core phrasing share a group and so land on the same side,
so test measures generalisation to unseen phrasings, not memorised templates.

Deliberately ambiguous phrasings (~4% of groups, two per intent; the label is the most plausible reading):
{", ".join(f"`{h}`" for h in hard)}.

Counts (messages.jsonl):

| intent | messages |
|---|---|
{stats["intent"]}

| channel | messages |
|---|---|
{stats["channel"]}

| register | messages |
|---|---|
{stats["register"]}

| length | messages |
|---|---|
{stats["length"]}

| entity type | mentions |
|---|---|
{stats["entities"]}

Messages with a `secondary_intent`: {stats["secondary"]}.

### `support/knowledge_base.yaml`

`facts:` maps fact id -> one sentence; `products:` lists the {len(PRODUCTS)} catalogue names used by the
`product` entity; `aliases:` maps each product to the partial names customers use for it ({n_aliases} in all,
e.g. "rain jacket" for Harbor Rain Jacket), which the chain's extractor matches whole-word, case-insensitively,
longest first. Only unambiguous partial names are aliases: one-word generics such as "lamp", "desk" or "watch"
could mean several products and stay unmatched.

Intent -> fact used by the golden `must_contain`: refund -> `refund_window` ("30 days"),
order_status -> `shipping_standard` ("3-5 business days"), cancel_order -> `cancel_policy` ("until they ship"),
change_address -> `address_change` ("until the order ships"), product_question -> `product_warranty`
("2-year warranty", plus the product name when one is mentioned), account_access -> `account_reset`
("example.com/reset"), complaint -> `complaint_escalation` ("1 business day"), other -> nothing, or
`support_hours` ("Monday to Friday") for the support-hours question. Refund, order_status and cancel_order
cases that carry an order id (in text or attachment) must also echo that order id. Cancel_order, change_address
and order_status cases without an order id expect the chain to ask for it instead (`expected.abstain: true`,
`must_contain: ["order number"]`): those intents act on one order (chain.yaml `clarify.requires`).

### `golden/helpdesk.jsonl`

One JSON object per line:
`{{"id", "message", "attachment", "expected": {{"intent", "entities", "abstain"?}}, "must_contain",
"must_not_contain", "reference_reply"}}`. `expected.entities` holds only the entity types present (`order_id`,
`email`, `product`, `amount`, `date`); a generic noun that is a catalogue alias (e.g. "yoga mat") counts as a
mention of its product. `expected.abstain: true` marks a case the chain must answer with a clarifying question
({g_abstain} cases); cases without it may be acted on. {len(golden)} cases; per intent:
{", ".join(f"{i} {g_intent[i]}" for i in INTENTS)}. {g_att} cases ({g_att / len(golden):.0%}) carry an attachment.

**Held-out phrasings.** Golden messages are rendered only from these core phrasings, none of which is used in
`messages.jsonl` (the generator asserts that no 4+-word literal chunk of them occurs in any training message):

{golden_list}

**Edge cases** (the last {len(EDGE_GOLDEN)} cases, `random.Random(SEED + 7)`): written as is, without openers,
typos or casing, from what 60 independently written messages showed the chain getting wrong: an order number
right before a full stop, amounts without a currency sign, products named by an alias, and messages the chain
must not act on (greetings, vague asks, an order intent without its order number). Also held out from training:

{edge_list}

### Attachments (golden and traffic)

An attachment is a photo of a handwritten order number: `{{"digits": [i1, ..., i5]}}`, five indices into
`sklearn.datasets.load_digits()`; the concatenated labels form the 5-digit order id, and the message text then
refers to the photo instead of spelling the number. Indices come **only from the digits test split**, computed
exactly as the digits model's split:

```python
from release_assets.datasets.digits import load_digits_arrays, image_group
from release_assets.datasets.split import assign_splits
images, labels = load_digits_arrays()
sides = assign_splits([str(l) for l in labels], [image_group(im) for im in images], test=0.25, val=0.0, seed=7)
test_indices = [i for i, s in enumerate(sides) if s == "test"]   # {len(test_indices)} images
```

The first digit is never 0; each digit's image is picked by the seeded RNG among test images with that label.

### `traffic/helpdesk.jsonl`

One JSON object per line: `{{"id", "received_at", "channel", "message", "attachment"}}`, unlabelled,
`received_at` ISO-8601 UTC (`...Z`) spread over 2026-10-05 .. 2026-10-11 and sorted. {len(traffic)} requests,
drawn from training phrasings ({t_src["train"]}), held-out golden phrasings ({t_src["golden"]}) and
traffic-only phrasings ({t_src["extra"]}); {t_att} ({t_att / len(traffic):.0%}) carry an attachment.
Traffic-only phrasings:

{extra_list}

### `kbqa/knowledge_base.yaml`

The help centre of Pinecrest Supply Co., a fictional outdoor-gear store, written for this project (no real
store's policies). `facts:` maps fact id -> one sentence; `questions:` maps fact id -> the help-centre
heading(s) the fact sits under. The kbqa chain's `retrieve` step embeds each fact's id words, headings and
sentence with the release's sentence-embedding model, and its `answer` step quotes the retrieved sentence word for
word. The second heading of eight facts was written while reading the chain's misses on `golden/kbqa_build.jsonl`
only. Every fact has a key
phrase that no other fact contains (asserted), so an answer from the wrong fact cannot pass `must_contain`.

### `golden/kbqa.jsonl`

One JSON object per line: `{{"id", "message", "expected": {{"intent"}}, "must_contain", "must_not_contain",
"reference_reply"}}`. `expected.intent` is the id of the fact the answer must come from, or `null` for a question
the knowledge base cannot answer (the chain must abstain); `must_contain` is that fact's key phrase (for an
abstention: `{KBQA_ABSTAIN_KEY}`), `must_not_contain` template debris, `reference_reply` the fact's sentence (or
the abstention). {len(kbqa_golden)} cases, {kbqa_answerable} answerable (2-3 per fact) and {len(kbqa_golden) - kbqa_answerable} unanswerable, in an
order shuffled by `Random(SEED + 6)`.

**Split.** Per fact, half its questions (rounded up) go to `golden/kbqa_build.jsonl`, for building the chain
(choosing the retriever, its `min_score`, the headings), and the rest stay in `golden/kbqa.jsonl`, the held-out
part the release's gates report on; half the unanswerable questions each way (`Random(SEED + 8)`, per fact, so
every fact is asked in both parts).

**Phrased differently.** Questions are written the way customers ask, not from the facts: none contains its
fact's key phrase, none shares a run of 4 words with its fact's sentence or headings, and none is a heading (the
generator asserts all three). Many use other words than the fact (`borrow` for `rent`, `money back` for
`refund`), which a lexical retriever cannot bridge: the suite measures that gap rather than hiding it.

| fact | key phrase | questions |
|---|---|---|
{kbqa_table}

Unanswerable questions: {"; ".join(f"`{q}`" for q in KBQA_OUT_OF_SCOPE)}.
"""
    text += judge_labels_section(LABELLED)
    path.write_text(text, encoding="utf-8", newline="\n")
    return text


# Written by hand, not by this generator: SOURCES.md describes it so the notes stay in one place.
LABELLED = Path(__file__).resolve().parents[1] / "judge" / "labelled.jsonl"


def judge_labels_section(labelled: Path) -> str:
    """The notes on data/judge/labelled.jsonl, with counts read from the file itself."""
    rows = [json.loads(line) for line in labelled.read_text(encoding="utf-8").splitlines() if line.strip()]
    by_split = {
        split: Counter(row["verdict"] for row in rows if row["split"] == split) for split in ("train", "heldout")
    }
    kinds = Counter(row["kind"] for row in rows)
    kind_table = "\n".join(f"| `{kind}` | {n} |" for kind, n in sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0])))
    groups = {split: len({row["group"] for row in rows if row["split"] == split}) for split in ("train", "heldout")}
    domains = Counter(row["domain"] for row in rows)
    return f"""
## Written by hand: `judge/labelled.jsonl` (not generated)

The judge's calibration set: {len(rows)} (message, facts, reply, verdict) rows ({domains["helpdesk"]} helpdesk,
{domains["kbqa"]} kbqa), each reply written and labelled one at a time, not by a rule or a script. They were
written by the AI engineering session that built the judge (issue 27) and have not yet been reviewed by a second
labeller, so agreement with them is agreement with one careful annotator. `data/generate.py` does not write this
file, and the judge's generated training negatives are not drawn from it. One JSON object per line:
`{{"id", "group", "domain", "split", "kind", "message", "facts", "reply", "verdicts": {{"factual_consistency",
"tone"}}, "verdict"}}`.

**How it was written.** A *group* is one customer message (in the style of the golden suites) with the facts its
reply was given: the knowledge-base sentences the chain's reply step would quote (`support/knowledge_base.yaml`
for helpdesk, the one retrieved fact of `kbqa/knowledge_base.yaml` for kbqa, none for a question the help centre
cannot answer) plus, for helpdesk, what the message told us (its order number, email or product) as a sentence.
For each group, five or six replies were then written by hand, each aiming at one `kind` of hard case, and each
labelled on its own against the two rubrics below. The wording of every wrong reply was chosen case by case
(which number to change, how to negate, what to invent, how to be rude), not by a rule.

**Rubrics.** `factual_consistency` fails when the reply states anything the facts contradict or do not support (a
changed number, time, amount, order number, email or address; a negation or reversed condition; an invented
policy, action or promise) or leaves out the fact that answers the customer's question (including declining to
answer when the facts hold the answer). It passes paraphrases, reordering, courtesy, dropping a fact the
question did not need, asking for a missing order number, and an honest "I could not find that" when the facts do
not answer the question. `tone` fails when the reply is rude, sarcastic, condescending or blames the customer,
whatever its facts. `verdict` is `pass` only when both pass.

**Split.** Fixed by group (the `split` field): all replies to one message are on the same side, so the held-out
half ({groups["heldout"]} groups) has no message or reply the judge was trained on; the judge trains on `train`
({groups["train"]} groups) and is scored on `heldout` only.

| split | pass | fail |
|---|---|---|
| train | {by_split["train"]["pass"]} | {by_split["train"]["fail"]} |
| heldout | {by_split["heldout"]["pass"]} | {by_split["heldout"]["fail"]} |

| kind | rows |
|---|---|
{kind_table}

Kinds: `faithful` (close to the chain's template), `paraphrase` (right facts, other words), `wrong_number` (one
number changed, the rest fluent and right), `negation` (a fact negated or its condition reversed),
`wrong_entity` (a wrong order number, email, address or product name), `invented` (a claim or promise the facts do
not hold), `partial` (a fact left out: fails only if it was the one the question needed), `polite_refusal`
(declines kindly: fails when the facts hold the answer, passes when they do not), `rude` (right facts, rude
tone), `rude_wrong` (both), `clarify` (asks for the order number), `abstain` (the kbqa abstention).
"""
