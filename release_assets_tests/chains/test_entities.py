"""Entity extraction on the shipped helpdesk patterns and knowledge base, on the sentences that 60 independently
written messages showed it missing: an order number before a full stop, an amount without a currency sign, and a
product named by part of its name."""

from pathlib import Path

import pytest

from release_assets.chains.bindings import extract, match_product
from release_assets.chains.knowledge import load_knowledge_base
from release_assets.chains.runner import ChainRequest, ChainRunner
from release_assets.chains.spec import load_chain
from release_assets.evaluation.golden_inputs import GoldenSuiteError
from release_assets_tests.fakes import KeywordIntents, PixelSumDigits

REPO = Path(__file__).resolve().parents[2]
KB = load_knowledge_base(REPO / "data" / "support" / "knowledge_base.yaml")
PREDICTORS = {"intent_model": KeywordIntents(), "vision_model": PixelSumDigits()}
SPEC, SCHEMAS = load_chain(REPO / "prompts" / "helpdesk", {k: v.labels for k, v in PREDICTORS.items()})
STEP = SPEC.step("extract_entities")


def _entities(text: str) -> dict:
    """Through the runner, so the output schema (amount: float) applies as it does in a release."""
    [res] = ChainRunner(SPEC, SCHEMAS, PREDICTORS, KB).run([ChainRequest("e", text)])
    assert res.format_valid, res.errors
    return {k: v for k, v in res.outputs["extract_entities"].items() if v is not None}


def test_an_order_number_before_a_full_stop_is_extracted():
    assert _entities("Order 66102.")["order_id"] == "66102"
    assert _entities("I want to cancel it. The number is 66102. Thanks")["order_id"] == "66102"


def test_a_decimal_is_still_not_an_order_number():
    assert "order_id" not in _entities("it came to 12345.67 in the end")


def test_an_amount_without_a_currency_sign_is_extracted():
    assert _entities("I paid 49.99 and it broke")["amount"] == 49.99
    assert _entities("refund of $49.99 for order 12345") == {"order_id": "12345", "amount": 49.99}
    assert _entities("they charged me 20 dollars extra")["amount"] == 20.0


def test_partial_product_names_are_matched_to_the_catalogue():
    assert _entities("Does the rain jacket have taped seams?")["product"] == "Harbor Rain Jacket"
    assert _entities("my desk lamp flickers")["product"] == "Aurora Desk Lamp"
    assert _entities("The full Aurora Desk Lamp is fine")["product"] == "Aurora Desk Lamp"


def test_the_shipped_knowledge_base_gives_every_product_aliases():
    assert set(KB.aliases) == set(KB.products)
    assert "rain jacket" in KB.aliases["Harbor Rain Jacket"]


CATALOGUE = ["Desk Lamp", "Desk Lamp Pro", "Yoga Mat"]
ALIASES = {"Desk Lamp": ["lamp"], "Desk Lamp Pro": ["pro lamp"], "Yoga Mat": ["mat"], "Not Sold": ["jacket"]}


@pytest.mark.parametrize(
    ("text", "product"),
    [
        ("the desk lamp pro is great", "Desk Lamp Pro"),  # longest name first, not the first listed
        ("my DESK LAMP broke", "Desk Lamp"),  # any case
        ("a new   desk\nlamp", "Desk Lamp"),  # any whitespace between the words
        ("the pro lamp", "Desk Lamp Pro"),  # an alias
        ("the lamp", "Desk Lamp"),
        ("the lamp, or the mat", "Desk Lamp"),  # equally long: the catalogue's order
        ("which format is it in?", None),  # whole words: no "mat" inside "format"
        ("lamps", None),
        ("a rain jacket", None),  # an alias of a product the catalogue does not sell
        ("my yoga ſtudio mat", "Yoga Mat"),  # non-ASCII text: every phrase's regex, no substring shortcut
        ("the \u212aitchen mat", "Yoga Mat"),
        ("my Desk\tLAMP pro", "Desk Lamp Pro"),
    ],
)
def test_product_matching(text, product):
    assert match_product(text, CATALOGUE, ALIASES) == product


def test_extract_without_aliases_matches_full_names_only():
    assert extract(STEP, "the rain jacket", KB.products).get("product") is None
    assert extract(STEP, "the Harbor Rain Jacket", KB.products)["product"] == "Harbor Rain Jacket"


@pytest.mark.parametrize(
    ("aliases", "error"),
    [
        ('aliases: {"Lamp": ["light"], "Mat": ["Light"]}', r"aliases\.Mat: 'Light' already names 'Lamp'"),
        ('aliases: {"Lamp": ["mat"]}', r"aliases\.Lamp: 'mat' already names 'Mat'"),
        ('aliases: {"Jacket": ["coat"]}', r"aliases\.Jacket: not a product of the catalogue"),
        ('aliases: {"Lamp": "light"}', r"aliases: expected"),
    ],
)
def test_ambiguous_or_unknown_aliases_are_refused(tmp_path, aliases, error):
    path = tmp_path / "kb.yaml"
    path.write_text(f'facts: {{a: "A."}}\nproducts: ["Lamp", "Mat"]\n{aliases}\n')
    with pytest.raises(GoldenSuiteError, match=error):
        load_knowledge_base(path)


def test_a_name_with_non_ascii_letters_still_matches_ascii_text_case_insensitively():
    # The regex's case folding takes "ſ" (long s) for "s": the substring shortcut must not skip such a name.
    assert match_product("my skillet pan", ["\u017fkillet Pan"], {}) == "\u017fkillet Pan"
    assert match_product("my Kettle", ["\u212aettle"], {}) == "\u212aettle"  # the Kelvin sign folds to k
