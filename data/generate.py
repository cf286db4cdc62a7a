# ruff: noqa: E501  (long literal phrasings, replies and Markdown lines are data, not code)
"""Generate the shipped, seeded helpdesk and kbqa datasets.

Run from the project root:  python data/generate.py

Writes (byte-identically on every rerun):
  data/support/messages.jsonl        labelled training messages (paraphrase-grouped)
  data/support/knowledge_base.yaml   facts replies may quote + product catalogue
  data/golden/helpdesk.jsonl         curated chain cases built from held-out phrasings
  data/traffic/helpdesk.jsonl        unlabelled recorded requests for replay
  data/kbqa/knowledge_base.yaml      the kbqa release's help-centre facts and their headings
  data/golden/kbqa.jsonl             questions with the fact each must be answered from
  data/SOURCES.md                    provenance, counts and split notes

Only stdlib ``random.Random(seed)`` drives the generation. The digits test split (for attachment photos) is
computed with the project's own ``assign_splits`` so attachments never show an image a digits model trained on.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from release_assets.datasets.schemas import INTENTS as SCHEMA_INTENTS  # noqa: E402 - needs ROOT on sys.path

DATA = ROOT / "data"
SEED = 20261005
DIGITS_SPLIT_SEED = 7

INTENTS = list(SCHEMA_INTENTS)  # the schema's own list: the generator can only emit intents rows may carry

# ---------------------------------------------------------------------------------------------------------
# Catalogue and knowledge base
# ---------------------------------------------------------------------------------------------------------

# Generic nouns customers use instead of the catalogue name (rendered without a product entity).
GENERIC = {
    "Aurora Desk Lamp": ["desk lamp", "lamp"],
    "Trail Runner 2 shoes": ["running shoes", "shoes"],
    "Nimbus Wireless Earbuds": ["earbuds", "wireless earbuds"],
    "Cascade Water Bottle": ["water bottle", "bottle"],
    "Summit Hiking Backpack": ["backpack", "hiking backpack"],
    "Lumen Smart Bulb": ["smart bulb", "bulb"],
    "Harbor Rain Jacket": ["rain jacket", "jacket"],
    "Orbit Bluetooth Speaker": ["speaker", "bluetooth speaker"],
    "Pioneer Cast Iron Skillet": ["skillet", "cast iron pan"],
    "Willow Linen Sheets": ["sheets", "linen sheets"],
    "Atlas Standing Desk": ["standing desk", "desk"],
    "Echo Yoga Mat": ["yoga mat", "mat"],
    "Ember Ceramic Mug Set": ["mug set", "mugs"],
    "Breeze Desk Fan": ["desk fan", "fan"],
    "Vista Fitness Watch": ["fitness watch", "watch"],
}

# Partial names customers use for a product, written to the knowledge base (`aliases:`); the chain's extractor
# matches them whole-word, case-insensitively, longest first. Only unambiguous ones: "desk", "lamp" or "watch"
# alone could mean several products (or nothing), so the one-word generics above stay unmatched.
ALIASES = {
    "Aurora Desk Lamp": ["desk lamp", "aurora lamp"],
    "Trail Runner 2 shoes": ["trail runner 2", "trail runners", "trail runner", "running shoes"],
    "Nimbus Wireless Earbuds": ["nimbus earbuds", "wireless earbuds", "earbuds"],
    "Cascade Water Bottle": ["water bottle", "cascade bottle"],
    "Summit Hiking Backpack": ["hiking backpack", "summit backpack", "backpack"],
    "Lumen Smart Bulb": ["smart bulb", "lumen bulb"],
    "Harbor Rain Jacket": ["rain jacket", "harbor jacket"],
    "Orbit Bluetooth Speaker": ["bluetooth speaker", "orbit speaker"],
    "Pioneer Cast Iron Skillet": ["cast iron skillet", "cast iron pan", "skillet"],
    "Willow Linen Sheets": ["linen sheets", "willow sheets"],
    "Atlas Standing Desk": ["standing desk", "atlas desk"],
    "Echo Yoga Mat": ["yoga mat", "echo mat"],
    "Ember Ceramic Mug Set": ["ceramic mug set", "ceramic mugs", "mug set"],
    "Breeze Desk Fan": ["desk fan", "breeze fan"],
    "Vista Fitness Watch": ["fitness watch", "vista watch"],
}

PRODUCTS = {
    "Aurora Desk Lamp": "39.99",
    "Trail Runner 2 shoes": "119.00",
    "Nimbus Wireless Earbuds": "79.99",
    "Cascade Water Bottle": "24.50",
    "Summit Hiking Backpack": "89.00",
    "Lumen Smart Bulb": "14.99",
    "Harbor Rain Jacket": "129.00",
    "Orbit Bluetooth Speaker": "59.95",
    "Pioneer Cast Iron Skillet": "44.00",
    "Willow Linen Sheets": "99.00",
    "Atlas Standing Desk": "349.00",
    "Echo Yoga Mat": "32.00",
    "Ember Ceramic Mug Set": "27.99",
    "Breeze Desk Fan": "49.99",
    "Vista Fitness Watch": "199.00",
}

FACTS = {
    "refund_window": "Refunds are accepted within 30 days of delivery.",
    "refund_timing": "Approved refunds reach your original payment method within 5-7 business days.",
    "return_shipping": "Return labels are free for orders over $50.",
    "shipping_standard": "Standard shipping takes 3-5 business days after dispatch.",
    "shipping_express": "Express shipping arrives within 1-2 business days after dispatch.",
    "tracking": "A tracking link is emailed to you as soon as your order ships.",
    "cancel_policy": "Orders can be cancelled free of charge until they ship.",
    "address_change": "We can change the delivery address until the order ships.",
    "account_reset": "You can reset your password at example.com/reset; the link is valid for 24 hours.",
    "account_lockout": "Accounts unlock automatically 30 minutes after too many failed sign-in attempts.",
    "support_hours": "Our support team is available Monday to Friday, 9:00-18:00 CET.",
    "complaint_escalation": "A senior support specialist will contact you within 1 business day.",
    "product_warranty": "All products come with a 2-year warranty.",
    "gift_wrapping": "Gift wrapping is available at checkout for $4.99.",
    "international_shipping": "We ship to 30 countries; international delivery takes 7-14 business days.",
}

# ---------------------------------------------------------------------------------------------------------
# Core phrasings. Slots: {order} order reference (order_id entity), {product} {product2}, {email} {email2},
# {amount} (amount entity, rendered "$49.99"), {date}; non-entity slots {addr}, {city}.
# A leading "~" marks a deliberately ambiguous (hard) phrasing.
# ---------------------------------------------------------------------------------------------------------

TRAIN = {
    "refund": [
        "I'd like a refund for {order}.",
        "Can I get my money back for the {product}?",
        "Please refund {order}, the {product} arrived damaged.",
        "How do I return the {product} and get reimbursed?",
        "I returned the {product} on {date} but still haven't received my refund.",
        "I was charged {amount} for {order} and I want that money back.",
        "refund pls",
        "The {product} doesn't fit. Can I send it back for a full refund?",
        "I'd like to request reimbursement of {amount} for {order}.",
        "Where is my refund? I sent the package back two weeks ago.",
        "I want to return {order} for a refund, it's not what I expected.",
        "Could you please process a refund to my credit card for {order}?",
        "you charged me twice for {order}, i need the duplicate {amount} refunded",
        "Is it possible to get a refund even though I opened the box?",
        "The {product} broke after one use, I'd like my money returned.",
        "How long does it take for a refund to show up on my statement?",
        "I need to send back the {product} and be refunded the {amount}.",
        "Please issue a refund for the missing item in {order}.",
        "What's your return policy? I want my money back for the {product}.",
        "I received the wrong size and would prefer a refund rather than an exchange.",
        "Kindly credit {amount} back to my card for {order}.",
        "money back for {order} please",
        "Can you reimburse me for the shipping cost? The parcel only turned up on {date}.",
        "I'm requesting a full refund for {order} as the {product} is defective.",
        "Started a return for the {product} - when will the refund be processed?",
        "I'd like to return the {product}. It's unused and still in the original packaging.",
        "The refund you promised on {date} never arrived.",
        "Can I get a partial refund? One of the items in {order} is scratched.",
        "Please reverse the {amount} charge, I never received the goods.",
        "Do you refund gift purchases? A friend bought me the {product} and it doesn't suit me.",
        "I paid {amount} for express delivery and it came late. I want the express fee refunded.",
        "Requesting my money back on {order}.",
        "What do I need to do to return this and get paid back?",
        "the {product} is junk, just give me a refund",
        "I'd like to be reimbursed for {order}; the package was empty.",
        "Can you tell me the status of my refund for {order}?",
        "Returning the {product} - please refund to the original card.",
        "I changed my mind about the {product}, can I return it for a refund?",
        "I'd like my money back, the {product} is not working.",
        "Please refund me the {amount}, the order arrived broken.",
        "Has my refund for {order} been approved yet?",
        "Can I return the {product} for a refund if it's been 20 days?",
        "I want a refund, not store credit, for {order}.",
        "I returned my order last week, when do I get my money back?",
        "Please process my return and refund the full amount.",
        "Could I get reimbursed for the {product}? It was faulty.",
        "The item was broken so I'd like to return it and get a refund.",
        "Refund the {amount} to my card please.",
        "Can I return something I bought on {date}?",
        "I want to send the {product} back and get my money refunded.",
        "Is my return approved? I'm still waiting for the money.",
        "need a refund asap",
        "I was overcharged on {order}, please refund the difference.",
        "~The {product} stopped working after a week. What can you do about it?",
        "~I sent the {product} back on {date}.",
    ],
    "order_status": [
        "Where is {order}?",
        "{order} still hasn't arrived, can you check?",
        "Can you give me a tracking number for {order}?",
        "My package was supposed to arrive on {date} and it's still not here.",
        "wheres my stuff, it still hasnt arrived",
        "Has {order} shipped yet?",
        "The tracking page for {order} hasn't updated in four days.",
        "When will my {product} be delivered?",
        "Could you let me know the current status of {order}?",
        "I ordered the {product} on {date}. Any update on delivery?",
        "tracking says delivered but nothing at my door",
        "How long until {order} gets here?",
        "Is {order} still in transit? The estimated delivery date has passed.",
        "I'd like an update on the shipment of {order}.",
        "still waiting on {order} to arrive...",
        "Can you tell me which courier is delivering {order}?",
        "My parcel seems to be stuck at the depot, can you check the tracking?",
        "Is there any way to see where my package is right now?",
        "It's been ten days since I ordered and nothing has shown up.",
        "Has the {product} been dispatched? I need it by {date}.",
        "The delivery window for {order} came and went. Where is it?",
        "I haven't received a shipping confirmation for {order} yet.",
        "Will {order} arrive before {date}?",
        "Please confirm whether {order} has shipped from your warehouse yet.",
        "order status?",
        "My tracking link for {order} shows an error, what is the latest?",
        "Just checking in on {order}, has it been sent out?",
        "Any ETA on the delivery of my {product}?",
        "The courier says they attempted delivery but I was home all day. Where is my package now?",
        "I need to know when {order} will be delivered, it's a gift.",
        "Could you check why {order} has been showing as processing for a week?",
        "My order confirmation said {date} but it still hasn't come.",
        "is my package lost?",
        "What's the expected delivery date for {order}?",
        "I can't find any tracking or shipping info for my order.",
        "Has anyone actually shipped {order} or is it still sitting there?",
        "Part of {order} arrived but the {product} is missing. When will the rest come?",
        "Kindly provide an update regarding the whereabouts of my parcel.",
        "Where is my package? The tracking hasn't moved since {date}.",
        "My parcel hasn't arrived yet, can you track it?",
        "Can you check the delivery status of the {product}?",
        "What is the tracking number for the {product} I ordered?",
        "My package still hasn't been delivered, where is it?",
        "where's my order??",
        "My {product} hasn't shown up yet, what's going on?",
        "Could you track {order} for me?",
        "Is my {product} on its way?",
        "When should I expect delivery of {order}?",
        "What's happening with my delivery? It's late.",
        "I still haven't received {order}, it's been two weeks.",
        "Can you send me the shipping update for {order}?",
        "Where is my delivery? The courier website shows nothing.",
        "has my order been shipped",
        "~I ordered on {date} and I'm getting worried.",
        "~The {product} I ordered - what's going on with it?",
    ],
    "cancel_order": [
        "Please cancel {order}.",
        "I want to cancel my order for the {product}.",
        "I don't want {order} anymore, can you stop it?",
        "cancel {order} pls",
        "Is it too late to cancel {order}?",
        "I placed an order by mistake, how do I cancel it?",
        "Please stop {order} before it ships.",
        "I ordered the {product} twice by accident, please cancel one of them.",
        "Can you cancel {order} and refund the {amount}?",
        "I've changed my mind, please don't send {order}.",
        "How do I cancel an order I placed on {date}?",
        "Kindly cancel {order} at your earliest convenience.",
        "I found the {product} cheaper elsewhere, so I'd like to cancel.",
        "Need to call off {order}.",
        "Can {order} still be cancelled? I only placed it an hour ago.",
        "Please void {order}, I entered the wrong payment card.",
        "I no longer need the {product}. Cancel the order please.",
        "don't ship {order}!!",
        "I would like to withdraw {order} and cancel the purchase.",
        "Is there a cancel button somewhere? I can't work out how to cancel {order}.",
        "Please scrap {order}, I'll reorder later.",
        "My plans changed and I won't need {order} after all, please cancel it.",
        "cancel it",
        "I'd like to cancel the subscription order that renews on {date}.",
        "Please halt the shipment of {order} and cancel it.",
        "I accidentally ordered the wrong colour of the {product}, please cancel so I can reorder.",
        "Can you cancel everything in {order}?",
        "Delivery would take too long, so please cancel {order}.",
        "Cancel my order please, I was charged {amount} by mistake.",
        "I want to back out of {order} and cancel it before it ships.",
        "Please terminate {order}, I want it cancelled.",
        "I wish to cancel my recent purchase of the {product}.",
        "stop my order",
        "Can you remove the {product} from {order} before it goes out?",
        "I'm cancelling {order}, please confirm it won't be sent.",
        "Ordered on {date}, need to cancel it now.",
        "My kid placed an order without asking, please cancel {order}.",
        "How late can I cancel an order?",
        "Cancel {order} immediately please.",
        "I need to cancel an order I just placed.",
        "Please cancel the {product} I ordered this morning.",
        "Can you cancel my order before it's shipped?",
        "I'd like to cancel {order} and get the {amount} back.",
        "I want to cancel {order} please.",
        "Please cancel my order, I don't need it anymore.",
        "Could you cancel the {product} I ordered yesterday?",
        "I'd like to cancel my {product} purchase before it's sent.",
        "Is it possible to cancel {order} today?",
        "cancel my order",
        "I need {order} cancelled, it was a mistake.",
        "Please don't process {order}, I want to cancel.",
        "I regret buying the {product}, please cancel the order.",
        "Can I cancel an order that hasn't shipped?",
        "~I don't think I need the {product} I just ordered.",
        "~Can I still change my mind about {order}?",
    ],
    "change_address": [
        "I need to change the delivery address for {order}.",
        "I moved last week, can you update the shipping address on {order}?",
        "Wrong address on {order}! Please fix it.",
        "Can I ship {order} to my office instead of my home?",
        "Please update my address to {addr}.",
        "Can you redirect {order} to a different address?",
        "change address pls",
        "Please send {order} to {addr} instead.",
        "The apartment number is missing from my shipping address, it's apt 4B.",
        "I'll be away on {date}, could you deliver {order} to my parents' house instead?",
        "Is it possible to edit the delivery address after ordering?",
        "I need to update the street name on {order}, I misspelled it.",
        "My shipping address is outdated. New one: {addr}.",
        "Can the {product} be delivered to {addr}?",
        "Kindly amend the delivery address for {order}.",
        "wrong house number on my order, can u fix",
        "Please reroute {order} to my work address.",
        "I've relocated. Could you change where {order} is being sent?",
        "Could you correct the postcode on {order}?",
        "I entered my old address by mistake. Can you switch it to {addr}?",
        "Deliver {order} to {addr} please, not the address on file.",
        "How do I change my shipping address for an order already placed?",
        "Please change the destination address of {order}.",
        "new address for {order}: {addr}",
        "The address on {order} is my old flat, I moved out on {date}.",
        "Can I pick a different delivery address for the {product}?",
        "I need {order} sent to my sister's place instead, {addr}.",
        "Is it too late to update the address for {order}?",
        "The city is wrong on {order}, it should be {city}.",
        "Please change the recipient address on {order} before it ships.",
        "update shipping address",
        "I'd like {order} delivered to a different address.",
        "Could you add Unit 12 to the address on {order}?",
        "Hi, my address has a typo. Can you fix it on {order}?",
        "Ship to my new place please: {addr}.",
        "Please use {addr} as the delivery address for {order} and all future orders.",
        "I won't be at the address on {order} next week, can it go elsewhere?",
        "The street on my order is misspelled, the courier won't find it.",
        "My address is wrong on {order}, please change it to {addr}.",
        "Can you update the shipping address for my order?",
        "I need to correct the delivery address, I moved to {addr}.",
        "Please send my parcel to a new address: {addr}.",
        "How can I change the address on {order}?",
        "I need to update the delivery address for the {product} I ordered.",
        "The address on my order is wrong, can you change it?",
        "Please change the shipping address to {addr}.",
        "Can my {product} be delivered to a different address?",
        "I moved house, please send {order} to my new address.",
        "Is it possible to change the address for {order}?",
        "wrong delivery address, need to fix it",
        "Please correct the address on {order}, the street number is wrong.",
        "I want {order} shipped to {addr} instead of my old address.",
        "Can you change the address where my package is delivered?",
        "~I'm moving on {date}, will that be a problem for {order}?",
        "~The {product} needs to go to {addr}.",
    ],
    "product_question": [
        "Does the {product} come in other colours?",
        "What are the dimensions of the {product}?",
        "Is the {product} waterproof?",
        "How long does the battery last on the {product}?",
        "Is the {product} dishwasher safe?",
        "Do you have the {product} in stock?",
        "what size should i get for the {product}",
        "Is there a warranty on the {product}?",
        "Can the {product} be used outdoors?",
        "What material is the {product} made of?",
        "Does the {product} work with Android phones?",
        "Will the {product} be restocked before {date}?",
        "Is the {product} suitable for a small apartment?",
        "What's the difference between the {product} and the {product2}?",
        "How much does the {product} weigh?",
        "Does the {product} include a charger in the box?",
        "is the {product} any good for running on trails",
        "Can I wash the {product} in the machine?",
        "Does the {product} need assembly?",
        "Is the {product} compatible with 220V outlets?",
        "How do I set up the {product}?",
        "Is {amount} the final price for the {product} or is there tax on top?",
        "What happens if the {product} breaks after a year, is it covered?",
        "Are the {product} true to size?",
        "Can you recommend something similar to the {product} but cheaper?",
        "Is the {product} BPA free?",
        "What's the max load the {product} can hold?",
        "How bright is the {product}? I need it for reading.",
        "Does the {product} come with a carrying case?",
        "Can I buy replacement parts for the {product}?",
        "Is the {product} safe for kids?",
        "any discounts on the {product}?",
        "Does the {product} ship with batteries?",
        "Which is better for hiking, the {product} or the {product2}?",
        "Where is the {product} manufactured?",
        "How loud is the {product} on the highest setting?",
        "Is the {product} easy to clean?",
        "Can the {product} connect to Wi-Fi?",
        "Is this lamp dimmable?",
        "Does the {product} come in a size medium?",
        "Does this speaker pair with an iPhone?",
        "How many litres does the backpack hold?",
        "Does the {product} have GPS built in?",
        "Does this jacket come in a bigger size?",
        "Is this bottle insulated?",
        "How long is the warranty on your speakers?",
        "Can you tell me more about the {product}?",
        "Is the {product} good for travel?",
        "What colours is the {product} available in?",
        "Do the earbuds work with a laptop?",
        "Are these shoes good for wide feet?",
        "Does the desk lamp have a USB port?",
        "How big is the {product}?",
        "~I'm not sure the {product} is right for me.",
        "~The {product} is making a weird noise, is that normal?",
    ],
    "account_access": [
        "I can't log into my account.",
        "I forgot my password, how do I reset it?",
        "The password reset email never arrives at {email}.",
        "My account is locked after too many attempts.",
        "cant login",
        "I'm not receiving the verification code to sign in.",
        "Can you change the email on my account to {email}?",
        "Someone else may have accessed my account, I see orders I didn't make.",
        "The reset link says it has expired.",
        "How do I recover my account if I no longer have access to {email}?",
        "I keep getting invalid credentials even though my password is correct.",
        "Please unlock my account, the email is {email}.",
        "I never got the confirmation email to activate my account.",
        "Two-factor authentication isn't working since I changed phones, so I can't log in.",
        "login page just keeps spinning",
        "I'd like to update the password on my account.",
        "Your site says no account exists for {email}, but I've ordered before.",
        "How do I sign in with Google instead of my email?",
        "I think my account was hacked. Please help me secure it.",
        "I can't remember which email I used to register my account.",
        "The forgot password button does nothing.",
        "I got logged out and now my password doesn't work.",
        "How do I reset my password on the app?",
        "my account got suspended?? why",
        "I'm stuck in a loop where the login page sends me back to the homepage.",
        "I need to regain access to my account, my username is {email}.",
        "The one-time login code you text me never shows up.",
        "Could you send a new password reset link to {email}?",
        "I changed my password yesterday and now I can't get in.",
        "It says my email is not verified. How do I verify it?",
        "Locked out of my account, please advise.",
        "My login stopped working after the site update.",
        "Is there a way to sign in without a password?",
        "I can't access my order history because I'm unable to log in.",
        "forgot pw",
        "The security questions for my account don't accept my answers.",
        "Please merge my two accounts, {email} and {email2}.",
        "The site says my account is disabled, what does that mean?",
        "My password doesn't work anymore, please help me log in.",
        "Can't get into my account, the reset email is missing.",
        "I need help accessing my account.",
        "Why can't I sign in to my account?",
        "Please reset the password for {email}.",
        "I can't log in to my account, it says wrong password.",
        "Password reset link isn't working.",
        "How do I change my account password?",
        "My account won't let me sign in.",
        "I'm locked out of my account.",
        "Can you help me get into my account? I forgot my login.",
        "The sign in page says my account doesn't exist.",
        "I didn't get the email to reset my password.",
        "unable to log in",
        "My account was locked, how do I unlock it?",
        "~Nothing happens when I click the link you sent me.",
        "~I can't see my orders anymore.",
    ],
    "complaint": [
        "This is the worst customer service I have ever experienced.",
        "I'm extremely disappointed with the quality of the {product}.",
        "Your courier threw my package over the fence and it broke.",
        "I've contacted you three times about {order} and nobody has replied.",
        "The {product} fell apart within a week. Unacceptable.",
        "I want to file a formal complaint about the delivery driver.",
        "your service is terrible",
        "The agent I spoke to on {date} was rude and hung up on me.",
        "I'm fed up with the constant delays on my orders.",
        "I expected much better from your company.",
        "The packaging was a mess and half the items in {order} were damaged.",
        "Why is it so hard to reach a real person at your company?",
        "I was promised a callback on {date} and never got one.",
        "The {product} looks nothing like the photos on your website. Very misleading and disappointing.",
        "I am writing to express my dissatisfaction with how my case was handled.",
        "Absolutely ridiculous. I've been waiting weeks with no answer.",
        "I'd like to speak to a manager about the way I've been treated.",
        "The quality has really gone downhill, the {product} feels cheap.",
        "You charged me {amount} more than the advertised price and nobody cares.",
        "this is a joke",
        "Your chatbot is useless and keeps sending me in circles.",
        "The driver left {order} in the rain and everything is soaked.",
        "I'm very unhappy with the service I received regarding {order}.",
        "Nobody at your company seems to know what they're doing.",
        "I've had nothing but problems since I started ordering from you.",
        "I want this escalated. The way {order} was handled is shameful.",
        "Your return process is confusing and frustrating.",
        "Terrible experience from start to finish.",
        "The smell coming from the {product} is awful, I'm really disappointed this is even sold.",
        "I'm going to leave a bad review unless someone sorts this out, I'm very unhappy.",
        "Three broken items in a row, this is unacceptable and I'm losing patience with your store.",
        "worst purchase ever, the {product} is garbage",
        "I'm shocked at how poorly the {product} was packed.",
        "I wasn't told about the extra fees until after I paid. That's dishonest.",
        "Your staff promised a replacement and then denied it. I'm furious.",
        "I'm disgusted by how long everything takes with you.",
        "Please pass on my complaint to someone senior.",
        "Second time the {product} arrived scratched. Not happy, this is terrible service.",
        "I'm very disappointed with your service.",
        "This is unacceptable, I want to make a complaint.",
        "Your customer service is awful and nobody helps.",
        "I'm really frustrated with how my order was handled.",
        "Terrible quality, the {product} is a disappointment.",
        "I'm not happy with the service at all.",
        "Awful experience with the {product}, I'm very disappointed.",
        "This is the third time I've had a problem, I'm so frustrated.",
        "I want to complain about how I was treated by your staff.",
        "Your delivery service is a disgrace.",
        "Really poor quality, I'm disappointed with the {product}.",
        "I'm unhappy that nobody called me back.",
        "So annoyed with this company right now.",
        "The customer support here is useless.",
        "I have never been treated so badly by a shop.",
        "~I'm really not happy about {order}.",
        "~The {product} arrived late and the box was crushed.",
    ],
    "other": [
        "Do you offer gift wrapping for the {product}?",
        "What are your store opening hours?",
        "Are you hiring? I'd love to apply for a job.",
        "Just wanted to say the {product} is fantastic, thank you!",
        "I'm interested in a partnership with your brand.",
        "Do you have a physical shop I can visit?",
        "Can I add a gift message to my order?",
        "Do you ship internationally?",
        "Are you open on public holidays?",
        "I run a blog and would like to review your products.",
        "Where can I find your privacy policy?",
        "thanks for the quick help yesterday!",
        "Do you offer student discounts?",
        "How do I sign up for your newsletter?",
        "I'd like to unsubscribe from your marketing emails.",
        "Do you sell gift cards?",
        "Can I order in bulk for my company?",
        "Is there a loyalty program?",
        "What payment methods do you accept?",
        "Who should I contact about wholesale or partnership opportunities?",
        "Love your shop, keep it up",
        "Do you have an affiliate program for influencers?",
        "Where is your headquarters located?",
        "Are your products ethically sourced?",
        "I have a question about your sustainability efforts.",
        "Can I pay with PayPal?",
        "Is there a phone number I can call?",
        "I'd like to send my CV for the warehouse job opening.",
        "Do you do price matching?",
        "Can I pick up orders in person?",
        "Happy holidays to the whole team!",
        "What time does your chat support close?",
        "Do you donate to any charities?",
        "Is this a real person or a bot?",
        "How can I become a supplier for your store?",
        "Do you have a catalogue I can download?",
        "Just testing this chat",
        "Are you running any sales on {date}?",
        "Are you hiring for any customer service roles?",
        "What are your opening hours on weekends?",
        "I just want to say thank you, your team is great.",
        "Can you gift wrap an order and include a card?",
        "We would like to discuss a business partnership with your company.",
        "When is your shop open?",
        "Can I call you? What's your phone number?",
        "Do you have any job vacancies?",
        "I want to apply for the job posted on your website.",
        "Just a thank you for the great service!",
        "Merry Christmas and happy new year to everyone!",
        "Is gift wrapping free?",
        "Do you have a discount code for first orders?",
        "I'd like to collaborate with your brand on social media.",
        "Do you have a store in my city?",
        "~I have a question.",
        "~Do you have anything like the {product} for kids?",
    ],
}

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

# Secondary asks appended to some messages (secondary_intent is set to the clause's intent).
SECONDARY = {
    "refund": [
        "Also, I'd like a refund for the shipping fee.",
        "And I want my money back for the delivery charge.",
    ],
    "order_status": [
        "Also, when will the rest of my order arrive?",
        "Could you also check the tracking for me?",
    ],
    "cancel_order": [
        "And please cancel the second order I placed.",
        "Also, cancel the duplicate order if you can.",
    ],
    "change_address": [
        "Also, my address has changed, please update it.",
        "By the way I've moved, so the shipping address needs changing.",
    ],
    "product_question": ["Also, is the {product} waterproof?", "Also, does it come with a warranty?"],
    "account_access": ["Also, I can't log into my account.", "Also my password reset isn't working."],
    "complaint": [
        "Honestly your service has been really disappointing.",
        "Frankly this whole experience has been frustrating.",
    ],
    "other": ["Also, do you offer gift wrapping?", "Unrelated, but are you hiring?"],
}

# Shared, intent-neutral framing.
OPENERS_FORMAL = [
    "Hello,",
    "Dear Support Team,",
    "Good morning,",
    "Good afternoon,",
    "Hi team,",
    "To whom it may concern,",
    "Dear customer service,",
    "Hello there,",
    "Hi,",
    "Good evening,",
]
OPENERS_INFORMAL = ["hi", "hey", "hey there", "yo", "hello?", "hi team", "heyy", "Hi!", "hiya", "ok so"]
CLOSERS_FORMAL = [
    "Thank you.",
    "Thanks in advance.",
    "Kind regards, {name}",
    "Best regards, {name}",
    "Many thanks, {name}",
    "Sincerely, {name}",
    "I look forward to your reply.",
    "Thank you for your help.",
    "Regards, {first}",
    "Best, {first}",
]
CLOSERS_INFORMAL = [
    "thx",
    "thanks!",
    "ty",
    "cheers",
    "thanks in advance",
    "- {first}",
    "pls help",
    "cheers, {first}",
]
FILLERS_PRE = ["Hope you're well.", "Quick question.", "Hope you are having a good day.", "Please see below."]
FILLERS = [
    "I'm writing from my phone while travelling, so please excuse any typos.",
    "I would really appreciate it if someone could get back to me when you have a moment.",
    "I tried to find the answer in the help centre and the FAQ first, but nothing covered my situation.",
    "You can reach me at {email} if needed.",
    "I'm asking on behalf of my elderly mother, who isn't comfortable with computers.",
    "Sorry for the long message, I just want to give you all the details at once.",
    "This is my first time contacting you.",
    "Sorry if this is the wrong place to ask.",
    "I've been a customer for a few years now.",
    "For reference, I'm registered as {email}.",
]

FIRST = [
    "Sam",
    "Priya",
    "Daniel",
    "Maria",
    "Tom",
    "Aisha",
    "Lukas",
    "Chen",
    "Olivia",
    "Mateo",
    "Grace",
    "Omar",
    "Hannah",
    "Kenji",
    "Sofia",
    "Ben",
    "Fatima",
    "Jonas",
    "Elena",
    "Marcus",
]
LAST = [
    "Nair",
    "Okafor",
    "Garcia",
    "Miller",
    "Rahman",
    "Schmidt",
    "Wei",
    "Brown",
    "Rossi",
    "Kim",
    "Haddad",
    "Fischer",
    "Tanaka",
    "Silva",
    "Walsh",
    "Novak",
    "Lindqvist",
    "Moreau",
    "Patel",
    "Johnson",
]
STREETS = [
    "Elm Street",
    "Oak Avenue",
    "Harbour Road",
    "Maple Drive",
    "Station Road",
    "Birch Lane",
    "King Street",
]
CITIES = [
    "Springfield",
    "Riverton",
    "Lakewood",
    "Fairview",
    "Brookside",
    "Greenville",
    "Millbrook",
    "Ashford",
]
MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]

SLOT_RE = re.compile(r"\{(\w+)\}")
WORD_RE = re.compile(r"[A-Za-z]{4,}")


# ---------------------------------------------------------------------------------------------------------
# Rendering: a message is a list of segments [text, entity_type_or_None]; entity spans come from offsets.
# ---------------------------------------------------------------------------------------------------------


def make_email(rng: random.Random) -> str:
    first, last = rng.choice(FIRST).lower(), rng.choice(LAST).lower()
    domain = rng.choice(["example.com", "example.com", "example.org", "example.net"])
    style = rng.randrange(4)
    local = [
        f"{first}.{last}",
        f"{first}{last}{rng.randint(1, 99)}",
        f"{first[0]}.{last}",
        f"{first}_{last}",
    ][style]
    return f"{local}@{domain}"


def make_date(rng: random.Random) -> str:
    month = rng.choice([8, 9, 10])
    day = rng.randint(1, 28)
    style = rng.randrange(4)
    if style == 0:
        return f"2026-{month:02d}-{day:02d}"
    if style == 1:
        return f"{MONTHS[month - 1]} {day}"
    if style == 2:
        return f"{day} {MONTHS[month - 1]}"
    return f"{MONTHS[month - 1][:3]} {day}"


class Context:
    """Entity values for one message, drawn lazily so unused slots don't consume randomness differently."""

    def __init__(
        self,
        rng: random.Random,
        attachment: list[int] | None = None,
        order_id: str | None = None,
        generic_rate: float = 0.35,
    ):
        self.rng = rng
        self.generic_rate = generic_rate
        products = rng.sample(list(PRODUCTS), 2)
        self.product, self.product2 = products
        self.order_id = order_id or str(rng.randint(10000, 99999))
        self.attachment = attachment
        self.email = make_email(rng)
        self.email2 = make_email(rng)
        while self.email2 == self.email:
            self.email2 = make_email(rng)
        self.amount = (
            PRODUCTS[self.product]
            if rng.random() < 0.6
            else f"{rng.randint(5, 250)}.{rng.choice(['00', '99', '50', '95'])}"
        )
        self.date = make_date(rng)
        self.first = rng.choice(FIRST)
        self.name = f"{self.first} {rng.choice(LAST)}"
        self.city = rng.choice(CITIES)
        self.addr = f"{rng.randint(2, 240)} {rng.choice(STREETS)}, {self.city}"
        self.generics: list[tuple[str, str]] = []  # (generic noun rendered, the product it stands for)

    def slot(self, name: str) -> list[list]:
        rng = self.rng
        if name == "order":
            if self.attachment is not None:
                return [
                    [
                        rng.choice(
                            [
                                "the order in the attached photo",
                                "my order (the order number is in the photo attached)",
                                "the order shown in the picture I attached",
                                "my order (see the attached photo for the number)",
                            ]
                        ),
                        None,
                    ]
                ]
            prefix = rng.choice(["order #", "order ", "order number ", "order no. ", "order #", "#"])
            return [[prefix, None], [self.order_id, "order_id"]]
        if name in ("product", "product2"):
            product = getattr(self, name)
            if rng.random() < self.generic_rate:
                generic = rng.choice(GENERIC[product])
                self.generics.append((generic, product))
                return [[generic, None]]
            return [[product, "product"]]
        if name in ("email", "email2"):
            return [[getattr(self, name), "email"]]
        if name == "amount":
            return [["$", None], [self.amount, "amount"]]
        if name == "date":
            return [[self.date, "date"]]
        if name in ("addr", "city", "name", "first"):
            return [[getattr(self, name), None]]
        raise KeyError(name)


