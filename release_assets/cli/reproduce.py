"""``release-assets reproduce RELEASE VERSION``: rebuild a published version from the commit it records, in a
clean git worktree and a scratch store, and compare every member's digest with the published unit's.

The rebuild runs in a child process (``release-assets release RELEASE --force``) whose project is the worktree:
the commit's manifests, prompts, data and the project's own code (first on PYTHONPATH), with this environment's
installed packages (the lock's digest at the commit is printed beside the one this checkout has). Nothing is
written to the configured store or build cache; the worktree and scratch store are removed afterwards (``--keep``
leaves them, for a look at what differs). Exit 0 when every member that defines the version matched, 1 otherwise
(and for a unit built from a dirty tree, which no commit holds).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from release_assets.cli.common import OK, REFUSED, print_json, release_store

REBUILD_TIMEOUT_S = 3600


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def _sha256(path: Path) -> str | None:
    from release_assets.core.hashing import sha256_file

    return sha256_file(path) if path.is_file() else None


def _rebuild_env(project: Path, top: Path, scratch: Path) -> dict[str, str]:
    """The child's environment: this one's, with every RELEASE_ASSETS_* setting dropped except the base ref, and
    the project, store, MLflow and Dagster instance in the scratch folder; nothing is signed."""
    keep = {"RELEASE_ASSETS_BASE_REF"}
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELEASE_ASSETS_") or k in keep}
    paths = [str(project)]
    if (top / "release_assets" / "__init__.py").is_file():  # the project is this pipeline: its code at the commit
        paths.append(str(top))
    env.update(
        PYTHONPATH=os.pathsep.join([*paths, *filter(None, [os.environ.get("PYTHONPATH")])]),
        RELEASE_ASSETS_PROJECT_ROOT=str(project),
        RELEASE_ASSETS_STORE_BACKEND="local",
        RELEASE_ASSETS_STORE_ROOT=str(scratch / "store"),
        RELEASE_ASSETS_MLFLOW_TRACKING_URI=f"sqlite:///{scratch / 'mlflow.db'}",
        RELEASE_ASSETS_MLFLOW_ARTIFACT_ROOT=str(scratch / "mlartifacts"),
        DAGSTER_HOME=str(scratch / "dagster"),
    )
    (scratch / "dagster").mkdir(parents=True, exist_ok=True)
    return env


def _sources(project: Path, release: str) -> dict[str, str]:
    """Member -> the file or folder its manifest entry reads (``path:``), from the commit's releases/RELEASE.yaml."""
    import yaml

    path = project / "releases" / f"{release}.yaml"
    try:
        members = (yaml.safe_load(path.read_text()) or {}).get("members") or {}
    except (OSError, yaml.YAMLError):
        return {}
    return {name: str(m["path"]) for name, m in members.items() if isinstance(m, dict) and m.get("path")}


def rebuild(release: str, manifest: dict[str, Any], scratch: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Rebuild ``release`` at the commit ``manifest`` records, in a worktree under ``scratch``; the rebuilt unit's
    manifest and facts about the rebuild (commit, lock digests, data sources, seconds)."""
    from release_assets.api import UsageError
    from release_assets.core.settings import get_settings

    git = (manifest.get("lineage") or {}).get("git") or {}
    commit = git.get("commit")
    if not commit:
        why = git.get("unavailable") or "no commit recorded"
        raise UsageError(f"{release} {manifest['version']} cannot be reproduced: it records no git commit ({why})")
    project_root = get_settings().project_root
    top = Path(_git(project_root, "rev-parse", "--show-toplevel"))
    inside = project_root.resolve().relative_to(top.resolve())
    tree = scratch / "src"
    _git(top, "worktree", "add", "--detach", str(tree), commit)
    try:
        project = tree / inside
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "release_assets.cli.main", "release", release, "--force", "--quiet"],
            cwd=project,
            env=_rebuild_env(project, tree, scratch),
            capture_output=True,
            text=True,
            timeout=REBUILD_TIMEOUT_S,
        )
        seconds = time.perf_counter() - started
        pointer = scratch / "store" / "releases" / release / "latest.json"
        if done.returncode != 0 or not pointer.is_file():
            tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
            raise RuntimeError(
                f"the rebuild of {release} at {commit[:12]} did not publish (exit {done.returncode}):\n{tail}"
            )
        version = json.loads(pointer.read_text())["version"]
        rebuilt = json.loads((pointer.parent / version / "manifest.json").read_text())
        facts = {
            "commit": commit,
            "seconds": round(seconds, 1),
            "lock_at_commit": _sha256(tree / "requirements.lock"),
            "lock_here": _sha256(top / "requirements.lock"),
            "sources": _sources(project, release),
        }
        return rebuilt, facts
    finally:
        _git(top, "worktree", "remove", "--force", str(tree))


def cmd_reproduce(args: argparse.Namespace) -> int:
    from release_assets.evaluation.report import plain_table
    from release_assets.provenance.reproduce import causes as cause_lines
    from release_assets.provenance.reproduce import compare
    from release_assets.record.verified import verified_manifest

    manifest = verified_manifest(release_store(), args.release, args.version)
    git = (manifest.get("lineage") or {}).get("git") or {}
    scratch = Path(tempfile.mkdtemp(prefix=f"reproduce-{args.release}-"))
    try:
        rebuilt, facts = rebuild(args.release, manifest, scratch)
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    rows = compare(manifest, rebuilt)
    causes = cause_lines(rows, facts["sources"])
    dirty = bool(git.get("dirty"))
    failed = [r for r in rows if r.fails]
    ok = not failed and not dirty and rebuilt["version"] == args.version
    if args.json:
        payload = {
            "release": args.release,
            "version": args.version,
            "rebuilt_version": rebuilt["version"],
            "reproduced": ok,
            "dirty": dirty,
            **facts,
            "members": [{**r.__dict__, "status": r.status} for r in rows],
            "causes": causes,
        }
        return print_json(payload, OK if ok else REFUSED, "; ".join(causes) or ("dirty tree" if dirty else ""))
    at = f"rebuilt at {facts['commit'][:12]} in {facts['seconds']} s"
    print(f"{args.release} {args.version}: {at} -> {rebuilt['version']}")
    if facts["lock_at_commit"] != facts["lock_here"]:
        print(
            f"note: requirements.lock at the commit ({(facts['lock_at_commit'] or 'none')[:16]}) is not this "
            f"checkout's ({(facts['lock_here'] or 'none')[:16]}): the rebuild used this environment's packages"
        )
    print(
        plain_table(["member", "role", "published", "rebuilt", "status", "files that differ"], [r.row() for r in rows])
    )
    if dirty:
        paths = ", ".join((git.get("uncommitted") or {}).get("paths") or [])
        print(
            f"NOT REPRODUCIBLE EXACTLY: built from a dirty tree (uncommitted: {paths or 'unknown'}); no commit holds it"
        )
    for line in causes:
        print(f"cause: {line}")
    if ok:
        print(f"REPRODUCED: every member that defines {args.version} matched bit for bit")
    elif failed:
        print(f"NOT REPRODUCED: {len(failed)} of {sum(r.role == 'artifact' for r in rows)} artifact members differ")
    return OK if ok else REFUSED


def add_parser(sub) -> None:
    p = sub.add_parser("reproduce", help="rebuild a published version from its recorded commit and compare members")
    p.add_argument("release")
    p.add_argument("version")
    p.add_argument("--keep", action="store_true", help="keep the scratch folder (worktree removed, store kept)")
    p.add_argument("--json", action="store_true", help="the comparison as one JSON object")
    p.set_defaults(fn=cmd_reproduce)
