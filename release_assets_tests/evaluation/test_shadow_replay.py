"""The offline shadow comparison: recorded traffic as serve would receive it, replayed pair by pair through
candidate and champion; and end to end, a prompt change compared with the promoted champion."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg

from bench.support.fakes import EXPLODE, FakeRelease
from release_assets.serving.requests import parse_chain_request
from release_assets.serving.shadow_replay import build_shadow_comparison, replay, subset, traffic_requests
from release_assets_tests.conftest import REPO

TRAFFIC = REPO / "data" / "traffic" / "helpdesk.jsonl"


def test_recorded_traffic_becomes_requests_serve_accepts():
    requests, lines = traffic_requests(TRAFFIC)
    assert lines == len(requests) == 640  # all of it: the replay is cheap enough (MAX_REQUESTS)
    for _, request in requests:
        parse_chain_request(request)  # no recorded-only field (received_at, channel) reaches the request
    with_photo = [r for _, r in requests if "attachment" in r]
    assert with_photo and all(len(img) == 64 for r in with_photo for img in r["attachment"]["digits"])
    assert requests[0][0] == "t00001"


def test_a_bigger_file_is_cut_to_a_fixed_spread_subset():
    assert subset(640, 1000) == list(range(640))
    assert subset(640, 100) == list(range(0, 640, 7)) == subset(640, 100)
    requests, lines = traffic_requests(TRAFFIC, max_requests=100)
    assert (len(requests), lines) == (92, 640)
    assert [i for i, _ in requests][:2] == ["t00001", "t00008"]


class Recorded(FakeRelease):
    """A fake release that notes the order the two sides were asked in, and answers one message differently."""

    def __init__(self, version: str, order: list[str], differ: str | None = None) -> None:
        super().__init__("helpdesk", version)
        self.order, self.differ = order, differ

    def predict(self, request, **kwargs):
        self.order.append(self.version)
        out = super().predict(request, **kwargs)
        if self.differ and self.differ in request["message"]:
            out = {**out, "intent": "complaint", "reply": "A colleague will call you.", "escalate": True}
        return out


def test_replay_pairs_each_request_alternating_which_side_goes_first():
    order: list[str] = []
    champion, candidate = Recorded("champion", order), Recorded("candidate", order, differ="cancel")
    requests = [
        ("a", {"message": "I want a refund"}),
        ("b", {"message": "please cancel it"}),
        ("c", {"message": f"{EXPLODE} here"}),
    ]
    pairs = replay(candidate, champion, requests)
    assert order == ["champion", "candidate", "candidate", "champion", "champion", "candidate"]
    a, b, c = pairs
    assert a["agreement"] == {"intent": True, "entities": True} and a["shadow_error"] is None
    assert (a["primary"]["intent"], a["shadow"]["intent"]) == ("refund", "refund")
    assert b["agreement"]["intent"] is False and b["shadow"]["escalate"] is True
    assert c["primary_error"].startswith("StepFailed") and c["shadow_error"].startswith("StepFailed")
    assert (a["primary_version"], a["shadow_version"], a["request_id"]) == ("champion", "candidate", "a")


def test_without_a_champion_nothing_is_replayed(tmp_path):
    def never(version):
        raise AssertionError("no champion: nothing to load")

    summary = build_shadow_comparison("helpdesk", {}, "chain.yaml", TRAFFIC, tmp_path, None, never)
    assert summary["champion"] is None and summary["metrics"] == {"pairs": 0, "shadow_errors": 0}
    assert "No champion" in (tmp_path / "report.md").read_text()
    assert (tmp_path / "pairs.jsonl").read_text() == ""


SHADOW_GATES = {
    "shadow_intent_agreement": {"min": 0.95, "on_inconclusive": "warn"},
    "shadow_entity_agreement": {"min": 0.95, "on_inconclusive": "warn"},
    # warn, so the release unit still runs and records its own decision of this failing gate
    "shadow_reply_similarity": {"min": 0.99, "on_inconclusive": "warn", "severity": "warn"},
    "shadow_abstain_rate_diff": {"max": 0.05, "on_inconclusive": "warn"},
    "shadow_escalation_rate_diff": {"max": 0.05, "on_inconclusive": "warn"},
    "shadow_latency_diff_ms": {"max": 100, "on_inconclusive": "warn"},
}


def _gates(bundle: str) -> dict[str, dict]:
    manifest = json.loads((Path(bundle).parent / "manifest.json").read_text())
    return manifest, {g["gate"]: g for g in manifest["gates"] if g["gate"].startswith("shadow_")}


def test_a_prompt_change_is_compared_with_the_promoted_champion(tiny_project, tmp_path):
    from bench.support.project import edit_manifest
    from release_assets.record.ledger import promote
    from release_assets.release.store import LocalReleaseStore
    from release_assets_tests.test_release_end_to_end import materializations, run_release

    edit_manifest(tiny_project, "helpdesk", lambda d: d["gates"]["chain"].update(SHADOW_GATES))
    store = tmp_path / "store"
    with dg.instance_for_test() as instance:
        first, summaries = run_release(tiny_project, store, instance, only=["helpdesk"])
        v1 = summaries["helpdesk"]
        assert v1.published_ok, v1.render()
        meta = materializations(first)["helpdesk/shadow_comparison"]
        assert meta["champion"] == "none yet"
        manifest, gates = _gates(v1.bundle)
        assert {g["status"] for g in gates.values()} == {"inconclusive"} and len(gates) == 6
        assert gates["shadow_intent_agreement"]["reason"] == "no champion to compare with"
        assert manifest["members"]["shadow_comparison"]["role"] == "evidence"

        promote(LocalReleaseStore(store), "helpdesk", v1.version, "alice", "first champion")
        clarify = tiny_project / "prompts" / "helpdesk" / "clarify.j2"
        clarify.write_text(clarify.read_text().replace("could you tell me a little more", "please describe"))
        second, summaries = run_release(tiny_project, store, instance, only=["helpdesk"])

    v2 = summaries["helpdesk"]
    assert v2.published_ok and v2.version != v1.version, v2.render()
    meta = materializations(second)["helpdesk/shadow_comparison"]
    assert meta["champion"] == v1.version
    # The same models: the same intents and entities; only the clarifying question reads differently.
    assert meta["shadow_intent_agreement"] == meta["shadow_entity_agreement"] == 1.0
    assert meta["shadow_abstain_rate_diff"] == meta["shadow_escalation_rate_diff"] == 0.0
    assert 0 < meta["shadow_reply_similarity"] < 0.99 and meta["pairs"] == 640
    assert (
        "please describe" in meta["disagreeing_pairs"]
        and "could you tell me a little more" in meta["disagreeing_pairs"]
    )
    check = next(e for e in second.get_asset_check_evaluations() if e.check_name == "shadow_reply_similarity_gate")
    assert not check.passed and "please describe" in check.metadata["disagreeing_pairs"].value
    # The release unit decided the shadow gates again, from the shadow comparison it bundled.
    manifest, gates = _gates(v2.bundle)
    assert gates["shadow_reply_similarity"]["status"] == "failed"
    assert gates["shadow_intent_agreement"]["status"] == "passed"
    assert f"against champion {v1.version}, 640 pairs" in gates["shadow_intent_agreement"]["reason"]
    assert manifest["members"]["shadow_comparison"]["role"] == "evidence"
