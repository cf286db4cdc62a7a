"""Shadow pairs summarized, and the six shadow gates decided from the summary: each has a fixture that fails it,
none passes without a champion or with too few pairs, and a shadow gate needs the chain's recorded traffic."""

from __future__ import annotations

import pytest
import yaml

from release_assets.artifacts import ArtifactRef
from release_assets.evaluation.shadow_pairs import MAX_EXAMPLES, summarize
from release_assets.manifest import ManifestError, load_manifest, parse_manifest
from release_assets.promotion.gates import MemberInputs, member_roles, member_verdicts
from release_assets.serving.shadow import compare
from release_assets_tests.conftest import REPO

CHAMPION, CANDIDATE = "1111111111111111", "2222222222222222"
SHADOW_GATES = {
    "shadow_intent_agreement": {"min": 0.9},
    "shadow_entity_agreement": {"min": 0.9},
    "shadow_reply_similarity": {"min": 0.5},
    "shadow_abstain_rate_diff": {"max": 0.05},
    "shadow_escalation_rate_diff": {"max": 0.05},
    "shadow_latency_diff_ms": {"max": 5},
}


def answer(intent="refund", entities=None, reply="Your refund is on its way", abstained=False, escalate=False, ms=3.0):
    return {
        "intent": intent,
        "entities": {"order_id": "12345"} if entities is None else entities,
        "reply": reply,
        "abstained": abstained,
        "escalate": escalate,
        "latency_ms": {"total": ms},
    }


def pair(n: int, champion: dict, candidate: dict) -> dict:
    return {
        "request_id": f"t{n:05d}",
        "message": f"message {n} " + "x" * 300,
        "primary_version": CHAMPION,
        "shadow_version": CANDIDATE,
        **compare(champion, candidate),
        "shadow_error": None,
    }


def agreeing(n: int = 40) -> list[dict]:
    return [pair(i, answer(), answer(ms=3.5)) for i in range(n)]


def test_summarize_hand_made_pairs():
    cancelled = answer(intent="cancel_order", reply="Your order is cancelled", ms=5.0)
    failed = {"request_id": "t00003", "primary": {"intent": "refund"}, "agreement": {}, "shadow_error": "StepFailed: x"}
    pairs = [
        pair(0, answer(), answer(ms=4.0)),
        pair(1, answer(), cancelled),
        pair(2, answer(), answer(entities={}, abstained=True, escalate=True, ms=2.0)),
        failed,  # as the shadow pool records a candidate that raised
        {"request_id": "t9", "agreement": {}, "primary_error": "RequestError: message: must not be empty"},
    ]
    s = summarize(pairs)
    m = s["metrics"]
    assert (m["pairs"], m["shadow_errors"], m["primary_errors"]) == (4, 1, 1)
    # A failed candidate disagrees on everything; the champion's failures are only counted.
    assert m["shadow_intent_agreement"] == 0.5  # pairs 0 and 2 of 0..3
    assert m["shadow_entity_agreement"] == 0.5  # pairs 0 and 1
    assert m["shadow_reply_similarity"] == pytest.approx((1 + compare(answer(), cancelled)["reply_similarity"] + 1) / 4)
    # Rates over the three answered pairs: the candidate abstained and escalated once, the champion never.
    assert m["shadow_abstain_rate_diff"] == pytest.approx(1 / 3, abs=1e-6)
    assert m["shadow_escalation_rate_diff"] == pytest.approx(1 / 3, abs=1e-6)
    assert m["shadow_latency_diff_ms"] == 1.0  # median of +1, +2, -1
    ids = [e["id"] for e in s["examples"]]
    assert ids == ["t00003", "t00001", "t00002"]  # failed, then wrong intent, then wrong entities
    first = s["examples"][0]
    assert first["_table"] == "disagreeing_pairs" and first["differs"].startswith("candidate failed")
    assert len(s["examples"][1]["message"]) <= 100
    assert s["examples"][1]["champion_intent"] == "refund" and s["examples"][1]["candidate_intent"] == "cancel_order"


def test_no_pairs_measure_nothing_and_examples_are_bounded():
    empty = summarize([])["metrics"]
    assert empty["pairs"] == 0 and all(empty[k] is None for k in SHADOW_GATES)
    many = [pair(i, answer(), answer(intent="other", reply="Hello")) for i in range(50)]
    assert len(summarize(many)["examples"]) == MAX_EXAMPLES


def manifest_with(gates: dict, traffic: bool = True):
    data = yaml.safe_load((REPO / "releases" / "helpdesk.yaml").read_text())
    if not traffic:
        data["members"]["chain"].pop("traffic")
    data["gates"]["chain"] = gates
    manifest = parse_manifest(data, "helpdesk.yaml")
    # Only the shadow gates: the chain's default contract gate reads the built chain, which these tests do not have.
    chain_gates = {g: t for g, t in manifest.gates["chain"].items() if g != "contract"}
    return manifest.model_copy(update={"gates": {**manifest.gates, "chain": chain_gates}})