def render(template: str, ctx: Context) -> list[list]:
    segs: list[list] = []
    pos = 0
    for m in SLOT_RE.finditer(template):
        if m.start() > pos:
            segs.append([template[pos : m.start()], None])
        segs.extend(ctx.slot(m.group(1)))
        pos = m.end()
    if pos < len(template):
        segs.append([template[pos:], None])
    return segs


def slots_of(template: str) -> set[str]:
    return set(SLOT_RE.findall(template))


def typo_word(rng: random.Random, word: str) -> str:
    i = rng.randrange(1, len(word) - 1)
    kind = rng.randrange(4)
    if kind == 0:  # swap adjacent letters
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if kind == 1:  # drop a letter
        return word[:i] + word[i + 1 :]
    if kind == 2:  # double a letter
        return word[:i] + word[i] + word[i:]
    keyboard = {
        "a": "s",
        "e": "r",
        "i": "o",
        "o": "p",
        "n": "m",
        "s": "d",
        "t": "y",
        "r": "t",
        "l": "k",
        "u": "y",
    }
    return word[:i] + keyboard.get(word[i].lower(), word[i]) + word[i + 1 :]


def add_typos(rng: random.Random, segs: list[list], n: int) -> None:
    spots = [(si, m.start(), m.end()) for si, s in enumerate(segs) if s[1] is None for m in WORD_RE.finditer(s[0])]
    if not spots:
        return
    for si, a, b in sorted(rng.sample(spots, min(n, len(spots))), key=lambda t: (t[0], -t[1])):
        text = segs[si][0]
        segs[si][0] = text[:a] + typo_word(rng, text[a:b]) + text[b:]


