"""Which gates a run loosened compared with the committed manifest, so a release built that way says so.

``--set iris:gates.classifier.accuracy.severity=warn`` (or an uncommitted edit of ``releases/iris.yaml``) is a
legitimate way to experiment, and a way around every gate. The release unit records each loosening in its
manifest and in the ledger, and promotion of such a release needs an explicit override with an approver and a
reason. The committed manifest is the file at git ``HEAD`` when the project is a git checkout that tracks it,
else the file on disk (a project without git: only ``--set`` edits count).

Tightening a gate is not recorded; changing a model's hyperparameters is not either (its gates still judge it).
Evaluation inputs are: a different golden suite, fewer behavioural cases or fewer repeats change what the gates
measure, so they count as loosening too.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from release_assets.manifest import ManifestError, ReleaseManifest, parse_manifest

# Member fields that decide what a gate measures, not what is built.
EVALUATION_INPUTS = ("golden", "mft_cases", "repeats")


def committed_manifest(manifest: ReleaseManifest) -> tuple[ReleaseManifest | None, str]:
    """The manifest as committed, and where it was read from (for the record)."""
    source = manifest.source
    if source is None:
        return None, "none (the manifest has no file)"
    text, origin = _git_head_text(Path(source)), "git HEAD"
    if text is None:
        text, origin = Path(source).read_text(encoding="utf-8"), "the file on disk (not tracked by git)"
    try:
        return parse_manifest(yaml.safe_load(text), f"{source} ({origin})"), origin
    except (ManifestError, yaml.YAMLError):
        # HEAD holds a manifest this code can no longer read (e.g. written for an older schema): the file on disk
        # is the nearest reviewed baseline.
        disk = Path(source).read_text(encoding="utf-8")
        return parse_manifest(yaml.safe_load(disk), str(source)), "the file on disk (HEAD's copy does not load)"


def _git_head_text(path: Path) -> str | None:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=path.parent, capture_output=True, text=True, timeout=10, check=True
        ).stdout

    try:
        relative = git("ls-files", "--full-name", "--error-unmatch", path.name).strip()
        return git("show", f"HEAD:{relative}")
    except (OSError, subprocess.SubprocessError):
        return None


def _bound_loosened(op: str, before: float | None, after: float | None) -> bool:
    if before is None:
        return False
    if after is None:
        return True
    return after < before if op == "min" else after > before


def _gate_changes(member: str, gate: str, before: dict[str, Any], after: dict[str, Any] | None) -> list[str]:
    where = f"gates.{member}.{gate}"
    if after is None:
        return [f"{where}: removed"]
    out = []
    for op in ("min", "max"):
        if _bound_loosened(op, before.get(op), after.get(op)):
            out.append(f"{where}.{op}: {before.get(op)} -> {after.get(op)}")
    for field, strict in (("severity", "block"), ("on_inconclusive", "hold")):
        if before.get(field, strict) == strict and after.get(field, strict) != strict:
            out.append(f"{where}.{field}: {strict} -> {after.get(field)}")
    if before.get("params", {}) != after.get("params", {}):
        out.append(f"{where}.params: {before.get('params', {})} -> {after.get('params', {})}")
    return out


def weakened_gates(committed: ReleaseManifest | None, effective: ReleaseManifest) -> list[str]:
    """Each way ``effective`` judges more leniently than ``committed``, as ``gates.<member>.<gate>...`` lines."""
    if committed is None:
        return []
    out = []
    for member, gates in sorted(committed.gates.items()):
        now = effective.gates.get(member, {})
        for gate, threshold in sorted(gates.items()):
            after = now.get(gate)
            out += _gate_changes(member, gate, threshold.model_dump(), after.model_dump() if after else None)
    for name, member in sorted(committed.members.items()):
        current = effective.members.get(name)
        for field in EVALUATION_INPUTS:
            if not hasattr(member, field):
                continue
            before = getattr(member, field)
            after = getattr(current, field, None) if current is not None else None
            if before != after:
                out.append(f"members.{name}.{field}: {_short(before)} -> {_short(after)}")
    return out


def _short(value: Any) -> str:
    if isinstance(value, list):
        return f"{len(value)} cases"
    return str(value)
