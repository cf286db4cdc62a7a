"""Which gates a run loosened compared with the default branch's manifest, so a release built that way says so.

``--set iris:gates.classifier.accuracy.severity=warn`` (or an edit of ``releases/iris.yaml``, committed on a branch
or not) is a legitimate way to experiment, and a way around every gate. The release unit records each loosening in
its manifest and in the ledger, and promotion of such a release needs an explicit override with an approver and a
reason. The baseline is the manifest on the default branch (``git_base.py``: ``RELEASE_ASSETS_BASE_REF``, else
``origin/main``, else ``main``; the merge base with ``HEAD``), so a branch that commits a lower floor is flagged like
an uncommitted edit. Without such a branch it is git ``HEAD``; outside git, the file on disk (only ``--set`` edits
count then).

Tightening a gate is not recorded; changing a model's hyperparameters is not either (its gates still judge it).
Evaluation inputs are: a different golden suite, fewer behavioural cases or fewer repeats change what the gates
measure, so they count as loosening too. A golden suite is also compared by content with the default branch's
copy: cases removed or changed (by ``id``, else by content) are listed, so deleting the hard cases of the same
file is flagged, not only pointing ``golden`` at another file.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from release_assets.core.git_base import Baseline, baseline, configured_base_ref
from release_assets.manifest import ManifestError, PromptChain, ReleaseManifest, parse_manifest
from release_assets.manifest.paths import manifest_root

# Member fields that decide what a gate measures, not what is built (`metrics`: the function a model member's own
# metrics come from; naming one where there was none is not a loosening, it only adds metrics to gate).
EVALUATION_INPUTS = ("golden", "mft_cases", "repeats", "metrics")
_IDS_LISTED = 10


def manifest_baseline(manifest: ReleaseManifest, base_ref: str | None = None) -> Baseline:
    """The commit ``manifest``'s reviewed copy is read from (see the module doc); ``base_ref`` defaults to the
    setting. Raises ``git_base.BaseRefError`` when a configured base ref does not resolve."""
    if manifest.source is None:
        return Baseline(None, None, None)
    return baseline(Path(manifest.source).parent, base_ref or configured_base_ref())


def committed_manifest(manifest: ReleaseManifest, base: Baseline | None = None) -> tuple[ReleaseManifest | None, str]:
    """The manifest as reviewed (on the default branch), and where it was read from (for the record)."""
    source = manifest.source
    if source is None:
        return None, "none (the manifest has no file)"
    base = base or manifest_baseline(manifest)
    text, origin = base.read(Path(source)), f"git {base.ref}"
    if text is not None and base.commit is not None and base.ref != "HEAD":
        origin = f"git {base.ref} (merge base {base.commit[:12]})"
    if text is None and base.ref not in (None, "HEAD"):
        # Not on the default branch: a release this branch adds has no reviewed copy to be weaker than.
        head = Baseline(base.top, "HEAD", "HEAD").read(Path(source))
        text, origin = head, f"git HEAD (not on {base.ref} yet)"
    if text is None:
        text, origin = Path(source).read_text(encoding="utf-8"), "the file on disk (not tracked by git)"
    try:
        return parse_manifest(yaml.safe_load(text), f"{source} ({origin})"), origin
    except (ManifestError, yaml.YAMLError):
        # The baseline holds a manifest this code can no longer read (e.g. written for an older schema): the file
        # on disk is the nearest reviewed baseline.
        disk = Path(source).read_text(encoding="utf-8")
        return parse_manifest(yaml.safe_load(disk), str(source)), "the file on disk (the baseline's copy does not load)"


def weakened_against_base(
    manifest: ReleaseManifest, project_root: Path, base_ref: str | None = None
) -> tuple[list[str], str]:
    """Every way ``manifest`` (as this run uses it, ``--set`` included) judges more leniently than the default
    branch's: its gates and evaluation inputs, and the content of its golden suites. Returns the lines and where
    the baseline came from."""

    base = manifest_baseline(manifest, base_ref)
    committed, origin = committed_manifest(manifest, base)
    out = weakened_gates(committed, manifest)
    if committed is not None:
        out += golden_weakened(committed, manifest, base, manifest_root(manifest, project_root))
    return out, origin


def golden_weakened(committed: ReleaseManifest, effective: ReleaseManifest, base: Baseline, root: Path) -> list[str]:
    """Golden suites with cases removed or changed since the baseline: the baseline's file (the committed
    manifest's ``golden``, read at the baseline commit) against the file this build evaluates (on disk). Added
    cases are not weakening; a file the baseline does not have has nothing to compare with."""
    out = []
    for name, member in sorted(committed.members.items()):
        now = effective.members.get(name)
        if not isinstance(member, PromptChain) or not isinstance(now, PromptChain):
            continue  # only a chain has a golden suite
        before = base.read(root / member.golden)
        here_path = root / now.golden
        if before is None or not here_path.is_file():
            continue
        here = here_path.read_text(encoding="utf-8", errors="replace")
        if hashlib.sha256(before.encode()).digest() == hashlib.sha256(here.encode()).digest():
            continue
        line = _golden_difference(now.golden, before, here, base.ref or "the baseline")
        if line:
            out.append(line)
    return out


def _cases(text: str) -> list[tuple[str, str]]:
    """(id, canonical content) per case: the case's ``id`` when it has one, else a digest of its content."""
    out = []
    for raw in text.splitlines():
        if not raw.strip():
            continue
        try:
            case = json.loads(raw)
            content = json.dumps(case, sort_keys=True, ensure_ascii=False)
        except json.JSONDecodeError:
            case, content = None, raw.strip()
        key = case.get("id") if isinstance(case, dict) else None
        out.append(
            (str(key) if key is not None else f"sha256:{hashlib.sha256(content.encode()).hexdigest()[:12]}", content)
        )
    return out


def _golden_difference(path: str, before: str, here: str, base_name: str) -> str | None:
    old, new = _cases(before), _cases(here)
    lost = Counter(old) - Counter(new)  # (id, content) pairs the baseline has and this build does not
    if not lost:
        return None  # only cases added
    remaining = {key for key, _ in new}
    changed = sorted({key for key, _ in lost if key in remaining})
    removed = sorted({key for key, _ in lost if key not in remaining})
    parts = [f"{len(ids)} {what} ({_listed(ids)})" for what, ids in (("removed", removed), ("changed", changed)) if ids]
    return f"golden suite {path}: {len(old)} cases on {base_name}, {len(new)} here: {', '.join(parts)}"


def _listed(ids: list[str]) -> str:
    shown = ", ".join(ids[:_IDS_LISTED])
    return shown + (f" and {len(ids) - _IDS_LISTED} more" if len(ids) > _IDS_LISTED else "")


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
    for name, spec in sorted(committed.members.items()):
        current = effective.members.get(name)
        for field in EVALUATION_INPUTS:
            if not hasattr(spec, field):
                continue
            before = getattr(spec, field)
            after = getattr(current, field, None) if current is not None else None
            if before is not None and before != after:
                out.append(f"members.{name}.{field}: {_short(before)} -> {_short(after)}")
    return out


def _short(value: Any) -> str:
    if isinstance(value, list):
        return f"{len(value)} cases"
    return str(value)