def restyle(segs: list[list], fn) -> None:
    for s in segs:
        if s[1] is None:
            s[0] = fn(s[0])


def capitalise_first(segs: list[list]) -> None:
    for s in segs:
        if s[0]:
            if s[1] is None:
                s[0] = s[0][0].upper() + s[0][1:]
            return


def compose(
    rng: random.Random,
    body_tpl: str,
    ctx: Context,
    *,
    channel: str,
    register: str,
    secondary_tpl: str | None = None,
    typo_rate: float = 0.15,
    caps_rate: float = 0.03,
    clean: bool = False,
) -> tuple[str, list[dict]]:
    body = render(body_tpl, ctx)
    if rng.random() < 0.85 or register == "formal":
        capitalise_first(body)
    if secondary_tpl:
        body.append([" ", None])
        body.extend(render(secondary_tpl, ctx))
    if not clean and rng.random() < caps_rate:
        restyle(body, str.upper)

    formal = register == "formal"
    is_email = channel == "email"
    parts: list[list[list]] = []
    p_open = (0.9 if formal else 0.6) if is_email else (0.45 if formal else 0.35)
    if rng.random() < p_open:
        parts.append(render(rng.choice(OPENERS_FORMAL if formal else OPENERS_INFORMAL), ctx))
    n_fill = 0
    if rng.random() < (0.7 if is_email else 0.15):
        n_fill = 1 if not is_email else rng.choice([1, 1, 1, 2, 2, 3])
    fillers = rng.sample(FILLERS, n_fill)
    if "email" in slots_of(body_tpl) or (secondary_tpl and "email" in slots_of(secondary_tpl)):
        fillers = [f for f in fillers if "{email}" not in f]
    pre = [f for f in fillers if rng.random() < 0.5]
    post = [f for f in fillers if f not in pre]
    if rng.random() < (0.25 if is_email else 0.08):
        pre.insert(0, rng.choice(FILLERS_PRE))
    for f in pre:
        parts.append(render(f, ctx))
    parts.append(body)
    for f in post:
        parts.append(render(f, ctx))
    p_close = (0.85 if formal else 0.5) if is_email else (0.4 if formal else 0.3)
    if rng.random() < p_close:
        parts.append(render(rng.choice(CLOSERS_FORMAL if formal else CLOSERS_INFORMAL), ctx))

    sep = "\n\n" if is_email and len(parts) > 2 and rng.random() < 0.6 else " "
    segs: list[list] = []
    for i, part in enumerate(parts):
        if i:
            segs.append([sep if (i == 1 or i == len(parts) - 1) else " ", None])
        segs.extend(part)

    if not formal and channel == "chat" and rng.random() < 0.5:
        restyle(segs, str.lower)
    if not formal and rng.random() < 0.4:
        last = segs[-1]
        if last[1] is None and last[0].endswith("."):
            last[0] = last[0][:-1]
    if rng.random() < typo_rate:
        add_typos(rng, segs, 1 if rng.random() < 0.7 else 2)

    text, entities, pos = "", [], 0
    for s, etype in segs:
        if etype:
            entities.append({"type": etype, "start": pos, "end": pos + len(s), "value": s})
        text += s
        pos += len(s)
    return text, entities


