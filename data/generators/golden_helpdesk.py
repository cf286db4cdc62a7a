# ruff: noqa: E501  (long literal phrasings, replies and Markdown lines are data, not code)
"""data/golden/helpdesk.jsonl: chain cases from held-out phrasings with reference replies, plus the edge cases
written apart from every template."""

from __future__ import annotations

import random
import re

from generators.attachments import Attacher
from generators.common import INTENTS
from generators.phrasing import Context, compose, pick_style, slots_of
from generators.support_kb import ALIASES, PRODUCTS

# Held-out phrasings: used only in the golden set (and in traffic), never in messages.jsonl.
GOLDEN = {
    "refund": [
        "I want the {amount} I spent on {order} refunded to me, the item is faulty.",
        "Would it be possible to return {order} and receive my money back?",
        "The {product} was not as described, so I'm asking for a refund.",
        "I need a refund processed for {order} asap.",
        "Please give me back the money for the {product}, I posted it back already.",
        "Could I return {order}? I'd like the payment reversed.",
        "Trying to get reimbursed for {order}, what are the steps?",
    ],
    "order_status": [
        "Could you find out where {order} is at the moment?",
        "My delivery for {order} is late, what is happening with it?",
        "I have not got {order} yet, when should I expect it?",
        "Can you look up the shipping progress of {order}?",
        "Has my parcel with the {product} been sent yet?",
        "Wondering when {order} will finally show up.",
        "Where's my package? It was meant to be here on {date}.",
    ],
    "cancel_order": [
        "Please cancel {order} right away, I ordered it by accident.",
        "I'd rather not go ahead with {order}. Can it be cancelled?",
        "Could you cancel my purchase of the {product}? It is no longer needed.",
        "Please make sure {order} does not ship, I want to cancel it.",
        "Is cancelling {order} still possible?",
        "{order} needs cancelling, I picked the wrong thing.",
        "Please call off my order from {date}, I no longer want it.",
    ],
    "change_address": [
        "{order} has an incorrect street on it, could you replace it with {addr}?",
        "Can I alter where {order} gets delivered? I have a new address.",
        "Please deliver {order} to {addr} rather than my home.",
        "I gave you a wrong address for {order}, how can I change it?",
        "Could the delivery address for my {product} be switched to my office?",
        "My address changed, please update it on {order}.",
        "I need to edit the address for {order} while it is still in your warehouse.",
    ],
    "product_question": [
        "Could you tell me if the {product} is available in a larger size?",
        "How many hours can the {product} run on one charge?",
        "Does the {product} have any kind of warranty coverage?",
        "Is the {product} heavy? I want to carry it around.",
        "Will the {product} fit on a standard shelf? What are its measurements?",
        "What is the {product} made from?",
        "Before I buy the {product}, is it good for beginners?",
    ],
    "account_access": [
        "I am unable to sign into my account, can you help?",
        "My password isn't being accepted and I need to get back into my account.",
        "I requested a password reset for {email} but nothing came through.",
        "How can I reset the password for my account?",
        "Help, I'm locked out and the login keeps failing.",
        "I can't access my profile, it says my login details are wrong.",
        "The code to log in never arrives at {email}, what should I do?",
    ],
    "complaint": [
        "I'm honestly appalled by how {order} was dealt with.",
        "Your service keeps letting me down and I want to complain officially.",
        "The {product} is badly made and I feel cheated.",
        "I've been ignored for days about {order}, this is unacceptable.",
        "Really poor experience, the delivery person was rude to me.",
        "I'm angry that nobody has bothered to answer my emails.",
        "Complaint: the {product} I got was clearly used and dirty.",
    ],
    "other": [
        "Can you wrap my purchase as a present?",
        "What hours is your customer support available?",
        "I'd like to apply for a position at your company.",
        "Your team did a great job, I'm really impressed with the service.",
        "We're a small brand interested in collaborating with you.",
        "Is there a way to get your newsletter by email?",
        "Can I use a gift voucher at checkout?",
    ],
}

