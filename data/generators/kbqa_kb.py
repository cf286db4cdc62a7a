# ruff: noqa: E501  (long literal phrasings, replies and Markdown lines are data, not code)
"""data/kbqa/knowledge_base.yaml: the help centre of Pinecrest Supply Co., a fictional outdoor-gear store (each
fact with its key phrase, headings and the golden questions asked about it)."""

from __future__ import annotations

import json
from pathlib import Path

# fact id: (sentence, the key phrase an answer must contain, the help-centre heading(s) the fact sits under,
#           golden questions phrased the way customers ask). Headings are indexed by the retriever; golden
#           questions never are, and the checks below keep them apart.
KBQA_FACTS: dict[str, tuple[str, str, list[str], list[str]]] = {
    "shipping_standard": (
        "Standard shipping takes 4-6 business days within the continental US.",
        "4-6 business days",
        ["How long does standard shipping take?", "Delivery times for regular orders in the US"],
        [
            "How long until my package shows up if I pick the normal delivery option?",
            "I live in Ohio, when would a regular order get to me?",
            "What's the usual delivery time for domestic orders?",
        ],
    ),
    "shipping_free": (
        "Orders over $75 ship free with standard shipping.",
        "over $75",
        ["Do you offer free shipping?"],
        [
            "Do I have to pay for delivery?",
            "How much do I need to spend to get free shipping?",
            "Is there a minimum for free delivery?",
        ],
    ),
    "shipping_express": (
        "Express shipping costs $18 and arrives in 2 business days.",
        "$18",
        ["How much does express shipping cost and how fast is it?", "Faster or rush delivery options"],
        [
            "I need my tent by the weekend, is there a faster option and what does it cost?",
            "How much is express delivery?",
            "Can I pay extra to get my order quicker?",
        ],
    ),
    "shipping_international": (
        "We ship to Canada, the UK and the EU; international orders arrive in 8-15 business days and may owe import duties.",
        "8-15 business days",
        ["Do you ship internationally?", "Will I pay customs or import duties?"],
        [
            "Do you deliver to Germany?",
            "I'm in Toronto, can I order from you and how long would it take?",
            "Will I have to pay customs fees if I order from the UK?",
        ],
    ),
    "processing_time": (
        "Orders placed before 1 pm Pacific leave our warehouse the same business day.",
        "before 1 pm Pacific",
        ["When will my order be dispatched?"],
        [
            "If I order this morning, when will it be dispatched?",
            "What's the cutoff time for same-day dispatch?",
            "How quickly do you send out orders after I buy?",
        ],
    ),
    "po_boxes": (
        "We can deliver to PO boxes with standard shipping only, not express.",
        "PO boxes",
        ["Do you deliver to PO boxes?"],
        [
            "Can you send my order to a post office box?",
            "I only have a P.O. box address, is that a problem?",
        ],
    ),
    "tracking": (
        "A tracking number is emailed within 24 hours of your order leaving the warehouse.",
        "within 24 hours",
        ["How do I track my order?"],
        [
            "How do I follow where my parcel is?",
            "When will I get a tracking link?",
            "My order left but I have no way to trace it yet, when does that arrive?",
        ],
    ),
    "split_shipments": (
        "Large orders may arrive in several boxes on different days at no extra cost.",
        "several boxes",
        ["Why did my order arrive in more than one package?"],
        [
            "Only half of my order came today, where is the rest?",
            "Why did my items show up in separate packages?",
        ],
    ),
    "return_window": (
        "Unused items can be returned within 45 days of delivery.",
        "45 days",
        ["What is the return window?", "Return deadline in days after delivery"],
        [
            "How long do I have to send something back?",
            "Is it too late to return boots I got last month?",
            "What is your return period?",
        ],
    ),
    "return_condition": (
        "Returned items must be unused, with original tags and packaging.",
        "original tags",
        ["What condition must returned items be in?", "Can I return worn or used items?"],
        [
            "I wore the jacket once, can I still return it?",
            "Do I need the box to send an item back?",
            "What condition does a return need to be in?",
        ],
    ),
    "return_shipping_fee": (
        "A prepaid return label costs $6.95, deducted from your refund; returns to a store are free.",
        "$6.95",
        ["Are return shipping labels free?"],
        [
            "Do I have to pay to ship a return?",
            "How much does it cost to mail an item back to you?",
        ],
    ),
    "refund_timing": (
        "Refunds are issued to the original payment method within 5 business days of the return reaching us.",
        "within 5 business days",
        ["When will I receive my refund?"],
        [
            "When will I get my money back after returning something?",
            "You received my return last week, how long until the refund shows up?",
            "How fast are refunds processed?",
        ],
    ),
    "exchanges": (
        "Exchanges for a different size or colour ship free once we scan your return.",
        "different size or colour",
        ["Can I exchange an item for another size or colour?"],
        [
            "The boots are too small, can I swap them for a bigger pair?",
            "Can I trade my blue jacket for the green one?",
            "How do exchanges work?",
        ],
    ),
    "final_sale": (
        "Clearance items marked Final Sale cannot be returned or exchanged.",
        "Final Sale",
        ["Can I return clearance or sale items?"],
        [
            "Can I return something I bought on clearance?",
            "Are discounted items refundable?",
        ],
    ),
    "gift_returns": (
        "Gifts can be returned with the gift receipt for store credit, without notifying the buyer.",
        "gift receipt",
        ["How do I return a gift?"],
        [
            "Someone bought me a present from your shop and it doesn't fit, can I return it?",
            "Will my aunt find out if I return the sleeping bag she gave me?",
        ],
    ),
    "warranty_length": (
        "Pinecrest-brand gear carries a lifetime warranty against defects in materials and workmanship.",
        "lifetime warranty",
        ["What warranty does Pinecrest gear have?"],
        [
            "How long is your own gear guaranteed for?",
            "The zipper on my Pinecrest backpack broke after three years, is it still covered?",
            "What warranty comes with Pinecrest products?",
        ],
    ),
    "warranty_other_brands": (
        "Other brands are covered by their maker's warranty; we help you file the claim.",
        "maker's warranty",
        ["Are other brands covered by a warranty?"],
        [
            "My stove from another brand stopped working, who handles that?",
            "Do you cover defects on products you sell from other companies?",
        ],
    ),
    "warranty_exclusions": (
        "The warranty does not cover normal wear, accidents or damage from misuse.",
        "normal wear",
        ["What does the warranty not cover?", "Is wear and tear or accidental damage covered?"],
        [
            "I ripped my tent on a rock, is that covered?",
            "What isn't included in the guarantee?",
            "My boot soles are worn down after years of hiking, can I claim that?",
        ],
    ),
    "warranty_claim": (
        "To start a warranty claim, send photos of the defect and your order number to warranty@pinecrest.example.",
        "warranty@pinecrest.example",
        ["How do I make a warranty claim?"],
        [
            "How do I report a defective product?",
            "My headlamp is faulty, where do I send the details?",
            "What's the process for making a guarantee claim?",
        ],
    ),
    "repair_service": (
        "Our repair shop patches tents, jackets and sleeping bags, usually within 3 weeks.",
        "within 3 weeks",
        ["Do you repair gear?"],
        [
            "Can you fix a hole in my rain jacket?",
            "How long does it take to mend a torn tent?",
            "Do you do repairs on damaged gear?",
        ],
    ),
    "payment_methods": (
        "We accept Visa, Mastercard, American Express, PayPal and Apple Pay.",
        "American Express",
        ["Which payment methods do you accept?"],
        [
            "Which cards can I pay with?",
            "What payment options do you take?",
            "Can I check out with my Apple phone wallet?",
        ],
    ),
    "installments": (
        "Orders over $200 can be split into 4 interest-free payments with Klarna.",
        "4 interest-free payments",
        ["Can I pay in installments?"],
        [
            "Can I pay for a big order in instalments?",
            "Do you offer buy now, pay later?",
            "Is there a way to spread the cost of an expensive tent over a few months?",
        ],
    ),
    "gift_cards": (
        "Gift cards come in amounts from $25 to $500 and never expire.",
        "never expire",
        ["Do gift cards expire?", "Are vouchers and gift certificates still valid?"],
        [
            "Is there an expiry date on your gift cards?",
            "What values can I buy a gift card in?",
            "I found an old Pinecrest voucher, can I still use it?",
        ],
    ),
    "promo_codes": (
        "Only one promo code can be used per order, and codes do not apply to gift cards.",
        "one promo code",
        ["Can I use more than one promo code?", "Why is my discount code or coupon not accepted?"],
        [
            "Can I combine two discount codes?",
            "Why won't my coupon work when buying a gift card?",
            "Is it possible to stack vouchers on a single purchase?",
        ],
    ),
    "price_match": (
        "If we lower a price within 14 days of your purchase, we refund the difference on request.",
        "within 14 days",
        ["Do you refund the difference if a price drops?"],
        [
            "I bought a stove and now it's cheaper, can I get the difference back?",
            "Do you offer price protection if something goes on sale after I buy it?",
        ],
    ),
    "loyalty_points": (
        "Trail Rewards members earn 1 point per dollar; 100 points make a $5 reward.",
        "1 point per dollar",
        ["How does Trail Rewards work?"],
        [
            "How does your loyalty program work?",
            "How many points do I get when I shop?",
            "What are Trail Rewards points worth?",
        ],
    ),
    "student_discount": (
        "Students and teachers get 10% off after verifying with a school email address.",
        "10% off",
        ["Do you have a student or teacher discount?"],
        [
            "Is there a discount for college students?",
            "I'm a high school teacher, do I get any deal?",
        ],
    ),
    "store_hours": (
        "Our Portland flagship store is open 10 am to 7 pm every day except Thanksgiving and Christmas.",
        "10 am to 7 pm",
        ["What are the store opening hours?"],
        [
            "What time does the Portland shop open?",
            "Are you open on Sundays?",
            "When does your physical store close in the evening?",
        ],
    ),
    "rentals": (
        "Tents, stoves and packs can be rented from the Portland store from $15 per day.",
        "$15 per day",
        ["Can I rent gear?"],
        [
            "Can I borrow a tent for a weekend trip instead of buying one?",
            "Do you rent camping equipment?",
            "How much is it to hire a backpack for a few days?",
        ],
    ),
    "trade_in": (
        "Bring used Pinecrest gear in good condition to trade in for store credit of up to 40% of its price.",
        "up to 40%",
        ["Can I trade in used gear?"],
        [
            "What can I get for my old Pinecrest jacket?",
            "Do you buy back used equipment?",
        ],
    ),
    "order_changes": (
        "Orders can be changed or cancelled within 1 hour of placing them; after that they are already being packed.",
        "within 1 hour",
        ["Can I change or cancel my order?"],
        [
            "I just ordered the wrong size, can I still fix it?",
            "How long do I have to cancel after checkout?",
            "Can I add an item to an order I placed this morning?",
        ],
    ),
    "account_deletion": (
        "To delete your account and personal data, email privacy@pinecrest.example; it is done within 30 days.",
        "privacy@pinecrest.example",
        ["How do I delete my account?"],
        [
            "How do I close my account and erase my information?",
            "I want you to remove all my data, who do I contact?",
        ],
    ),
    "newsletter": (
        "You can unsubscribe from our newsletter with the link at the bottom of any email.",
        "link at the bottom",
        ["How do I unsubscribe from emails?"],
        [
            "How do I stop getting your marketing emails?",
            "Please take me off your mailing list.",
        ],
    ),
    "bulk_orders": (
        "Groups, clubs and schools ordering 10 or more of an item get a quote from our team sales desk.",
        "team sales desk",
        ["Do you offer group or bulk orders?", "Discounts for teams, clubs and large quantities"],
        [
            "Our scout troop needs 25 sleeping bags, do you do group pricing?",
            "Is there a discount for buying in bulk?",
        ],
    ),
    "contact_hours": (
        "Customer service answers chat and phone Monday to Saturday, 7 am to 6 pm Pacific.",
        "Monday to Saturday",
        ["When can I contact customer service?"],
        [
            "When can I reach someone on the phone?",
            "What hours is live chat available?",
            "Is your support team around on weekends?",
        ],
    ),
}


def write_kbqa_kb(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Knowledge base for the kbqa release: the help centre of Pinecrest Supply Co., a fictional outdoor-gear",
        "# store. Generated by data/generate.py; edit there, then rerun.",
        "facts:",
    ]
    lines += [f"  {fact_id}: {json.dumps(entry[0])}" for fact_id, entry in KBQA_FACTS.items()]
    lines.append("# The help-centre heading(s) each fact sits under: the retrieve binding indexes them with the fact.")
    lines.append("questions:")
    lines += [f"  {fact_id}: {json.dumps(entry[2])}" for fact_id, entry in KBQA_FACTS.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8", newline="\n")
