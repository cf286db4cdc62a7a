"""The shadow_report asset: live pairs from serve's shadow log, judged by the manifest's shadow gates, shown as
checks and recorded in the ledger (the evidence a canary start can require)."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from bench.support.bundles import publish_unit
from release_assets import keys
from release_assets.manifest import load_manifest
from release_assets.record.ledger import promote, record_published
from release_assets.release.store import LocalReleaseStore
from release_assets.resources.artifact_store import ArtifactStore
from release_assets.rollout.shadow_assets import ShadowReportConfig, shadow_report_asset
from release_assets.serving.flags import flag_document, flags_path, store_flags_dir, write_flags
from release_assets.serving.shadow import compare
from release_assets.serving.shadow_log import ShadowLog
from release_assets_tests.conftest import REPO

OP = "helpdesk__shadow_report"


@pytest.fixture
def store(tmp_path):
    """A release store whose helpdesk champion is v1, and a published candidate v2."""
    store = LocalReleaseStore(tmp_path / "store")
    versions = {}
    for name in ("v1", "v2"):
        versions[name] = publish_unit(store, "helpdesk", f"content {name}")
        record_published(store, "helpdesk", versions[name], actor="dagster", run_id="run")
    promote(store, "helpdesk", versions["v1"], "alice", "first champion")
    return store, versions


def answer(intent="refund", reply="Your refund is on its way", ms=3.0):
    return {"intent": intent, "entities": {}, "reply": reply, "abstained": False, "escalate": False,
            "latency_ms": {"total": ms}}  # fmt: skip


def log_pairs(store: LocalReleaseStore, versions: dict, n: int, candidate=None, primary: str = "v1") -> None:
    candidate = candidate or (lambda i: answer())
    log = ShadowLog(store.root / "shadow")
    for i in range(n):
        pair = compare(answer(), candidate(i))
        log.append(
            {
                "release": "helpdesk",
                "request_id": f"r{i}",
                "message": f"refund for order {i}",
                "primary_version": versions[primary],
                "shadow_version": versions["v2"],
                **pair,
                "shadow_error": None,
            }
        )
    log.close()


def materialize(store: LocalReleaseStore, version: str | None):
    asset = shadow_report_asset(load_manifest(REPO / "releases" / "helpdesk.yaml"))
    return dg.materialize(
        [asset],
        resources={"store": ArtifactStore(root=str(store.root))},
        run_config=dg.RunConfig({OP: ShadowReportConfig(version=version)}),
        raise_on_error=False,
    )


def last_event(store: LocalReleaseStore) -> dict:
    return store.events("helpdesk")[-1]


def test_agreeing_live_pairs_pass_and_the_ledger_records_it(store):
    store, versions = store
    log_pairs(store, versions, 40)
    result = materialize(store, versions["v2"])
    assert result.success
    event = last_event(store)
    assert (event["action"], event["to_version"], event["from_version"]) == (
        "shadow_reported",
        versions["v2"],
        versions["v1"],
    )
    assert event["passed"] is True and event["pairs"] == 40
    assert event["metrics"]["shadow_intent_agreement"] == 1.0
    assert {v["gate"] for v in event["verdicts"]} >= {"shadow_intent_agreement", "shadow_latency_diff_ms"}
    checks = result.get_asset_check_evaluations()
    assert len(checks) == 6 and all(c.passed for c in checks)
    [mat] = result.asset_materializations_for_node(OP)
    assert mat.asset_key == dg.AssetKey(keys.shadow_report("helpdesk"))
    assert mat.metadata["passed"].value is True and mat.metadata["shadow_reply_similarity"].value == 1.0


def test_disagreeing_live_pairs_fail_with_the_pairs_in_the_check(store):
    store, versions = store
    log_pairs(store, versions, 40, candidate=lambda i: answer("cancel_order", "Your order is cancelled"))
    result = materialize(store, versions["v2"])
    assert result.success  # a failed report is a result, recorded; not a failed run
    event = last_event(store)
    assert event["passed"] is False and "shadow_intent_agreement: failed" in event["reason"]
    failed = {c.check_name: c for c in result.get_asset_check_evaluations() if not c.passed}
    assert "shadow_intent_agreement_gate" in failed
    table = failed["shadow_intent_agreement_gate"].metadata["disagreeing_pairs"].value
    assert "cancel_order" in table and "refund for order" in table


def test_too_few_pairs_or_pairs_against_another_version_never_pass(store):
    store, versions = store
    log_pairs(store, versions, 10)
    log_pairs(store, versions, 40, primary="v2")  # answered by a canary, not the champion: not counted
    result = materialize(store, versions["v2"])
    assert result.success
    event = last_event(store)
    assert event["passed"] is False and event["pairs"] == 10
    statuses = {c.metadata["status"].value for c in result.get_asset_check_evaluations()}
    assert statuses == {"inconclusive"}
    [mat] = result.asset_materializations_for_node(OP)
    assert mat.metadata["pairs_other_primary"].value == 40


def test_the_version_defaults_to_the_flag_files_shadow_and_is_refused_without_one(store):
    store, versions = store
    result = materialize(store, None)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "no shadow version: set config `version`" in failure.step_failure_data.error.message
    write_flags(
        flags_path(store_flags_dir(store), "helpdesk"),
        flag_document("helpdesk", versions["v1"], shadow=versions["v2"], shadow_percent=10),
    )
    log_pairs(store, versions, 30)
    assert materialize(store, None).success
    assert last_event(store)["to_version"] == versions["v2"] and last_event(store)["passed"] is True


def test_a_flag_file_serve_would_refuse_is_refused_naming_the_file_and_field(store):
    store, versions = store
    path = flags_path(store_flags_dir(store), "helpdesk")
    document = flag_document("helpdesk", versions["v1"], shadow=versions["v2"], shadow_percent=10)
    document["flags"]["helpdesk.shadow"]["variants"]["on"] = "f" * 16  # never published
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document))
    result = materialize(store, None)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = failure.step_failure_data.error.message
    assert f"{path}: helpdesk.shadow.variants.on: {'f' * 16} is not a published version" in message, message


def test_the_report_is_outside_the_release_stages():
    asset = shadow_report_asset(load_manifest(REPO / "releases" / "helpdesk.yaml"))
    key = dg.AssetKey(keys.shadow_report("helpdesk"))
    assert asset.group_names_by_key[key] == keys.rollout_group("helpdesk")
    assert not asset.dependency_keys  # reads live files, so no release run or code-change run pulls it in
    assert {c.name for c in asset.check_specs} == {
        f"{g}_gate"
        for g in (
            "shadow_intent_agreement",
            "shadow_entity_agreement",
            "shadow_reply_similarity",
            "shadow_abstain_rate_diff",
            "shadow_escalation_rate_diff",
            "shadow_latency_diff_ms",
        )
    }
