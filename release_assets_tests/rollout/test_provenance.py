"""Promotion refuses a build made from a dirty working tree or from a commit off the default branch unless an
override is recorded in the ledger (the same override as weakened gates); the git facts are lineage, outside the
version."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from release_assets.cli import main as cli
from release_assets.core.settings import get_settings
from release_assets.record.ledger import PromotionError, promote
from release_assets.release.store import LocalReleaseStore
from release_assets_tests.gitrepo import git as _git


def _version(out: str) -> str:
    return next(line.split()[-1] for line in out.splitlines() if line.strip().startswith("version:"))


def test_a_dirty_tree_build_is_refused_without_an_override_and_the_override_is_recorded(cli_env, tmp_path, capsys):
    project = cli_env
    _git(project, "init", "-q", "-b", "main")
    _git(project, "add", ".")
    _git(project, "commit", "-qm", "main")
    (project / "notes.txt").write_text("an uncommitted file\n")

    assert cli.main(["release", "iris"]) == 0
    version = _version(capsys.readouterr().out)
    store = LocalReleaseStore(tmp_path / "store")
    git = store.manifest("iris", version)["lineage"]["git"]
    assert git["commit"] == _git(project, "rev-parse", "HEAD") and git["branch"] == "main"
    assert git["dirty"] is True and git["uncommitted"] == {"count": 1, "paths": ["notes.txt"]}
    assert git["base_ref"] == "main" and git["on_default_branch"] is True

    assert cli.main(["list", "iris"]) == 0
    assert "DIRTY tree" in capsys.readouterr().out
    assert cli.main(["promote", "iris", version, "--approved-by", "alice", "--reason", "ship"]) == 1
    err = capsys.readouterr().err
    assert "built from a working tree with uncommitted changes" in err and "notes.txt" in err, err
    assert "--override-weakened-gates" in err
    assert [e["action"] for e in store.events("iris")] == ["published"]

    promote_over = ["--approved-by", "alice", "--reason", "hotfix from my laptop", "--override-weakened-gates"]
    assert cli.main(["promote", "iris", version, *promote_over]) == 0
    capsys.readouterr()
    promoted = store.events("iris")[-1]
    assert promoted["action"] == "promoted" and promoted["actor"] == "alice"
    assert promoted["override"]["weakened_gates"] == []
    assert promoted["override"]["provenance"] == [
        f"built from a working tree with uncommitted changes (commit {git['commit'][:12]}: notes.txt)"
    ]
    assert cli.main(["history", "iris"]) == 0
    assert "OVERRIDE of provenance: built from a working tree with uncommitted changes" in capsys.readouterr().out

    # The git facts are lineage, outside the version: the same inputs from a clean tree are the same version.
    (project / "notes.txt").unlink()
    assert cli.main(["release", "iris", "--force"]) == 0
    out = capsys.readouterr().out
    assert _version(out) == version and "unchanged (already published, nothing new)" in out


def _published(store: LocalReleaseStore, tmp_path: Path, git: dict | None) -> str:
    """A minimal published version whose lineage records ``git`` (the store's own bundle and manifest)."""
    from release_assets.artifacts import LocalArtifactStore
    from release_assets.release.unit import release
    from release_assets_tests.release.test_unit import _manifest, _refs

    cache = LocalArtifactStore(tmp_path / "cache")
    manifest = _manifest(0.9)
    refs, by_key = _refs(cache, manifest, accuracy=0.95)
    unit = release(manifest, refs, by_key, cache=cache, releases=store, lineage={"git": git}, run_id="r")
    return unit.version


def test_a_build_off_the_default_branch_is_refused_without_an_override(tmp_path):
    from release_assets.core.git_base import provenance, provenance_problems

    root = tmp_path / "repo"
    root.mkdir()
    (root / "a.txt").write_text("a\n")
    _git(root, "init", "-q", "-b", "main")
    _git(root, "add", ".")
    _git(root, "commit", "-qm", "main")
    _git(root, "checkout", "-q", "-b", "feature")
    (root / "a.txt").write_text("b\n")
    _git(root, "commit", "-qam", "on a branch")
    git = provenance(root)
    assert (git["branch"], git["base_ref"], git["dirty"], git["on_default_branch"]) == ("feature", "main", False, False)

    store = LocalReleaseStore(tmp_path / "store")
    version = _published(store, tmp_path, git)
    with pytest.raises(PromotionError, match=r"\(feature\), which is not on the default branch main"):
        promote(store, "tiny", version, "alice", "ship it")
    promote(store, "tiny", version, "alice", "demo from a branch", override_weakened_gates=True)
    assert store.events("tiny")[-1]["override"]["provenance"] == provenance_problems(git)

    # Merged: the same commit is on main now, and a build from it is not off the branch.
    _git(root, "checkout", "-q", "main")
    _git(root, "merge", "-q", "feature")
    assert provenance(root)["on_default_branch"] is True


def test_unknown_provenance_passes_by_default_and_is_refused_when_required(tmp_path, monkeypatch):
    from release_assets.core.git_base import provenance, provenance_problems

    outside = provenance(tmp_path)  # not a git checkout
    assert outside["commit"] is None and outside["unavailable"] == "not a git checkout"
    assert provenance_problems(outside) == []
    store = LocalReleaseStore(tmp_path / "store")
    version = _published(store, tmp_path, outside)
    monkeypatch.setenv("RELEASE_ASSETS_REQUIRE_GIT_PROVENANCE", "true")
    get_settings.cache_clear()
    try:
        with pytest.raises(PromotionError, match=r"built without git provenance \(not a git checkout\)"):
            promote(store, "tiny", version, "alice", "ship it")
        promote(store, "tiny", version, "alice", "built in a container", override_weakened_gates=True)
    finally:
        get_settings.cache_clear()
    assert json.dumps(store.events("tiny")[-1]["override"]).count("without git provenance") == 1


def test_builds_recorded_before_provenance_existed_are_judged_on_what_they_recorded():
    from release_assets.core.git_base import provenance_problems

    assert provenance_problems({"commit": "abc", "dirty": False}) == []
    assert provenance_problems({"commit": "abc", "dirty": True})[0].startswith("built from a working tree")
    assert provenance_problems(None) == []


def test_the_tools_own_state_folders_do_not_make_a_tree_dirty(tmp_path):
    from release_assets.core.git_base import provenance

    root = tmp_path / "repo"
    root.mkdir()
    (root / "a.txt").write_text("a\n")
    _git(root, "init", "-q", "-b", "main")
    _git(root, "add", ".")
    _git(root, "commit", "-qm", "main")
    for state in (".release_store", ".dagster", ".mlflow"):  # a project whose .gitignore does not list them
        (root / state).mkdir()
        (root / state / "x").write_text("x\n")
    assert provenance(root)["dirty"] is False
    (root / "a.txt").write_text("edited\n")
    assert provenance(root)["uncommitted"] == {"count": 1, "paths": ["a.txt"]}
