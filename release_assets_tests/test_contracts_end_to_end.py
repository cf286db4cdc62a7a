"""The contract gate end to end: an intent model retrained without a label the chain answers is held by the chain's
contract check, before the chain's golden suite runs."""

from __future__ import annotations

import json

import dagster as dg

from release_assets_tests.test_release_end_to_end import materializations, run_release


def test_a_model_that_stops_emitting_a_label_the_chain_answers_is_held_before_evaluation(tiny_project, tmp_path):
    messages = tiny_project / "data" / "support" / "messages.jsonl"
    rows = [json.loads(line) for line in messages.read_text().splitlines() if line.strip()]
    kept = [r for r in rows if r["intent"] != "refund" and r.get("secondary_intent") != "refund"]
    assert len(kept) < len(rows)
    messages.write_text("".join(json.dumps(r) + "\n" for r in kept))
    store = tmp_path / "store"
    with dg.instance_for_test() as instance:
        result, summaries = run_release(tiny_project, store, instance, only=["helpdesk"])
    summary = summaries["helpdesk"]
    [contract] = [g for g in summary.gates if g.check == "contract_gate"]
    assert not contract.passed, summary.render()
    assert "chain step classify_intent expects label 'refund'" in contract.reason
    assert "(generate_response answers it with responses/refund.j2); intent_model does not emit it" in contract.reason
    built = materializations(result)
    assert "helpdesk/chain" in built  # the chain built: its contract is what holds it
    assert not any(key.startswith("helpdesk/chain_evaluation") for key in built), sorted(built)
    assert not summary.published_ok
    assert not (store / "releases" / "helpdesk").exists()
