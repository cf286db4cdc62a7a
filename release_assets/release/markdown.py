"""``release-assets release --summary markdown``: the gate table a pull request or a job summary shows.

One row per gate: the candidate's observed value beside the champion's (from the champion's published manifest),
their difference and the verdict. The rendering is pure; :func:`write_summary` only gathers the champion manifests
from the store and decides where the text goes (a file, ``$GITHUB_STEP_SUMMARY``, or standard output).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from release_assets.record.ledger import replay
from release_assets.release.summary import GateLine, ReleaseSummary

# Asset names end with the role a gate reads (keys.py); the member is what is left.
_ROLE_SUFFIXES = ("_split", "_report", "_evaluation")


def gate_name(check: str) -> str:
    return check.removesuffix("_gate")


def member_of(asset: str) -> str:
    for suffix in _ROLE_SUFFIXES:
        if asset.endswith(suffix):
            return asset.removesuffix(suffix)
    return asset


def observed_values(evaluations: Iterable[Any]) -> dict[tuple[str, str, str], float]:
    """(release, asset, check) -> the observed value recorded on each asset check evaluation (when it has one)."""
    out = {}
    for evaluation in evaluations:
        value = evaluation.metadata.get("observed")
        value = getattr(value, "value", value)
        if value is not None:
            path = evaluation.asset_key.path
            out[(path[0], "/".join(path[1:]), evaluation.check_name)] = float(value)
    return out


def champion_value(line: GateLine, champion_gates: list[dict[str, Any]]) -> float | None:
    """The champion's observed value for the same gate: matched by gate name, then by member when the name is
    shared (``accuracy`` of two models). Shadow gates read ``shadow_comparison``, not a member's asset, but their
    names are unique."""
    gate = gate_name(line.check)
    same = [g for g in champion_gates if g.get("gate") == gate]
    if len(same) > 1:
        same = [g for g in same if g.get("member") == member_of(line.asset)]
    return same[0].get("observed") if len(same) == 1 else None


def _number(value: float | None) -> str:
    return "–" if value is None else f"{value:.4g}"


def _difference(candidate: float | None, champion: float | None) -> str:
    if candidate is None or champion is None:
        return "–"
    diff = candidate - champion
    return "0" if diff == 0 else f"{diff:+.4g}"


def _verdict(line: GateLine) -> str:
    if line.passed:
        return "✅ pass"
    return "⚠️ warn" if line.severity == "WARN" else "❌ **fail**"


def _state(summary: ReleaseSummary) -> str:
    if summary.held_back:
        return "**held back**"
    if summary.version and not summary.failures:
        if summary.evaluated_only:
            return "**evaluated, not published**"
        return "published" if summary.published else "unchanged (already published)"
    return "**failed**"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(
    summaries: list[ReleaseSummary],
    observed: dict[tuple[str, str, str], float],
    champions: dict[str, tuple[str | None, list[dict[str, Any]]]],
) -> str:
    """GitHub-flavoured markdown: per release its state and champion, then one table row per gate.

    ``champions`` maps a release to (champion version or None, that version's manifest gates).
    """
    lines = ["## Release gates", ""]
    for s in summaries:
        champion, champion_gates = champions.get(s.release, (None, []))
        version = f"`{s.version}`" if s.version else "no version"
        against = f"champion `{champion}`" if champion else "no champion yet"
        passed = sum(g.passed for g in s.gates)
        lines.append(f"**{s.release}** {version}: {_state(s)}, {passed}/{len(s.gates)} gates passed, against {against}")
        lines.append("")
        lines.append("| release | metric | candidate | champion | difference | verdict |")
        lines.append("|---|---|--:|--:|--:|---|")
        for g in sorted(s.gates, key=lambda g: (member_of(g.asset), gate_name(g.check))):
            candidate = observed.get((s.release, g.asset, g.check))
            previous = champion_value(g, champion_gates) if champion else None
            metric = f"{member_of(g.asset)}.{gate_name(g.check)}"
            row = [s.release, metric, _number(candidate), _number(previous), _difference(candidate, previous)]
            lines.append("| " + " | ".join(_cell(c) for c in [*row, _verdict(g)]) + " |")
        # The reasons say why a gate did not pass; a passing gate's reason only repeats its row.
        lines += [""] + [f"- `{member_of(g.asset)}.{gate_name(g.check)}`: {g.reason}" for g in s.gates if not g.passed]
        if s.weakened_gates:  # judged against the default branch: what a reviewer must see before merging
            lines.append("- **WEAKENED** from the default branch (promotion would need `--override-weakened-gates`):")
            lines += [f"  - {_cell(w)}" for w in s.weakened_gates]
        lines += [f"- error: {_cell(f)}" for f in s.failures]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def github_outputs(summaries: list[ReleaseSummary]) -> str:
    """``<release>_version=<version>`` lines for ``$GITHUB_OUTPUT``: later jobs deploy exactly what was built."""
    # Only versions that are in the store: a build evaluated without publishing has nothing to deploy.
    return "".join(f"{s.release}_version={s.version}\n" for s in summaries if s.version and not s.evaluated_only)


def champion_manifests(store: Any, releases: list[str]) -> dict[str, tuple[str | None, list[dict[str, Any]]]]:
    """Each release's champion (replayed from the ledger) and its published manifest's gates."""

    out: dict[str, tuple[str | None, list[dict[str, Any]]]] = {}
    for release in releases:
        champion = replay(store.events(release)).champion
        manifest = (store.manifest(release, champion) or {}) if champion else {}
        out[release] = (champion, manifest.get("gates", []))
    return out


def write_summary(summaries: list[ReleaseSummary], evaluations: Iterable[Any], store: Any, path: str | None) -> None:
    """Write the table to ``path``, else append it to ``$GITHUB_STEP_SUMMARY`` (the job summary), else print it.
    In GitHub Actions (``$GITHUB_OUTPUT`` set) each release's version also becomes a step output."""
    text = render_markdown(
        summaries, observed_values(evaluations), champion_manifests(store, [s.release for s in summaries])
    )
    if path:
        Path(path).write_text(text, encoding="utf-8")
    elif os.environ.get("GITHUB_STEP_SUMMARY"):
        with open(os.environ["GITHUB_STEP_SUMMARY"], "a", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    if os.environ.get("GITHUB_OUTPUT"):
        with open(os.environ["GITHUB_OUTPUT"], "a", encoding="utf-8") as f:
            f.write(github_outputs(summaries))
