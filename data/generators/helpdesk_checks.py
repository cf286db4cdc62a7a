"""The checks across the helpdesk files: entity spans, counts per intent and group, no held-out phrasing leaked
into training, attachments from the digits test split, reference replies, aliases."""

from __future__ import annotations

import re
from collections import Counter

from generators.common import INTENTS
from generators.golden_helpdesk import EDGE_GOLDEN, GOLDEN, names_alias
from generators.messages import TRAIN
from generators.phrasing import SLOT_RE, clean_tpl, length_bucket
from generators.support_kb import ALIASES, PRODUCTS


def literal_chunks(template: str) -> list[str]:
    return [c.strip(" .,?!:;-").lower() for c in SLOT_RE.split(clean_tpl(template)) if c.strip(" .,?!:;-")]


def check(messages, golden, traffic, test_indices) -> None:
    for row in messages:
        for e in row["entities"]:
            assert row["text"][e["start"] : e["end"]] == e["value"], (row["id"], e)
            if e["type"] == "order_id":
                assert re.fullmatch(r"\d{5}", e["value"]), e
            if e["type"] == "email":
                assert e["value"].split("@")[1] in ("example.com", "example.org", "example.net"), e
            if e["type"] == "product":
                assert e["value"] in PRODUCTS, e
        assert row["length"] == length_bucket(row["text"])
    counts = Counter(r["intent"] for r in messages)
    assert set(counts) == set(INTENTS) and all(150 <= c <= 260 for c in counts.values()), counts
    groups = Counter(r["paraphrase_group"] for r in messages)
    assert all(3 <= c <= 8 for c in groups.values()), groups
    for intent in INTENTS:
        assert len({g for g in groups if g.startswith(intent + "-")}) >= 35
    # Held-out phrasings: no literal chunk of a golden template that is 4+ words long appears in any message.
    train_text = "\n".join(r["text"].lower() for r in messages)
    train_tpls = {clean_tpl(t).lower() for ts in TRAIN.values() for t in ts}
    held_out = [tpl for tpls in GOLDEN.values() for tpl in tpls] + [e[1] for e in EDGE_GOLDEN]
    leaks = [
        (tpl, chunk)
        for tpl in held_out
        for chunk in literal_chunks(tpl)
        if tpl.lower() in train_tpls or (len(chunk.split()) >= 4 and chunk in train_text)
    ]
    assert not leaks, leaks
    test_set = set(test_indices)
    for case in golden + traffic:
        att = case["attachment"]
        if att is not None:
            assert len(att["digits"]) == 5 and all(i in test_set for i in att["digits"]), case["id"]
    for case in golden:
        oid = case["expected"]["entities"].get("order_id")
        if case["attachment"] is not None:
            assert oid not in case["message"], case["id"]
        for m in case["must_contain"]:
            assert m in case["reference_reply"], (case["id"], m)
        for m in case["must_not_contain"]:
            assert m not in case["reference_reply"], (case["id"], m)
    assert [t["received_at"] for t in traffic] == sorted(t["received_at"] for t in traffic)
    # Aliases: one product each, and every edge case said to name a product by alias does.
    assert set(ALIASES) == set(PRODUCTS), set(ALIASES) ^ set(PRODUCTS)
    owners = Counter(a.lower() for names in ALIASES.values() for a in names)
    assert all(n == 1 for n in owners.values()) and not owners.keys() & {p.lower() for p in PRODUCTS}, owners
    for _, tpl, alias_of, _ in EDGE_GOLDEN:
        assert alias_of is None or any(names_alias(tpl, a) for a in ALIASES[alias_of]), tpl
    messages_seen = Counter(c["message"] for c in golden)
    assert all(messages_seen[tpl] == 1 for _, tpl, _, _ in EDGE_GOLDEN if "{" not in tpl), messages_seen
