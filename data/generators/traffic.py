"""data/traffic/helpdesk.jsonl: unlabelled recorded requests for replay, from training, held-out and traffic-only
phrasings."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from generators.attachments import Attacher
from generators.common import INTENTS
from generators.golden_helpdesk import GOLDEN
from generators.messages import SECONDARY, TRAIN
from generators.phrasing import Context, clean_tpl, compose, pick_style, slots_of

# Traffic-only phrasings (neither in messages.jsonl nor in golden).
EXTRA = {
    "refund": [
        "Refund request for {order}.",
        "How can I return an item and get my money?",
        "I'm still waiting on the refund for the {product}.",
        "Need my {amount} back for {order}",
    ],
    "order_status": [
        "Tracking for {order} please",
        "Did {order} ship?",
        "Status of my delivery?",
        "When does the {product} arrive?",
    ],
    "cancel_order": [
        "Cancellation request: {order}",
        "cancel order pls",
        "I want to cancel, it was a mistake.",
        "Can you cancel the {product} order?",
    ],
    "change_address": [
        "Address change for {order}",
        "wrong address on my parcel",
        "Update the delivery address on {order} to {addr}",
        "can i change the address?",
    ],
    "product_question": [
        "Specs for the {product}?",
        "Is the {product} in stock?",
        "Does the {product} come in black?",
        "how does the {product} work",
    ],
    "account_access": [
        "login issue",
        "password reset not working",
        "can't sign in to {email}",
        "Account locked",
    ],
    "complaint": [
        "Very bad service.",
        "I'm not happy with {order} at all.",
        "complaint about the courier",
        "disappointed again",
    ],
    "other": [
        "Hello?",
        "Are you open tomorrow?",
        "Do you have a referral program?",
        "Great products!",
    ],
}


def build_traffic(rng: random.Random, attacher: Attacher, n: int = 640, attach_p: float = 0.6):
    start = datetime(2026, 10, 5, tzinfo=UTC)
    rows = []
    meta = []
    for _ in range(n):
        intent = rng.choice(INTENTS)
        r = rng.random()
        source = "train" if r < 0.6 else ("golden" if r < 0.85 else "extra")
        pool = {"train": TRAIN, "golden": GOLDEN, "extra": EXTRA}[source][intent]
        tpl = clean_tpl(rng.choice(pool))
        channel, register = pick_style(rng)
        digits = None
        order_id = None
        if "order" in slots_of(tpl) and rng.random() < attach_p:
            order_id, digits = attacher.make()
        sec_tpl = None
        if source == "train" and rng.random() < 0.08:
            sec_tpl = rng.choice(SECONDARY[rng.choice([i for i in INTENTS if i != intent])])
        ctx = Context(rng, attachment=digits, order_id=order_id)
        text, _ = compose(rng, tpl, ctx, channel=channel, register=register, secondary_tpl=sec_tpl)
        at = start + timedelta(seconds=rng.randrange(7 * 24 * 3600))
        rows.append((at, channel, text, digits))
        meta.append((intent, source))
    order = sorted(range(n), key=lambda i: (rows[i][0], i))
    out = []
    for k, i in enumerate(order, start=1):
        at, channel, text, digits = rows[i]
        out.append(
            {
                "id": f"t{k:05d}",
                "received_at": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "channel": channel,
                "message": text,
                "attachment": None if digits is None else {"digits": digits},
            }
        )
    return out, [meta[i] for i in order]