# Golden "other" cases need their own expectations (there is no single fact for "other").
OTHER_GOLDEN_REPLY = [
    ([], "Happy to help! Gift wrapping is available at checkout for $4.99, just tick the box before paying."),
    (
        ["Monday to Friday"],
        "Our support team is available Monday to Friday, 9:00-18:00 CET, and we reply to emails the same day.",
    ),
    ([], "Thank you for your interest in joining us! Open positions are listed on our careers page."),
    ([], "Thank you so much for the kind words, I'll share them with the whole team."),
    (
        [],
        "Thanks for reaching out! I've forwarded your message to our partnerships team, who will be in touch.",
    ),
    ([], "Of course! You can subscribe to our newsletter at the bottom of any page on our website."),
    ([], "Yes, gift vouchers can be entered in the discount field at checkout."),
]


def reference_reply(rng: random.Random, intent: str, ents: dict, g_idx: int) -> tuple[list[str], str]:
    oid = ents.get("order_id")
    product = ents.get("product")
    about = f" for order {oid}" if oid else (f" for the {product}" if product else "")
    if intent == "refund":
        must = ["30 days"] + ([oid] if oid else [])
        reply = rng.choice(
            [
                f"I'm sorry it didn't work out. Refunds are accepted within 30 days of delivery, so I've opened a return"
                f"{about}; approved refunds reach your original payment method within 5-7 business days.",
                f"Thanks for letting us know. I've started the refund{about}: refunds are accepted within 30 days of "
                f"delivery, and the money should be back on your card within 5-7 business days.",
            ]
        )
    elif intent == "order_status":
        must = ["3-5 business days"] + ([oid] if oid else [])
        ref = f"order {oid}" if oid else "your order"
        reply = rng.choice(
            [
                f"Thanks for checking in. I can see {ref} is on its way; standard shipping takes 3-5 business days "
                f"after dispatch, and the tracking link is in your shipping email.",
                f"Sorry for the wait! Standard shipping takes 3-5 business days after dispatch, and I've asked the "
                f"courier for an update on {ref}.",
            ]
        )
    elif intent == "cancel_order":
        must = ["until they ship"] + ([oid] if oid else [])
        ref = f"order {oid}" if oid else "your order"
        reply = rng.choice(
            [
                f"No problem. Orders can be cancelled free of charge until they ship, so I've cancelled {ref} for you.",
                f"Done: {ref} has been cancelled. Orders can be cancelled free of charge until they ship, and you "
                f"won't be charged.",
            ]
        )
    elif intent == "change_address":
        must = ["until the order ships"]
        ref = f"order {oid}" if oid else "your order"
        reply = rng.choice(
            [
                f"Happy to help! We can change the delivery address until the order ships, so I've updated {ref} "
                f"with the new details.",
                f"Thanks for telling us. We can change the delivery address until the order ships; {ref} hasn't left "
                f"yet, so the new address is now saved.",
            ]
        )
    elif intent == "product_question":
        must = ["2-year warranty"] + ([product] if product else [])
        item = f"the {product}" if product else "that item"
        reply = rng.choice(
            [
                f"Great question about {item}! The full specifications are on its product page, and all products "
                f"come with a 2-year warranty.",
                f"Thanks for your interest in {item}. I've passed your question to our product team, and as with "
                f"everything we sell it comes with a 2-year warranty.",
            ]
        )
    elif intent == "account_access":
        must = ["example.com/reset"]
        reply = rng.choice(
            [
                "Sorry about the trouble signing in. You can reset your password at example.com/reset; the link is "
                "valid for 24 hours, so please use it soon after it arrives.",
                "Let's get you back in: request a new link at example.com/reset and it will stay valid for 24 hours. "
                "If it doesn't arrive, please check your spam folder.",
            ]
        )
    elif intent == "complaint":
        must = ["1 business day"]
        reply = rng.choice(
            [
                "I'm truly sorry about this experience. I've escalated your case, and a senior support specialist "
                "will contact you within 1 business day.",
                "Thank you for telling us, and I apologise. A senior support specialist will contact you within "
                "1 business day to put this right.",
            ]
        )
    else:
        must, reply = OTHER_GOLDEN_REPLY[g_idx]
        must = list(must)
    return must, reply


MUST_NOT = ["I don't know", "as an AI", "guarantee", "{{", "}}", "None", "null", "undefined"]