def decide(pairs: list[dict], gates: dict | None = None, champion: str | None = CHAMPION):
    manifest = manifest_with(gates or SHADOW_GATES)
    summary = {**summarize(pairs), "champion": champion}
    ref = ArtifactRef(
        release="helpdesk", member="shadow_comparison", kind="shadow_comparison", fingerprint="f", location="x",
        files={}, summary=summary,
    )  # fmt: skip
    refs = {"shadow": ref, "evaluation": ref}
    return {v.gate: v for v in member_verdicts(manifest, "chain", MemberInputs(refs=refs, store_root=REPO))}


def test_agreeing_pairs_pass_every_shadow_gate():
    verdicts = decide(agreeing())
    assert {g: v.status for g, v in verdicts.items()} == dict.fromkeys(SHADOW_GATES, "passed")
    assert "against champion 1111111111111111, 40 pairs" in verdicts["shadow_intent_agreement"].reason


FAILING = {
    "shadow_intent_agreement": lambda i: answer(intent="cancel_order" if i % 4 == 0 else "refund"),
    "shadow_entity_agreement": lambda i: answer(entities={} if i % 4 == 0 else None),
    "shadow_reply_similarity": lambda i: answer(reply="Please tell me more about your question"),
    "shadow_abstain_rate_diff": lambda i: answer(abstained=i % 10 == 0),
    "shadow_escalation_rate_diff": lambda i: answer(escalate=i % 10 == 0),
    "shadow_latency_diff_ms": lambda i: answer(ms=12.0),
}


@pytest.mark.parametrize("gate", sorted(SHADOW_GATES))
def test_each_shadow_gate_fails_on_its_fixture(gate):
    pairs = [pair(i, answer(), FAILING[gate](i)) for i in range(40)]
    verdicts = decide(pairs)
    v = verdicts[gate]
    assert v.status == "failed", v.reason
    assert v.holds_release
    if gate != "shadow_latency_diff_ms":  # a slower answer is not a disagreeing one
        assert v.examples and v.examples[0]["_table"] == "disagreeing_pairs"


def test_no_champion_is_inconclusive_and_warn_lets_it_pass():
    gates = {g: {**t, "on_inconclusive": "warn"} for g, t in SHADOW_GATES.items()}
    verdicts = decide(agreeing(), gates, champion=None)
    for v in verdicts.values():
        assert (v.status, v.reason) == ("inconclusive", "no champion to compare with")
        assert not v.holds_release
    held = decide(agreeing(), champion=None)  # on_inconclusive defaults to hold
    assert all(v.holds_release for v in held.values())


def test_too_few_pairs_is_inconclusive_never_a_pass():
    verdicts = decide(agreeing(29))
    assert all(v.status == "inconclusive" and "fewer than the 30" in v.reason for v in verdicts.values())
    gates = {g: {**t, "params": {"min_pairs": 5}} for g, t in SHADOW_GATES.items()}
    assert all(v.status == "passed" for v in decide(agreeing(5), gates).values())


def test_a_shadow_gate_on_a_chain_without_traffic_is_a_manifest_error():
    with pytest.raises(ManifestError, match=r"gates\.chain\.shadow_intent_agreement: needs `members\.chain\.traffic`"):
        manifest_with({"shadow_intent_agreement": {"min": 0.9}}, traffic=False)
    assert "shadow" not in member_roles(manifest_with({}, traffic=False), "chain")
    assert member_roles(manifest_with({}), "chain")["shadow"] == ["helpdesk", "shadow_comparison"]


@pytest.mark.parametrize(
    ("gate", "bound", "message"),
    [
        ("shadow_abstain_rate_diff", {"max": 1.5}, r"outside shadow_abstain_rate_diff's range \[-1, 1\]"),
        ("shadow_intent_agreement", {"max": 0.9}, "needs `min`"),
        ("shadow_latency_diff_ms", {"min": 0}, "needs `max`"),
    ],
)
def test_shadow_gate_bounds_are_checked(gate, bound, message):
    with pytest.raises(ManifestError, match=message):
        manifest_with({gate: bound})


def test_a_latency_budget_may_demand_a_faster_candidate():
    manifest_with({"shadow_latency_diff_ms": {"max": -2}})  # any finite number: faster is negative


def test_the_shipped_manifest_declares_every_shadow_gate_warning_without_a_champion():
    manifest = load_manifest(REPO / "releases" / "helpdesk.yaml")
    chain = manifest.gates["chain"]
    assert set(SHADOW_GATES) <= set(chain)
    assert all(chain[g].on_inconclusive == "warn" for g in SHADOW_GATES)
    assert manifest.members["chain"].traffic == "data/traffic/helpdesk.jsonl"
