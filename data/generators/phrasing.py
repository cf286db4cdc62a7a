"""Rendering shared by messages, golden cases and traffic: intent-neutral openers, fillers and closers, names and
addresses, entity slots, typos, channel and register styling."""

from __future__ import annotations

import random
import re

from generators.support_kb import GENERIC, PRODUCTS

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
