"""Weakened gates are judged against the default branch, not HEAD: a branch that commits a lower floor, or deletes
the hard cases of its golden suite, is flagged like an uncommitted edit (in a tiny git repository with a main and a
feature branch)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from release_assets import keys
from release_assets.artifacts import LocalArtifactStore
from release_assets.manifest import load_manifest
from release_assets.release.store import LocalReleaseStore
from release_assets.release.unit import release
from release_assets_tests.gitrepo import git as _git

CASES = 40
MANIFEST = {
    "name": "tiny",
    "members": {
        "data": {"kind": "sklearn_dataset", "name": "iris", "split": {"test": 0.3}},
        "clf": {"kind": "tabular_classifier", "data": "data"},
        "chain": {"kind": "prompt_chain", "path": "prompts/tiny", "uses": [], "golden": "data/golden/tiny.jsonl"},
    },
    "gates": {"clf": {"accuracy": {"min": 0.9}}},
}


def _case(i: int, hard: bool = False) -> str:
    return json.dumps({"id": f"c{i:02d}", "message": f"question {i}", "expected": {"intent": "hard" if hard else "x"}})


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """main: the manifest (accuracy >= 0.9) and a golden suite of 40 cases, the last 9 of them hard."""
    root = tmp_path / "repo"
    (root / "releases").mkdir(parents=True)
    (root / "data" / "golden").mkdir(parents=True)
    (root / "prompts" / "tiny").mkdir(parents=True)
    (root / "releases" / "tiny.yaml").write_text(yaml.safe_dump(MANIFEST, sort_keys=False))
    lines = [_case(i, hard=i > CASES - 9) for i in range(1, CASES + 1)]
    (root / "data" / "golden" / "tiny.jsonl").write_text("\n".join(lines) + "\n")
    _git(root, "init", "-q", "-b", "main")
    _git(root, "add", ".")
    _git(root, "commit", "-qm", "main")
    return root


def _feature_branch(root: Path) -> None:
    """A branch that commits a lower floor and deletes the 9 hard golden cases: a clean tree, HEAD has both."""
    _git(root, "checkout", "-q", "-b", "feature")
    path = root / "releases" / "tiny.yaml"
    path.write_text(path.read_text().replace("min: 0.9", "min: 0.5"))
    golden = root / "data" / "golden" / "tiny.jsonl"
    golden.write_text("".join(golden.read_text().splitlines(keepends=True)[: CASES - 9]))
    _git(root, "commit", "-qam", "easier")
    assert _git(root, "status", "--porcelain") == ""


def _release(root: Path, tmp_path: Path):
    """The release unit's decision, as the asset makes it, for the manifest in ``root``."""
    manifest = load_manifest(root / "releases" / "tiny.yaml")
    cache, releases = LocalArtifactStore(tmp_path / "store"), LocalReleaseStore(tmp_path / "store")
    refs = {}
    for name in keys.bundled(manifest):

        def build(out, name=name):
            (out / "content.json").write_text(json.dumps({"member": name}))
            return {"metrics": {"accuracy": 0.95}} if name == "clf_report" else {}

        kind = "tabular_classifier" if name == "clf" else "x"
        refs[name], _ = cache.build(release="tiny", member=name, kind=kind, fingerprint=f"{name}-1", builder=build)
    by_key = {tuple(key): refs[name] for name, key in keys.bundled(manifest).items()}
    return release(manifest, refs, by_key, cache=cache, releases=releases, lineage={}, run_id="r1")


def test_a_branch_that_commits_a_lower_floor_and_deletes_hard_golden_cases_is_weakened_against_main(
    repo, tmp_path, monkeypatch
):
    from release_assets.core.settings import get_settings

    _feature_branch(repo)
    monkeypatch.setenv("RELEASE_ASSETS_PROJECT_ROOT", str(repo))
    monkeypatch.delenv("RELEASE_ASSETS_BASE_REF", raising=False)
    get_settings.cache_clear()
    try:
        unit = _release(repo, tmp_path)
    finally:
        get_settings.cache_clear()
    hard = ", ".join(f"c{i:02d}" for i in range(CASES - 8, CASES + 1))
    assert unit.weakened_gates == [
        "gates.clf.accuracy.min: 0.9 -> 0.5",
        f"golden suite data/golden/tiny.jsonl: 40 cases on main, 31 here: 9 removed ({hard})",
    ]
    assert unit.manifest["lineage"]["committed_manifest"].startswith("git main (merge base ")
    # The ledger's published event carries them, so promotion needs the override.
    assert unit.manifest["weakened_gates"] == unit.weakened_gates


