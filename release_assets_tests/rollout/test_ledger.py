import getpass
import json

import pytest

from bench.support.bundles import PASSED, publish_unit, unit_version
from release_assets.record.ledger import (
    LedgerError,
    PromotionError,
    event,
    promote,
    record_published,
    replay,
    rollback,
    verify_ledger,
)
from release_assets.release.store import LocalReleaseStore

V1, V2, V3, BAD = (unit_version("r", c) for c in ("one", "two", "three", "bad"))
FAILING = [{**PASSED[0], "status": "failed", "reason": "accuracy = 0.5 violates the gate >= 0.9"}]


@pytest.fixture
def store(tmp_path):
    store = LocalReleaseStore(tmp_path)
    for content in ("one", "two", "three"):
        record_published(store, "r", publish_unit(store, "r", content), actor="dagster", run_id="run")
    publish_unit(store, "r", "bad", FAILING)
    return store


def test_promote_records_approval_then_promotion_with_who_and_why(store):
    promote(store, "r", V1, "alice", "first release")
    events = store.events("r")[-2:]
    assert [e["action"] for e in events] == ["approved", "promoted"]
    assert all(e["actor"] == "alice" and e["reason"] == "first release" for e in events)
    assert events[-1]["from_version"] is None and events[-1]["to_version"] == V1
    assert replay(store.events("r")).champion == V1


def test_refusals_are_clear(store):
    known = ", ".join(sorted((V1, V2, V3, BAD)))
    with pytest.raises(PromotionError, match=rf"r 0{{16}} was never published \(published versions: {known}\)"):
        promote(store, "r", "0" * 16, "alice", "why")
    with pytest.raises(PromotionError, match="is not a release version"):
        promote(store, "r", "../../../tmp/x", "alice", "path tricks")
    with pytest.raises(PromotionError, match="is not a release name"):
        promote(store, "../r", V1, "alice", "path tricks")
    with pytest.raises(PromotionError, match=r"did not pass all its gates: m\.accuracy: failed"):
        promote(store, "r", BAD, "alice", "why")
    with pytest.raises(PromotionError, match="needs both"):
        promote(store, "r", V1, " ", "why")
    promote(store, "r", V1, "alice", "go")
    with pytest.raises(PromotionError, match="already the champion"):
        promote(store, "r", V1, "alice", "again")


def test_rollback_walks_back_the_champion_history(store):
    with pytest.raises(PromotionError, match="no champion"):
        rollback(store, "r", "bob", "oops")
    promote(store, "r", V1, "alice", "one")
    with pytest.raises(PromotionError, match="first champion"):
        rollback(store, "r", "bob", "oops")
    promote(store, "r", V2, "alice", "two")
    promote(store, "r", V3, "alice", "three")
    event = rollback(store, "r", "bob", "error rate up")
    assert (event["from_version"], event["to_version"]) == (V3, V2)
    assert replay(store.events("r")).champion == V2
    rollback(store, "r", "bob", "still bad")
    assert replay(store.events("r")).champion == V1
    state = replay(store.events("r"))
    assert state.candidate == V3 and state.published == {V1, V2, V3}


def test_concurrent_moves_from_the_same_state_apply_once(store):
    promote(store, "r", V1, "alice", "one")
    promote(store, "r", V2, "alice", "two")
    promote(store, "r", V3, "alice", "three")
    # Two rollbacks that both read champion V3 and both appended: only the first may move the champion.
    for actor in ("bob", "carol"):
        store.append_event("r", event("rolled_back", "r", actor=actor, reason="x", from_version=V3, to_version=V2))
    assert replay(store.events("r")).champion == V2


def test_every_event_records_who_ran_it(store, monkeypatch):
    monkeypatch.setenv("GITHUB_ACTOR", "ci-bot")
    written = promote(store, "r", V1, "alice", "first release")
    assert [(e["actor"], e["run_by"]) for e in written] == [("alice", "ci-bot"), ("alice", "ci-bot")]
    assert store.events("r")[-2:] == written  # what promote returns is what was stored, seq and prev included
    monkeypatch.delenv("GITHUB_ACTOR")
    e = event("approved", "r", actor="bob", reason="x", from_version=None, to_version=V1, run_by="forged")
    assert e["run_by"] == getpass.getuser()  # the process's identity, not a claim


def test_verify_ledger_counts_and_names_tampering(store):
    promote(store, "r", V1, "alice", "one")
    summary = verify_ledger(store, "r")
    assert {k: summary[k] for k in ("release", "events", "chained", "legacy")} == {
        "release": "r",
        "events": 5,
        "chained": 5,
        "legacy": 0,
    }
    assert summary["head"]["seq"] == 5
    path = store.root / "ledger" / "r.jsonl"
    lines = path.read_text().splitlines()
    lines[1] = lines[1].replace('"actor": "dagster"', '"actor": "mallory"')
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(LedgerError, match=r"r\.jsonl line 2: edited \(its hash does not match the `prev` of line 3\)"):
        verify_ledger(store, "r")
    with pytest.raises(LedgerError, match="line 2: edited"):  # every command replays through the verified read
        rollback(store, "r", "bob", "oops")
    with pytest.raises(LedgerError, match="line 2: edited"):
        record_published(store, "r", V2, actor="dagster", run_id="run")
    assert not issubclass(LedgerError, PromotionError) and not issubclass(PromotionError, LedgerError)


