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


def _inputs(tmp_path, champion, write_split=True) -> MemberInputs:
    split = tmp_path / "split"
    split.mkdir()
    (split / "profile.json").write_text(json.dumps({"rows": 1}))
    if write_split:
        for side in ("train", "test"):
            (split / f"{side}.jsonl").write_text(json.dumps({"id": side, "features": [1.0], "label": "a"}) + "\n")
    ref = ArtifactRef(release="r", member="d_split", kind="split", fingerprint="f", location="split", files={})
    return MemberInputs(refs={"split": ref, "raw": ref}, store_root=tmp_path, champion=champion)


def test_unreadable_champion_profile_fails_instead_of_passing_as_no_champion(tmp_path):
    (tmp_path / "champion").mkdir()
    verdicts = {
        v.gate: v for v in member_verdicts(MANIFEST, "d", _inputs(tmp_path, BrokenChampion(tmp_path / "champion")))
    }
    drift = verdicts["drift"]
    assert drift.status == "failed" and drift.holds_release
    assert "cannot evaluate drift" in drift.reason and "profile.json" in drift.reason


def test_missing_test_split_fails_leakage_naming_the_file(tmp_path):
    verdicts = {v.gate: v for v in member_verdicts(MANIFEST, "d", _inputs(tmp_path, None, write_split=False))}
    assert verdicts["leakage"].status == "failed"
    assert "train.jsonl is missing or empty" in verdicts["leakage"].reason
