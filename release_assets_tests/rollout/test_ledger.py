import pytest

from release_assets.release.store import LocalReleaseStore
from release_assets.rollout.ledger import PromotionError, promote, record_published, replay, rollback

PASSED = [{"member": "m", "gate": "accuracy", "status": "passed", "severity": "block", "reason": "ok"}]


@pytest.fixture
def store(tmp_path):
    store = LocalReleaseStore(tmp_path)
    bundle = tmp_path / "b.tar.gz"
    bundle.write_bytes(b"x")
    for version, gates in (("v1", PASSED), ("v2", PASSED), ("v3", PASSED)):
        store.publish("r", version, bundle, {"version": version, "gates": gates})
        record_published(store, "r", version, actor="dagster", run_id="run")
    failing = [{**PASSED[0], "status": "failed", "reason": "accuracy = 0.5 violates the gate >= 0.9"}]
    store.publish("r", "bad", bundle, {"version": "bad", "gates": failing})
    return store


def test_promote_records_approval_then_promotion_with_who_and_why(store):
    promote(store, "r", "v1", "alice", "first release")
    events = store.events("r")[-2:]
    assert [e["action"] for e in events] == ["approved", "promoted"]
    assert all(e["actor"] == "alice" and e["reason"] == "first release" for e in events)
    assert events[-1]["from_version"] is None and events[-1]["to_version"] == "v1"
    assert replay(store.events("r")).champion == "v1"


def test_refusals_are_clear(store):
    with pytest.raises(PromotionError, match=r"r nope was never published \(published versions: bad, v1, v2, v3\)"):
        promote(store, "r", "nope", "alice", "why")
    with pytest.raises(PromotionError, match=r"did not pass all its gates: m\.accuracy: failed"):
        promote(store, "r", "bad", "alice", "why")
    with pytest.raises(PromotionError, match="needs both"):
        promote(store, "r", "v1", " ", "why")
    promote(store, "r", "v1", "alice", "go")
    with pytest.raises(PromotionError, match="already the champion"):
        promote(store, "r", "v1", "alice", "again")


def test_rollback_walks_back_the_champion_history(store):
    with pytest.raises(PromotionError, match="no champion"):
        rollback(store, "r", "bob", "oops")
    promote(store, "r", "v1", "alice", "one")
    with pytest.raises(PromotionError, match="first champion"):
        rollback(store, "r", "bob", "oops")
    promote(store, "r", "v2", "alice", "two")
    promote(store, "r", "v3", "alice", "three")
    event = rollback(store, "r", "bob", "error rate up")
    assert (event["from_version"], event["to_version"]) == ("v3", "v2")
    assert replay(store.events("r")).champion == "v2"
    rollback(store, "r", "bob", "still bad")
    assert replay(store.events("r")).champion == "v1"
    state = replay(store.events("r"))
    assert state.candidate == "v3" and state.published == {"v1", "v2", "v3"}