def test_on_main_itself_the_committed_files_are_the_baseline(repo):
    from release_assets.promotion.weakened import weakened_against_base

    weakened, origin = weakened_against_base(load_manifest(repo / "releases" / "tiny.yaml"), repo)
    assert weakened == [] and origin.startswith("git main")
    # An uncommitted edit on main still counts (the baseline is the commit, not the working tree).
    path = repo / "releases" / "tiny.yaml"
    path.write_text(path.read_text().replace("min: 0.9", "min: 0.8"))
    weakened, _ = weakened_against_base(load_manifest(path), repo)
    assert weakened == ["gates.clf.accuracy.min: 0.9 -> 0.8"]


def test_the_base_ref_is_configurable_and_one_that_does_not_resolve_is_an_error(repo):
    from release_assets.core.git_base import BaseRefError
    from release_assets.promotion.weakened import weakened_against_base

    _feature_branch(repo)
    manifest = load_manifest(repo / "releases" / "tiny.yaml")
    # Judged against the branch itself: nothing is weaker than it.
    assert weakened_against_base(manifest, repo, base_ref="feature")[0] == []
    # origin/<name> is tried too: a CI checkout has only the remote branch.
    _git(repo, "update-ref", "refs/remotes/origin/release-1", "main")
    weakened, origin = weakened_against_base(manifest, repo, base_ref="release-1")
    assert "gates.clf.accuracy.min: 0.9 -> 0.5" in weakened and origin.startswith("git origin/release-1")
    with pytest.raises(BaseRefError, match="RELEASE_ASSETS_BASE_REF=nope: no such ref"):
        weakened_against_base(manifest, repo, base_ref="nope")


def test_origin_main_is_preferred_to_a_stale_local_main(repo):
    from release_assets.core.git_base import baseline
    from release_assets.promotion.weakened import weakened_against_base

    _git(repo, "branch", "-q", "old", "HEAD")
    path = repo / "releases" / "tiny.yaml"
    path.write_text(path.read_text().replace("min: 0.9", "min: 0.95"))  # main moves on: a stricter floor
    _git(repo, "commit", "-qam", "stricter")
    _git(repo, "update-ref", "refs/remotes/origin/main", "HEAD")
    _git(repo, "update-ref", "refs/heads/main", "old")  # the local main is behind
    _git(repo, "checkout", "-q", "-b", "feature", "origin/main")
    path.write_text(path.read_text().replace("min: 0.95", "min: 0.9"))
    assert baseline(repo).ref == "origin/main"
    assert weakened_against_base(load_manifest(path), repo)[0] == ["gates.clf.accuracy.min: 0.95 -> 0.9"]


def test_golden_cases_changed_are_weakening_added_ones_are_not_and_cases_without_ids_match_by_content():
    from release_assets.promotion.weakened import _golden_difference

    before = "\n".join(_case(i) for i in range(1, 4)) + "\n"
    added = before + _case(4) + "\n"
    assert _golden_difference("g.jsonl", before, added, "main") is None
    edited = before.replace('"question 2"', '"an easier question 2"')
    assert _golden_difference("g.jsonl", before, edited, "main") == (
        "golden suite g.jsonl: 3 cases on main, 3 here: 1 changed (c02)"
    )
    plain = '{"message": "a"}\n{"message": "b"}\n'
    line = _golden_difference("g.jsonl", plain, '{"message": "a"}\n', "main")
    assert line.startswith("golden suite g.jsonl: 2 cases on main, 1 here: 1 removed (sha256:")


def test_a_release_this_branch_adds_has_nothing_to_be_weaker_than(repo):
    from release_assets.promotion.weakened import weakened_against_base

    _git(repo, "checkout", "-q", "-b", "feature")
    new = repo / "releases" / "other.yaml"
    new.write_text(yaml.safe_dump({**MANIFEST, "name": "other"}, sort_keys=False))
    weakened, origin = weakened_against_base(load_manifest(new), repo)
    assert weakened == [] and "file on disk" in origin


def test_a_base_ref_that_does_not_resolve_stops_a_release_before_any_work(cli_env, monkeypatch, capsys):
    from release_assets.cli import main as cli
    from release_assets.core.settings import get_settings

    monkeypatch.setenv("RELEASE_ASSETS_BASE_REF", "main")  # the copied project is not a git checkout
    get_settings.cache_clear()
    assert cli.main(["release", "iris"]) == 2
    err = capsys.readouterr().err
    assert "FAILED: RELEASE_ASSETS_BASE_REF=main: no such ref" in err and "not a git checkout" in err