def length_bucket(text: str) -> str:
    n = len(text.split())
    return "short" if n <= 8 else ("medium" if n <= 30 else "long")


def pick_style(rng: random.Random) -> tuple[str, str]:
    channel = "chat" if rng.random() < 0.55 else "email"
    if channel == "chat":
        register = "informal" if rng.random() < 0.75 else "formal"
    else:
        register = "formal" if rng.random() < 0.8 else "informal"
    return channel, register


def clean_tpl(t: str) -> str:
    return t[1:] if t.startswith("~") else t


# ---------------------------------------------------------------------------------------------------------
# Digits test split for attachments
# ---------------------------------------------------------------------------------------------------------


def digits_test_split() -> tuple[list[int], list[int]]:
    sys.path.insert(0, str(ROOT))
    from release_assets.datasets.digits import image_group, load_digits_arrays
    from release_assets.datasets.split import assign_splits

    images, labels = load_digits_arrays()
    sides = assign_splits(
        [str(label) for label in labels],
        [image_group(im) for im in images],
        test=0.25,
        val=0.0,
        seed=DIGITS_SPLIT_SEED,
    )
    test_indices = [i for i, s in enumerate(sides) if s == "test"]
    return test_indices, [int(x) for x in labels]


class Attacher:
    def __init__(self, rng: random.Random, test_indices: list[int], labels: list[int]):
        self.rng = rng
        self.by_label: dict[int, list[int]] = {d: [] for d in range(10)}
        for i in test_indices:
            self.by_label[labels[i]].append(i)
        self.available = [d for d in range(10) if self.by_label[d]]

    def make(self) -> tuple[str, list[int]]:
        first = [d for d in self.available if d != 0]
        digits = [self.rng.choice(first)] + [self.rng.choice(self.available) for _ in range(4)]
        return "".join(map(str, digits)), [self.rng.choice(self.by_label[d]) for d in digits]


