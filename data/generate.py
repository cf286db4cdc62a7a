"""Generate the shipped, seeded helpdesk and kbqa datasets.

Run from the project root:  python data/generate.py  [--out DIR]

Writes (byte-identically on every rerun), under data/ or DIR:
  support/messages.jsonl        labelled training messages (paraphrase-grouped)
  support/knowledge_base.yaml   facts replies may quote + product catalogue
  golden/helpdesk.jsonl         curated chain cases built from held-out phrasings
  traffic/helpdesk.jsonl        unlabelled recorded requests for replay
  kbqa/knowledge_base.yaml      the kbqa release's help-centre facts and their headings
  golden/kbqa.jsonl             questions with the fact each must be answered from: the held-out part
  golden/kbqa_build.jsonl       the part of those questions used while building the kbqa chain
  SOURCES.md                    provenance, counts and split notes

What each file holds and how it is built is in data/generators/, one module per file (the package's docstring
lists them); this script draws them in a fixed order, checks them and writes them. Only stdlib
``random.Random(seed)`` drives the generation. The digits test split (for attachment photos) is computed with the
project's own ``assign_splits`` so attachments never show an image a digits model trained on.
"""

from __future__ import annotations

import argparse
import random
from collections import Counter
from pathlib import Path

from generators.attachments import Attacher, digits_test_split
from generators.common import DATA, ROOT, SEED, sha, write_jsonl
from generators.golden_helpdesk import build_edge_golden, build_golden
from generators.helpdesk_checks import check
from generators.kbqa_golden import build_kbqa_golden, check_kbqa, split_kbqa_golden
from generators.kbqa_kb import write_kbqa_kb
from generators.messages import build_messages
from generators.sources import write_sources
from generators.support_kb import write_kb
from generators.traffic import build_traffic


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out", type=Path, default=DATA, help="folder to write into (default: data/, the shipped files)"
    )
    out = parser.parse_args(argv).out.resolve()

    test_indices, labels = digits_test_split()
    messages = build_messages(random.Random(SEED + 1))
    golden = build_golden(random.Random(SEED + 2), Attacher(random.Random(SEED + 3), test_indices, labels))
    golden += build_edge_golden(random.Random(SEED + 7), first_id=len(golden) + 1)
    traffic, traffic_meta = build_traffic(
        random.Random(SEED + 4), Attacher(random.Random(SEED + 5), test_indices, labels)
    )
    for case in golden:
        if case["attachment"]:
            digits = "".join(str(labels[i]) for i in case["attachment"]["digits"])
            assert digits == case["expected"]["entities"]["order_id"], case["id"]
    check(messages, golden, traffic, test_indices)
    kbqa_golden = build_kbqa_golden(random.Random(SEED + 6))
    check_kbqa(kbqa_golden)
    kbqa_build, kbqa_held_out = split_kbqa_golden(kbqa_golden, random.Random(SEED + 8))

    outputs = {
        "support/messages.jsonl": messages,
        "golden/helpdesk.jsonl": golden,
        "traffic/helpdesk.jsonl": traffic,
        "golden/kbqa.jsonl": kbqa_held_out,
        "golden/kbqa_build.jsonl": kbqa_build,
    }
    for rel, rows in outputs.items():
        write_jsonl(out / rel, rows)
    write_kb(out / "support/knowledge_base.yaml")
    write_kbqa_kb(out / "kbqa/knowledge_base.yaml")
    write_sources(out / "SOURCES.md", messages, golden, traffic, traffic_meta, test_indices, kbqa_golden, kbqa_build)

    print("messages per intent:", dict(Counter(r["intent"] for r in messages)))
    for key in ("channel", "register", "length"):
        print(f"messages per {key}:", dict(Counter(r[key] for r in messages)))
    print("golden per intent:", dict(Counter(c["expected"]["intent"] for c in golden)))
    print("golden with attachment:", sum(1 for c in golden if c["attachment"]))
    print("traffic:", len(traffic), "with attachment:", sum(1 for t in traffic if t["attachment"]))
    print(
        "kbqa golden:",
        len(kbqa_golden),
        "unanswerable:",
        sum(1 for c in kbqa_golden if c["expected"]["intent"] is None),
    )
    print("kbqa build part:", len(kbqa_build), "held out:", len(kbqa_held_out))
    for rel in [*outputs, "support/knowledge_base.yaml", "kbqa/knowledge_base.yaml", "SOURCES.md"]:
        print(f"{sha(out / rel)}  {_shown(out / rel)}")


if __name__ == "__main__":
    main()
