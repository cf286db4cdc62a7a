from release_assets.evaluation.behaviour import behaviour_summary, invariance_cases

MESSAGES = [
    "Hi, where is order 12345? Thanks, Grace Patel",
    "I want a refund for the broken kettle. Regards, Tom",
    "Please update the delivery address for 54321",
]
MFT = [
    {"text": "Cancel my order please", "expected": "cancel_order"},
    {"text": "Where is my parcel?", "expected": "order_status"},
]


def keyword_model(texts: list[str]) -> list[str]:
    """Robust by construction: lowercases and looks for whole keywords."""
    out = []
    for t in texts:
        t = t.lower()
        if "cancel" in t:
            out.append("cancel_order")
        elif "refund" in t:
            out.append("refund")
        elif "where" in t or "parcel" in t:
            out.append("order_status")
        elif "address" in t:
            out.append("change_address")
        else:
            out.append("other")
    return out


def brittle_model(texts: list[str]) -> list[str]:
    """Case-sensitive, fooled by names, never learned cancellation."""
    return ["refund" if "refund" in t and "Tom" in t else "other" for t in texts]


def test_perturbations_are_deterministic_and_apply_where_they_can():
    cases = invariance_cases(MESSAGES, seed=7)
    assert cases == invariance_cases(MESSAGES, seed=7)
    assert cases != invariance_cases(MESSAGES, seed=8)
    kinds = [(kind, i) for kind, i, _ in cases]
    assert ("names", 0) in kinds and ("order_ids", 0) in kinds and ("order_ids", 1) not in kinds
    assert ("names", 2) not in kinds and ("casing", 2) in kinds and ("typo", 1) in kinds
    for kind, i, text in cases:
        assert text != MESSAGES[i]
        if kind == "order_ids":
            assert "12345" not in text and "54321" not in text
        if kind == "typo":
            assert sorted(text) == sorted(MESSAGES[i]) and len(text) == len(MESSAGES[i])


def test_a_robust_model_passes_every_behavioural_test():
    summary = behaviour_summary(keyword_model, MESSAGES, MFT, seed=0)
    m = summary["metrics"]
    assert m["invariance_rate"] == 1.0 and m["directional_rate"] == 1.0 and m["mft_accuracy"] == 1.0
    assert m["invariance_cases"] >= 8 and m["directional_cases"] == 3 and m["mft_cases"] == 2
    assert summary["examples"] == []
    assert behaviour_summary(keyword_model, MESSAGES, MFT, seed=0) == summary


def test_a_brittle_model_fails_and_shows_its_failures():
    summary = behaviour_summary(brittle_model, MESSAGES, MFT, seed=0)
    m = summary["metrics"]
    assert m["invariance_rate"] < 1.0 and m["directional_rate"] == 0.0 and m["mft_accuracy"] == 0.0
    tests = {e["test"] for e in summary["examples"]}
    assert "directional:cancel" in tests and "mft" in tests
    assert tests & {"invariance:names", "invariance:casing"}
    inv = next(e for e in summary["examples"] if e["test"].startswith("invariance"))
    assert inv["original"] == MESSAGES[1] and inv["before"] == "refund" and inv["after"] == "other"
    assert {"original", "perturbed", "before", "after"} <= set(inv)


def test_rates_are_none_when_there_is_nothing_to_test():
    m = behaviour_summary(keyword_model, ["cancel it"], [], seed=0)["metrics"]
    assert m["directional_rate"] is None and m["mft_accuracy"] is None