# ---------------------------------------------------------------------------------------------------------
# Builders
# ---------------------------------------------------------------------------------------------------------


def build_messages(rng: random.Random) -> list[dict]:
    rows: list[dict] = []
    seen: set[str] = set()
    for intent in INTENTS:
        for t_idx, raw in enumerate(TRAIN[intent], start=1):
            tpl = clean_tpl(raw)
            group = f"{intent}-t{t_idx:03d}"
            for _ in range(rng.randint(3, 5)):
                for _attempt in range(20):
                    channel, register = pick_style(rng)
                    secondary = None
                    sec_tpl = None
                    if rng.random() < 0.07:
                        secondary = rng.choice([i for i in INTENTS if i != intent])
                        sec_tpl = rng.choice(SECONDARY[secondary])
                    ctx = Context(rng)
                    text, ents = compose(
                        rng,
                        tpl,
                        ctx,
                        channel=channel,
                        register=register,
                        secondary_tpl=sec_tpl,
                        caps_rate=0.15 if intent == "complaint" else 0.02,
                    )
                    if text not in seen:
                        break
                seen.add(text)
                rows.append(
                    {
                        "text": text,
                        "intent": intent,
                        "secondary_intent": secondary,
                        "paraphrase_group": group,
                        "entities": ents,
                        "channel": channel,
                        "register": register,
                        "length": length_bucket(text),
                    }
                )
    rng.shuffle(rows)
    return [{"id": f"m{i:05d}", **row} for i, row in enumerate(rows, start=1)]


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