# Intents the chain acts on one order for (prompts/helpdesk/chain.yaml, clarify.requires): without an order id
# the right reply is a question asking for it, so a golden case expects `abstain: true` and the words
# "order number" in the reply instead of the intent's fact.
NEEDS_ORDER = ("cancel_order", "change_address", "order_status")
CLARIFY_MUST = ["order number"]
CLARIFY_REPLY = {
    "cancel_order": "I can cancel it for you: could you send me the order number, so I cancel the right order?",
    "change_address": "Happy to update the address. Which order is it? Please send me the order number.",
    "order_status": "Let me check on that. Could you send me the order number, so I can look up your delivery?",
}
GREETING_REPLY = "Hi, thanks for getting in touch! What can I help you with today? If it is about an order, please include the order number."


def clarify_reference(intent: str) -> tuple[list[str], str]:
    return list(CLARIFY_MUST), CLARIFY_REPLY[intent]


def names_alias(text: str, alias: str) -> bool:
    return re.search(r"(?<!\w)" + r"\s+".join(map(re.escape, alias.split())) + r"(?!\w)", text, re.I) is not None


# Held-out edge cases, written apart from every template above (the generator asserts no 4+-word chunk of them
# occurs in a training message), for what 60 independently written messages showed the chain getting wrong:
# an order number before a full stop, amounts without a currency sign, products named by a partial name, and
# messages the chain must not act on (greetings, vague asks, an order intent without its order number).
# Slots: {oid} a 5-digit order id, {amount} a price without currency sign, {product} a catalogue name.
# (intent, message, product named by an alias or None, whether the chain must ask instead of acting)
EDGE_GOLDEN = [
    ("order_status", "Hi, could you tell me when my parcel is going to arrive? It is order {oid}.", None, False),
    ("order_status", "Still nothing in my mailbox. My order number is {oid}.", None, False),
    ("cancel_order", "I changed my mind about this purchase. Please cancel order {oid}.", None, False),
    ("cancel_order", "Please stop the shipment and cancel it, the number is {oid}.", None, False),
    ("refund", "The blender arrived cracked and I would like my money back. Order {oid}.", None, False),
    (
        "change_address",
        "I moved flats last month, so the delivery address needs to change on order #{oid}.",
        None,
        False,
    ),
    ("complaint", "This is the third time I have written and nobody has replied about order {oid}.", None, False),
    (
        "refund",
        "I paid {amount} for the {product} and it stopped working after a week, so I would like that money back.",
        None,
        False,
    ),
    ("refund", "You charged me {amount} twice for order {oid}, please return the extra payment.", None, False),
    ("product_question", "Is the {product} still {amount} or has the price gone up?", None, False),
    ("complaint", "I was billed {amount} for a parcel that never came and I am fed up with your service.", None, False),
    ("product_question", "Does the rain jacket have taped seams?", "Harbor Rain Jacket", False),
    ("product_question", "How bright does the desk lamp get at full power?", "Aurora Desk Lamp", False),
    ("product_question", "Can the cast iron skillet go in the oven?", "Pioneer Cast Iron Skillet", False),
    ("product_question", "Are the linen sheets okay in a hot dryer?", "Willow Linen Sheets", False),
    ("product_question", "Does the STANDING DESK go low enough for a short person?", "Atlas Standing Desk", False),
    (
        "refund",
        "The yoga mat started peeling after one week, I want to send it back for a refund.",
        "Echo Yoga Mat",
        False,
    ),
    ("refund", "Please refund the Fitness Watch, it never synced with my phone.", "Vista Fitness Watch", False),
    (
        "complaint",
        "The bluetooth speaker died after two days and I am really disappointed with the quality.",
        "Orbit Bluetooth Speaker",
        False,
    ),
    ("other", "hello", None, True),
    ("other", "Hi there!", None, True),
    ("other", "Good morning", None, True),
    ("other", "hey, is anyone there?", None, True),
    ("other", "Got a question.", None, True),
    ("other", "Can someone help me please?", None, True),
    ("other", "I need some help with something.", None, True),
    ("other", "Hello, quick thing for you", None, True),
    ("order_status", "I would like an update on the delivery of my purchase", None, True),
    ("order_status", "My package still has not turned up, can you check on it?", None, True),
    ("order_status", "No sign of the {product} so far, when is it due?", None, True),
    ("cancel_order", "Please cancel my most recent order, I picked the wrong size.", None, True),
    ("cancel_order", "Turns out I do not need the {product} anymore, can you stop it from being sent?", None, True),
    ("change_address", "I moved last week, please update the shipping address on my order.", None, True),
    ("change_address", "Can my parcel go to my work address instead?", None, True),
    ("change_address", "The delivery for my {product} should go to my parents' house, can you change it?", None, True),
]


