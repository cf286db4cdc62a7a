"""An input a gate cannot read holds the release, even where the manifest lets "no champion" pass."""

import json

from release_assets.artifacts import ArtifactRef
from release_assets.manifest import parse_manifest
from release_assets.promotion.gates import MemberInputs, member_verdicts

MANIFEST = parse_manifest(
    {
        "name": "r",
        "members": {"d": {"kind": "sklearn_dataset", "name": "iris", "split": {"test": 0.3}}},
        "gates": {"d": {"drift": {"max": 0, "on_inconclusive": "warn"}, "leakage": {"max": 0}}},
    },
    "r.yaml",
)


class BrokenChampion:
    version = "a" * 16

    def __init__(self, folder):
        self.folder = folder

    def member_dir(self, name):
        return self.folder  # exists, but holds no profile.json


def _inputs(tmp_path, champion, write_split=True, raw_summary=None) -> MemberInputs:
    split = tmp_path / "split"
    split.mkdir()
    (split / "profile.json").write_text(json.dumps({"rows": 1}))
    if write_split:
        for side in ("train", "test"):
            (split / f"{side}.jsonl").write_text(json.dumps({"id": side, "features": [1.0], "label": "a"}) + "\n")
    ref = ArtifactRef(release="r", member="d_split", kind="split", fingerprint="f", location="split", files={})
    raw = ref.model_copy(update={"summary": raw_summary or {}})
    return MemberInputs(refs={"split": ref, "raw": raw}, store_root=tmp_path, champion=champion)


def test_unreadable_champion_profile_fails_instead_of_passing_as_no_champion(tmp_path):
    (tmp_path / "champion").mkdir()
    verdicts = {
        v.gate: v for v in member_verdicts(MANIFEST, "d", _inputs(tmp_path, BrokenChampion(tmp_path / "champion")))
    }
    drift = verdicts["drift"]
    assert drift.status == "failed" and drift.holds_release
    assert "cannot evaluate drift" in drift.reason and "profile.json" in drift.reason


def test_an_empty_split_fails_leakage_naming_the_source_file(tmp_path):
    # Every row of the user's file broke the schema: the reason names that file, not the build cache's split.
    summary = {"source": "/p/data/support/messages.jsonl", "metrics": {"rows": 0, "invalid_rows": 12}}
    inputs = _inputs(tmp_path, None, write_split=False, raw_summary=summary)
    verdicts = {v.gate: v for v in member_verdicts(MANIFEST, "d", inputs)}
    assert verdicts["leakage"].status == "failed"
    reason = verdicts["leakage"].reason
    assert "the train split is empty: /p/data/support/messages.jsonl has 0 valid rows, 12 invalid" in reason
    assert str(tmp_path) not in reason