# ---------------------------------------------------------------------------------------------------------
# Writers and checks
# ---------------------------------------------------------------------------------------------------------


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def write_kb(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Knowledge base for helpdesk replies. Generated by data/generate.py; edit there, then rerun.",
        "facts:",
    ]
    lines += [f"  {key}: {json.dumps(text)}" for key, text in FACTS.items()]
    lines.append("products:")
    lines += [f"  - {json.dumps(name)}" for name in PRODUCTS]
    lines.append("# Partial names customers use: the extractor matches them whole-word, any case, longest first.")
    lines.append("aliases:")
    lines += [f"  {json.dumps(name)}: {json.dumps(ALIASES[name])}" for name in PRODUCTS]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8", newline="\n")


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


def table(counter: Counter, keys=None) -> str:
    keys = keys if keys is not None else sorted(counter)
    return "\n".join(f"| {k} | {counter.get(k, 0)} |" for k in keys)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_sources(path: Path, messages, golden, traffic, traffic_meta, test_indices, kbqa_golden) -> str:
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
| `golden/kbqa.jsonl` | {len(kbqa_golden)} | questions, each with the fact its answer must come from |

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
heading(s) the fact sits under. The kbqa chain's `retrieve` step indexes each fact's id words, sentence and
headings with TF-IDF, and its `answer` step quotes the retrieved sentence word for word. Every fact has a key
phrase that no other fact contains (asserted), so an answer from the wrong fact cannot pass `must_contain`.