def build_edge_golden(rng: random.Random, first_id: int) -> list[dict]:
    """EDGE_GOLDEN as written (no openers, typos or casing: the point is the exact punctuation and wording)."""
    cases = []
    for k, (intent, template, alias_of, must_ask) in enumerate(EDGE_GOLDEN):
        product = rng.choice(list(PRODUCTS))
        values = {
            "oid": str(rng.randint(10000, 99999)),
            "amount": PRODUCTS[product]
            if rng.random() < 0.5
            else f"{rng.randint(5, 250)}.{rng.choice(['00', '50', '99'])}",
            "product": product,
        }
        text = template.format(**values)
        entities = {
            "order_id": values["oid"] if "{oid}" in template else None,
            "product": product if "{product}" in template else alias_of,
            "amount": values["amount"] if "{amount}" in template else None,
        }
        entities = {k: v for k, v in entities.items() if v is not None}
        outcome: dict = {"intent": intent, "entities": entities}
        if must_ask:
            outcome["abstain"] = True
            must, reply = ([], GREETING_REPLY) if intent == "other" else clarify_reference(intent)
        else:
            must, reply = reference_reply(rng, intent, entities, k)
        cases.append(
            {
                "id": f"g{first_id + k:04d}",
                "message": text,
                "attachment": None,
                "expected": outcome,
                "must_contain": must,
                "must_not_contain": list(MUST_NOT),
                "reference_reply": reply,
            }
        )
    return cases


def build_golden(rng: random.Random, attacher: Attacher, per_intent: int = 22, attach_share: float = 0.3):
    plan = []
    for intent in INTENTS:
        order = list(range(len(GOLDEN[intent])))
        rng.shuffle(order)
        for k in range(per_intent):
            plan.append((intent, order[k % len(order)]))
    order_capable = [i for i, (intent, g) in enumerate(plan) if "order" in slots_of(GOLDEN[intent][g])]
    attach = set(rng.sample(order_capable, round(attach_share * len(plan))))
    cases = []
    for i, (intent, g_idx) in enumerate(plan):
        tpl = GOLDEN[intent][g_idx]
        channel, register = pick_style(rng)
        digits = None
        order_id = None
        if i in attach:
            order_id, digits = attacher.make()
        ctx = Context(rng, attachment=digits, order_id=order_id, generic_rate=0.2)
        text, ents = compose(rng, tpl, ctx, channel=channel, register=register, typo_rate=0.1, caps_rate=0.0)
        expected: dict[str, str] = {}
        for e in ents:
            expected.setdefault(e["type"], e["value"])
        if digits is not None:
            expected["order_id"] = order_id
        for generic, product in ctx.generics:
            # A catalogue alias names the product it stands for (unless a typo broke it): the customer meant it.
            if generic in ALIASES[product] and "product" not in expected and names_alias(text, generic):
                expected["product"] = product
        expected = {k: expected[k] for k in ("order_id", "email", "product", "amount", "date") if k in expected}
        must, reply = reference_reply(rng, intent, expected, g_idx)  # drawn for every case: keeps the stream
        outcome: dict = {"intent": intent, "entities": expected}
        if intent in NEEDS_ORDER and "order_id" not in expected:
            must, reply = clarify_reference(intent)
            outcome["abstain"] = True
        cases.append(
            {
                "message": text,
                "attachment": None if digits is None else {"digits": digits},
                "expected": outcome,
                "must_contain": must,
                "must_not_contain": list(MUST_NOT),
                "reference_reply": reply,
            }
        )
    rng.shuffle(cases)
    return [{"id": f"g{i:04d}", **c} for i, c in enumerate(cases, start=1)]