def test_a_legacy_unchained_ledger_still_replays_and_then_chains(tmp_path):
    store = LocalReleaseStore(tmp_path)
    for content in ("one", "two"):
        publish_unit(store, "r", content)
    old = [
        {"time": "2025-01-01T00:00:00", "action": "published", "release": "r", "actor": "dagster", "reason": "run a"}
        | {"from_version": None, "to_version": V1},
        {"time": "2025-01-02T00:00:00", "action": "promoted", "release": "r", "actor": "alice", "reason": "go"}
        | {"from_version": None, "to_version": V1},
    ]
    (tmp_path / "ledger").mkdir()
    (tmp_path / "ledger" / "r.jsonl").write_text("".join(json.dumps(e, sort_keys=True) + "\n" for e in old))
    assert replay(store.events("r")).champion == V1
    promote(store, "r", V2, "alice", "two")
    assert replay(store.events("r")).champion == V2
    summary = verify_ledger(store, "r")
    assert (summary["events"], summary["chained"], summary["legacy"], summary["head"]["seq"]) == (4, 2, 2, 4)


def _bundle(store, version):
    return store.root / "releases" / "r" / version / "bundle.tar.gz"


@pytest.mark.parametrize("damage", ["corrupt", "missing"])
def test_promotion_refuses_a_bundle_that_does_not_verify(store, damage):
    bundle = _bundle(store, V1)
    if damage == "corrupt":
        data = bytearray(bundle.read_bytes())
        data[len(data) // 2] ^= 0xFF
        bundle.write_bytes(bytes(data))
    else:
        bundle.unlink()
    with pytest.raises(
        PromotionError, match=rf"r {V1} cannot be promoted: its bundle does not verify: .*bundle\.tar\.gz"
    ):
        promote(store, "r", V1, "alice", "go")
    assert replay(store.events("r")).champion is None


def test_promotion_decides_from_the_bundle_not_from_an_edited_store_manifest(store):
    loose = store.root / "releases" / "r" / BAD / "manifest.json"
    edited = json.loads(loose.read_text())
    edited["gates"] = PASSED  # "the gates passed", says the copy beside the bundle
    loose.write_text(json.dumps(edited))
    with pytest.raises(PromotionError, match=r"differs from the bundle's own in gates \(m\.accuracy\)"):
        promote(store, "r", BAD, "alice", "trust me")
    assert replay(store.events("r")).champion is None


def test_rollback_refuses_a_target_whose_bundle_does_not_verify(store):
    promote(store, "r", V1, "alice", "one")
    promote(store, "r", V2, "alice", "two")
    _bundle(store, V1).write_bytes(b"not a bundle")
    with pytest.raises(PromotionError, match=rf"r {V1} cannot be rolled back to: its bundle does not verify"):
        rollback(store, "r", "bob", "error rate up")
    assert replay(store.events("r")).champion == V2


def test_weakened_gates_need_an_explicit_override_which_the_ledger_records(store):
    weakened = ["gates.m.accuracy.severity: block -> warn"]
    version = publish_unit(store, "r", "crippled", weakened_gates=weakened)
    with pytest.raises(PromotionError, match=r"weakened from the committed manifest \(gates\.m\.accuracy\.severity"):
        promote(store, "r", version, "alice", "looks fine")
    written = promote(store, "r", version, "alice", "hotfix, accepted risk", override_weakened_gates=True)
    assert all(e["override"] == {"weakened_gates": weakened} for e in written)
    assert replay(store.events("r")).champion == version


def test_deleting_the_head_record_and_the_last_event_is_detected(store):
    promote(store, "r", V1, "alice", "one")
    (store.root / "ledger" / "r.head.json").unlink()
    path = store.root / "ledger" / "r.jsonl"
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:-1]))
    with pytest.raises(LedgerError, match=r"r\.head\.json: missing, though the ledger holds 4 chained events"):
        verify_ledger(store, "r")


def test_a_promotion_that_loses_a_race_says_so(store, monkeypatch):
    promote(store, "r", V1, "alice", "one")
    real_append = store.append_event

    def racing_append(release, e):
        # Another promotion to V3 lands between this one's read of the ledger and its own events.
        if e["action"] == "approved" and e["to_version"] == V2:
            real_append(release, event("promoted", "r", actor="bob", reason="x", from_version=V1, to_version=V3))
        return real_append(release, e)

    monkeypatch.setattr(store, "append_event", racing_append)
    with pytest.raises(PromotionError, match=rf"r {V2} was not promoted: another promotion"):
        promote(store, "r", V2, "alice", "two")
    assert replay(store.events("r")).champion == V3