### `golden/kbqa.jsonl`

One JSON object per line: `{{"id", "message", "expected": {{"intent"}}, "must_contain", "must_not_contain",
"reference_reply"}}`. `expected.intent` is the id of the fact the answer must come from, or `null` for a question
the knowledge base cannot answer (the chain must abstain); `must_contain` is that fact's key phrase (for an
abstention: `{KBQA_ABSTAIN_KEY}`), `must_not_contain` template debris, `reference_reply` the fact's sentence (or
the abstention). {len(kbqa_golden)} cases, {kbqa_answerable} answerable (2-3 per fact) and {len(kbqa_golden) - kbqa_answerable} unanswerable, in an
order shuffled by `Random(SEED + 6)`.

**Phrased differently.** Questions are written the way customers ask, not from the facts: none contains its
fact's key phrase, none shares a run of 4 words with its fact's sentence or headings, and none is a heading (the
generator asserts all three). Many use other words than the fact (`borrow` for `rent`, `money back` for
`refund`), which a lexical retriever cannot bridge: the suite measures that gap rather than hiding it.

| fact | key phrase | questions |
|---|---|---|
{kbqa_table}

Unanswerable questions: {"; ".join(f"`{q}`" for q in KBQA_OUT_OF_SCOPE)}.
"""
    path.write_text(text, encoding="utf-8", newline="\n")
    return text


# ---------------------------------------------------------------------------------------------------------
# kbqa: the help centre of Pinecrest Supply Co., a fictional outdoor-gear store, and questions about it
# ---------------------------------------------------------------------------------------------------------

# fact id: (sentence, the key phrase an answer must contain, the help-centre heading(s) the fact sits under,
#           golden questions phrased the way customers ask). Headings are indexed by the retriever; golden
#           questions never are, and the checks below keep them apart.
KBQA_FACTS: dict[str, tuple[str, str, list[str], list[str]]] = {
    "shipping_standard": (
        "Standard shipping takes 4-6 business days within the continental US.",
        "4-6 business days",
        ["How long does standard shipping take?"],
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
        ["How much does express shipping cost and how fast is it?"],
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
        ["What is the return window?"],
        [
            "How long do I have to send something back?",
            "Is it too late to return boots I got last month?",
            "What is your return period?",
        ],
    ),
    "return_condition": (
        "Returned items must be unused, with original tags and packaging.",
        "original tags",
        ["What condition must returned items be in?"],
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
        ["What does the warranty not cover?"],
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
        ["Do gift cards expire?"],
        [
            "Is there an expiry date on your gift cards?",
            "What values can I buy a gift card in?",
            "I found an old Pinecrest voucher, can I still use it?",
        ],
    ),
    "promo_codes": (
        "Only one promo code can be used per order, and codes do not apply to gift cards.",
        "one promo code",
        ["Can I use more than one promo code?"],
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
        ["Do you offer group or bulk orders?"],
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


def main() -> None:
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

    outputs = {
        "support/messages.jsonl": messages,
        "golden/helpdesk.jsonl": golden,
        "traffic/helpdesk.jsonl": traffic,
        "golden/kbqa.jsonl": kbqa_golden,
    }
    for rel, rows in outputs.items():
        write_jsonl(DATA / rel, rows)
    write_kb(DATA / "support/knowledge_base.yaml")
    write_kbqa_kb(DATA / "kbqa/knowledge_base.yaml")
    write_sources(DATA / "SOURCES.md", messages, golden, traffic, traffic_meta, test_indices, kbqa_golden)

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
    for rel in [*outputs, "support/knowledge_base.yaml", "kbqa/knowledge_base.yaml", "SOURCES.md"]:
        print(f"{sha(DATA / rel)}  data/{rel}")


if __name__ == "__main__":
    main()
