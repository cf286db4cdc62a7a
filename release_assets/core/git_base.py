"""The default branch a build is judged against, and the git facts a release unit records about its build.

Two controls read git. The weakened-gate check compares a build's gates and golden suites with those of the
default branch (``RELEASE_ASSETS_BASE_REF``, else ``origin/main``, else ``main``), not with ``HEAD``: a branch that
commits a lower floor is as weakened as an uncommitted edit. Promotion refuses a build made from a working tree
with uncommitted changes, or from a commit that is not on the default branch, unless an override is recorded; so
every release unit records where it was built (:func:`provenance`, in ``lineage.git``, outside the version).

The baseline is the merge base of ``HEAD`` and the base ref: on a pull request's merge commit that is the base's
tip; on a branch that forked earlier it is the fork point, so what the branch changed is judged, not what the base
changed since.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from release_assets.core.settings import get_settings

DEFAULT_BASES = ("origin/main", "main")
# The tool's own state under a project root: written by every run, never an input, so never "uncommitted changes"
# (a dg project whose .gitignore does not list them would otherwise be dirty after its first run).
STATE_FOLDERS = (".release_store", ".dagster", ".mlflow")
_LISTED = 10  # uncommitted paths recorded in the lineage (the count is always recorded)


class BaseRefError(ValueError):
    """``RELEASE_ASSETS_BASE_REF`` names a ref that does not resolve: judging against anything else would hide what
    it was set to catch."""


class GitUnavailable(Exception):
    """Not a git checkout, git missing, or a git command failed."""


def git(cwd: Path, *args: str, strip: bool = True) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        raise GitUnavailable(str(exc)) from None
    return done.stdout.strip() if strip else done.stdout


def configured_base_ref() -> str | None:
    """``RELEASE_ASSETS_BASE_REF``; empty (e.g. ``${{ github.base_ref }}`` on a push) counts as unset."""

    return (get_settings().base_ref or "").strip() or None


def _commit_of(cwd: Path, ref: str) -> str | None:
    try:
        return git(cwd, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    except GitUnavailable:
        return None


def _work_tree(cwd: Path) -> Path | None:
    """The checkout ``cwd`` is in, or None: not in one, or in a folder that checkout ignores (a project copied
    into an ignored folder of another repository is not described by that repository's commits)."""
    try:
        top = Path(git(cwd, "rev-parse", "--show-toplevel"))
    except GitUnavailable:
        return None
    try:
        git(cwd, "check-ignore", "-q", str(cwd))
        return None  # ignored: exit 0
    except GitUnavailable:
        return top


def resolve_base(cwd: Path, configured: str | None = None) -> str | None:
    """The base ref to judge against in the checkout at ``cwd``: ``configured`` (also tried as ``origin/<name>``,
    since a CI checkout has only the remote branch), else the first of :data:`DEFAULT_BASES` that exists; None
    when nothing was configured and none exists. A configured ref that does not resolve raises
    :class:`BaseRefError` naming it."""
    checkout = _work_tree(cwd) is not None
    if configured:
        found = next((r for r in (configured, f"origin/{configured}") if checkout and _commit_of(cwd, r)), None)
        if found:
            return found
        why = f"neither {configured} nor origin/{configured} resolves" if checkout else "not a git checkout"
        raise BaseRefError(
            f"RELEASE_ASSETS_BASE_REF={configured}: no such ref in {cwd} ({why}); fetch it "
            f"(`git fetch origin {configured}`), or unset it to judge against {' or '.join(DEFAULT_BASES)}"
        )
    if not checkout:
        return None
    return next((ref for ref in DEFAULT_BASES if _commit_of(cwd, ref)), None)


@dataclass(frozen=True)
class Baseline:
    """Where the reviewed copy of a file is read from: a commit of the base ref (``ref``), ``HEAD`` when there is
    no base ref, or nothing (no git: the caller uses the file on disk)."""

    top: Path | None  # the checkout's top folder
    commit: str | None
    ref: str | None  # "origin/main", "main", "HEAD"; None without git

    def read(self, path: Path) -> str | None:
        """``path`` (inside the checkout) as it is in the baseline commit; None when it is not there."""
        if self.commit is None or self.top is None:
            return None
        try:
            relative = Path(path).resolve().relative_to(self.top.resolve()).as_posix()
            return git(self.top, "show", f"{self.commit}:{relative}", strip=False)
        except (ValueError, GitUnavailable):
            return None


def baseline(cwd: Path, configured: str | None = None) -> Baseline:
    """The commit weakened gates are judged against: the merge base of ``HEAD`` and the base ref (the base's tip
    in a shallow clone, where there is no history to find it), else ``HEAD`` when no base ref exists."""
    ref = resolve_base(cwd, configured)
    top = _work_tree(cwd)
    if top is None:
        return Baseline(None, None, None)
    if ref is None:
        head = _commit_of(cwd, "HEAD")
        return Baseline(top, head, "HEAD" if head else None)
    commit: str | None
    try:
        commit = git(cwd, "merge-base", "HEAD", ref)
    except GitUnavailable:
        commit = _commit_of(cwd, ref)
    return Baseline(top, commit, ref)


def provenance(project_root: Path, configured: str | None = None) -> dict[str, Any]:
    """What the release unit records about its build (``lineage.git``, outside the version digest): the commit, a
    dirty flag with the uncommitted paths, the branch, and whether the commit is on the default branch now.

    Outside a git checkout every field is None and ``unavailable`` says why: unknown, not clean. A configured base
    ref that does not resolve raises :class:`BaseRefError` (the weakened-gate check raises it too, first)."""
    unknown: dict[str, Any] = {
        "commit": None,
        "dirty": None,
        "branch": None,
        "base_ref": None,
        "on_default_branch": None,
    }
    top = _work_tree(project_root)
    if top is None:
        return {**unknown, "unavailable": "not a git checkout"}
    try:
        commit = git(project_root, "rev-parse", "HEAD")
        # Porcelain paths are relative to the checkout's top, whatever the working directory.
        state = tuple(_relative(project_root / name, top) + "/" for name in STATE_FOLDERS)
        status = [
            path
            for path in (
                line[3:]
                for line in git(project_root, "status", "--porcelain", strip=False).splitlines()
                if line.strip()
            )
            if not path.strip('"').startswith(state)
        ]
    except GitUnavailable as exc:
        return {**unknown, "unavailable": f"git failed: {exc}"}
    try:
        branch = git(project_root, "symbolic-ref", "--short", "-q", "HEAD") or None
    except GitUnavailable:
        branch = None  # detached (a CI checkout of a commit or a pull request's merge commit)
    ref = resolve_base(project_root, configured)
    on_default: bool | None = None
    base_commit = _commit_of(project_root, ref) if ref else None
    if base_commit:
        try:
            git(project_root, "merge-base", "--is-ancestor", commit, base_commit)
            on_default = True
        except GitUnavailable:
            on_default = False
    return {
        "commit": commit,
        "dirty": bool(status),
        "uncommitted": {"count": len(status), "paths": status[:_LISTED]},
        "branch": branch,
        "base_ref": ref,
        "base_commit": base_commit,
        "on_default_branch": on_default,
    }


def _relative(path: Path, top: Path) -> str:
    try:
        return path.resolve().relative_to(top.resolve()).as_posix()
    except ValueError:
        return str(path)


def provenance_problems(git_info: dict[str, Any] | None, require_known: bool = False) -> list[str]:
    """Why a build with this ``lineage.git`` must not be promoted without an override: uncommitted changes, a commit
    off the default branch, and (only with ``require_known``) a build whose git facts are unknown."""
    info = git_info or {}
    commit = (info.get("commit") or "")[:12]
    out = []
    if info.get("dirty"):
        changed = info.get("uncommitted") or {}
        paths = ", ".join(changed.get("paths") or [])
        more = (changed.get("count") or 0) - len(changed.get("paths") or [])
        listed = f": {paths}{f' and {more} more' if more > 0 else ''}" if paths else ""
        out.append(f"built from a working tree with uncommitted changes (commit {commit}{listed})")
    if info.get("on_default_branch") is False:
        branch = info.get("branch") or "detached HEAD"
        out.append(f"built from commit {commit} ({branch}), which is not on the default branch {info.get('base_ref')}")
    if require_known:
        if not info.get("commit"):
            out.append(f"built without git provenance ({info.get('unavailable') or 'none recorded'})")
        elif info.get("dirty") is None or info.get("on_default_branch") is None:
            missing = "no default branch to check it against" if info.get("dirty") is not None else "not recorded"
            out.append(f"built from commit {commit} whose place on the default branch is unknown ({missing})")
    return out
