"""The generators of ``data/generate.py``: one module per file it writes, and what they share.

- ``common``: the project root, seeds, the schema's intents, the JSONL writer
- ``support_kb``: data/support/knowledge_base.yaml (facts, catalogue, aliases, generic product nouns)
- ``phrasing``: rendering shared by messages, golden cases and traffic (openers, closers, typos, entity slots)
- ``attachments``: the digits test split that attachment photos are drawn from
- ``messages``: data/support/messages.jsonl (the core training phrasings, secondary asks)
- ``golden_helpdesk``: data/golden/helpdesk.jsonl (held-out phrasings, reference replies, edge cases)
- ``traffic``: data/traffic/helpdesk.jsonl (traffic-only phrasings)
- ``helpdesk_checks``: the checks across messages, golden cases and traffic (spans, counts, no leaked phrasing)
- ``kbqa_kb``: data/kbqa/knowledge_base.yaml (the help-centre facts, with their headings and golden questions)
- ``kbqa_golden``: data/golden/kbqa.jsonl (the questions, abstentions and their checks)
- ``sources``: data/SOURCES.md
"""
