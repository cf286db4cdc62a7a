"""Every gate of a member, decided from what its assets produced: one function for checks and release unit.

Plain metric gates (accuracy, format_valid, p95_ms, ...) compare a number from the member's summary with the
manifest threshold. The catalogue gates below need data: rows for duplicates and leakage, the split for label
coverage, the champion's reference profile for drift, the champion's model on the candidate's test split for
regression. Both the blocking check and the release unit call :func:`member_verdicts`, so the release unit decides
again with the same code rather than trusting a check that may not have run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from release_assets.artifacts import ArtifactRef
from release_assets.manifest import DATASET_KINDS, MODEL_KINDS, ReleaseManifest, Threshold
from release_assets.promotion.policy import Verdict, threshold_verdict

SPLIT_GATES = {"leakage", "label_coverage", "drift"}


@dataclass
class MemberInputs:
    """What a member's gates read: its assets' references and where their files are."""

    refs: dict[str, ArtifactRef]  # by role: raw, split, model, report, evaluation
    store_root: Path
    champion: Any = None  # a ChampionView, or None when there is no release store to ask
    cache: dict[str, Any] = field(default_factory=dict)

    def dir(self, role: str) -> Path:
        return self.refs[role].path(self.store_root)

    def rows(self, side: str) -> list[dict[str, Any]]:
        from release_assets.datasets.build import read_jsonl

        key = f"rows:{side}"
        if key not in self.cache:
            path = self.dir("split" if side != "raw" else "raw") / ("rows.jsonl" if side == "raw" else f"{side}.jsonl")
            self.cache[key] = read_jsonl(path) if path.exists() else []
        return self.cache[key]


def gate_role(kind: str, gate: str) -> str:
    """Which of a member's assets a gate reads, and so which asset its check is attached to."""
    if kind in DATASET_KINDS:
        return "split" if gate in SPLIT_GATES else "raw"
    if kind in MODEL_KINDS:
        return "report"
    return "evaluation"


def _duplicates(member: str, inputs: MemberInputs, t: Threshold) -> Verdict:
    from release_assets.datasets.quality import duplicates_verdict

    return duplicates_verdict(member, inputs.rows("raw"), int(t.max or 0))


def _require_sides(inputs: MemberInputs) -> None:
    for side in ("train", "test"):
        if not inputs.rows(side):
            raise FileNotFoundError(f"{inputs.dir('split') / f'{side}.jsonl'} is missing or empty")


def _leakage(member: str, inputs: MemberInputs, t: Threshold) -> Verdict:
    from release_assets.datasets.quality import leakage_verdict

    _require_sides(inputs)
    return leakage_verdict(member, inputs.rows("train"), inputs.rows("test"), int(t.max or 0))


def _label_coverage(member: str, inputs: MemberInputs, t: Threshold) -> Verdict:
    from release_assets.datasets.quality import label_coverage_verdict

    _require_sides(inputs)
    splits = {side: inputs.rows(side) for side in ("train", "val", "test") if inputs.rows(side)}
    labels = sorted({r["label"] for rows in splits.values() for r in rows})
    return label_coverage_verdict(member, splits, int(t.min or 1), labels)


def _drift(member: str, inputs: MemberInputs, t: Threshold) -> Verdict:
    import json

    from release_assets.promotion.drift import drift_verdict

    current = json.loads((inputs.dir("split") / "profile.json").read_text())
    reference = None
    if inputs.champion is not None and inputs.champion.version is not None:
        champion_dir = inputs.champion.member_dir(f"{member}_split")
        if champion_dir is None:
            raise FileNotFoundError(f"champion {inputs.champion.version} has no member {member}_split")
        reference = json.loads((champion_dir / "profile.json").read_text())  # missing: an error, which holds
    return drift_verdict(member, reference, current, t.params)


def _slice_gap(member: str, inputs: MemberInputs, t: Threshold) -> Verdict:
    from release_assets.promotion.slices import slice_gap_verdict

    summary = inputs.refs["report"].summary
    return slice_gap_verdict(
        member, summary["metrics"].get("accuracy"), summary["slices"], float(t.max), int(t.params.get("min_n", 10))
    )


def _regression(member: str, inputs: MemberInputs, t: Threshold) -> Verdict:
    import json

    from release_assets.promotion.stats import regression_verdict

    tolerance = -float(t.min or 0.0)
    model = inputs.refs["model"]
    champion = inputs.champion.member(member) if inputs.champion else None
    if champion is None:
        return regression_verdict(member, {}, None, {}, tolerance, model.digest, None)
    if champion["digest"] == model.digest:
        # The same model bytes as the champion (e.g. a prompt-only change): nothing to compare, nothing regressed.
        return Verdict(
            member,
            "regression",
            "passed",
            f"identical to champion {inputs.champion.version} (same model digest)",
            None,
            {"min": t.min, "max": None},
            champion=None,
        )
    from release_assets.models.registry import MODEL_KINDS as TRAINERS
    from release_assets.models.registry import predict_labels

    test = inputs.rows("test")
    champion_predictor = TRAINERS[model.kind].load(inputs.champion.member_dir(member))
    champion_labels, _ = predict_labels(champion_predictor, test)
    report = json.loads((inputs.dir("report") / "report.json").read_text())
    return regression_verdict(
        member,
        report["predictions"],
        {r["id"]: label for r, label in zip(test, champion_labels, strict=True)},
        {r["id"]: r["label"] for r in test},
        tolerance,
        candidate_id=model.digest,
        champion_id=champion["digest"],
        seed=int(t.params.get("seed", 0)),
    )


CATALOGUE: dict[str, Callable[[str, MemberInputs, Threshold], Verdict]] = {
    "duplicates": _duplicates,
    "leakage": _leakage,
    "label_coverage": _label_coverage,
    "drift": _drift,
    "slice_gap": _slice_gap,
    "regression": _regression,
}


def _summary_for(kind: str, gate: str, inputs: MemberInputs) -> dict[str, Any]:
    return inputs.refs[gate_role(kind, gate)].summary


def latency_context(metrics: dict[str, Any]) -> str:
    """How a latency figure was measured, so a held release shows whether the machine was busy at the time."""
    if not metrics.get("latency_load_corrected"):
        return " (least-disturbed of repeated rounds; no scheduler statistics on this machine)"
    share = metrics.get("cpu_wait_share")
    wall = metrics.get("wall_p95_ms")
    if share is None or wall is None:
        return ""
    return f" (service time, CPU queueing excluded; wall clock p95 {wall:.4g} ms, {share:.0%} of it waiting for a CPU)"


def _data_file(spec: Any, summary: dict[str, Any]) -> str:
    """The file a raw summary was read from, spelled as in the manifest (relative to the project) when it is that
    file: the summary holds the absolute path of whichever checkout built it."""
    source = str(summary.get("source", ""))
    path = getattr(spec, "path", None)
    if path and Path(source).parts[-len(Path(path).parts) :] == Path(path).parts:
        return path
    return source


def _explain_invalid_rows(spec: Any, verdict: Verdict, summary: dict[str, Any]) -> Verdict:
    from release_assets.datasets.quality import invalid_rows_detail

    text, table = invalid_rows_detail(_data_file(spec, summary), summary.get("examples", []), int(verdict.observed))
    if not text:
        return verdict
    # These rows replace the raw examples (which lack the file) as the check's `worst_examples` table, the one
    # the UI and the CLI's readers already look at for a failed gate.
    return replace(verdict, reason=f"{verdict.reason}: {text}", examples=table)


FORMAT_ERRORS_IN_REASON = 2
_FORMAT_MESSAGE = 160


def _explain_format_valid(spec: Any, verdict: Verdict, summary: dict[str, Any]) -> Verdict:
    """The most common format errors, counted by the golden evaluation: a handful of distinct messages (one broken
    template fails every case it renders) explain most invalid cases. A summary written before they were counted
    has no `format_errors`, and its reason stays as it was."""
    from release_assets.datasets.quality import clip

    errors = summary.get("format_errors") or []
    if not errors:
        return verdict
    common = [
        f"{e['step']}: {clip(e['message'], _FORMAT_MESSAGE)} ×{e['count']}" for e in errors[:FORMAT_ERRORS_IN_REASON]
    ]
    more = "; ..." if len(errors) > FORMAT_ERRORS_IN_REASON else ""
    # `_table` puts these rows in their own check metadata table next to the worst cases (checks.check_result).
    table = [
        {"step": e["step"], "message": e["message"], "count": e["count"], "_table": "format_errors"} for e in errors
    ]
    return replace(
        verdict,
        reason=f"{verdict.reason} (most common: {'; '.join(common)}{more})",
        examples=[*verdict.examples, *table],
    )


# Metric gates whose failing reason names what failed, not only how much (by gate name, so any member kind).
EXPLAINED: dict[str, Callable[[Any, Verdict, dict[str, Any]], Verdict]] = {
    "invalid_rows": _explain_invalid_rows,
    "format_valid": _explain_format_valid,
}


def member_verdicts(manifest: ReleaseManifest, member: str, inputs: MemberInputs) -> list[Verdict]:
    kind = manifest.members[member].kind
    out = []
    for gate, t in sorted(manifest.gates.get(member, {}).items()):
        if gate in CATALOGUE:
            try:
                verdict = CATALOGUE[gate](member, inputs, t)
                verdict = replace(verdict, gate=gate, severity=t.severity, on_inconclusive=t.on_inconclusive)
            except Exception as exc:
                # Only "there is no champion yet" may pass with a warning; an input that cannot be read is a
                # reason to hold, whatever `on_inconclusive` says.
                reason = f"cannot evaluate {gate} for {member}: {type(exc).__name__}: {exc}"
                verdict = Verdict(member, gate, "failed", reason, None, {"min": t.min, "max": t.max}, t.severity)
        else:
            summary = _summary_for(kind, gate, inputs)
            metrics = summary.get("metrics", {})
            verdict = threshold_verdict(member, gate, metrics.get(gate), t)
            # How it was measured matters when the gate fails or the machine was busy; a quiet pass stays short.
            busy = (metrics.get("cpu_wait_share") or 0) >= 0.1
            if gate.endswith("_ms") and verdict.observed is not None and (busy or verdict.status != "passed"):
                verdict = replace(verdict, reason=verdict.reason + latency_context(metrics))
            if verdict.status != "passed":
                verdict = replace(verdict, examples=summary.get("examples", []))
            if verdict.status == "failed" and gate in EXPLAINED:
                verdict = EXPLAINED[gate](manifest.members[member], verdict, summary)
        out.append(verdict)
    return out


def member_roles(manifest: ReleaseManifest, member: str) -> dict[str, list[str]]:
    """Role -> asset key of every asset a member's gates read."""
    from release_assets import keys

    kind, name = manifest.members[member].kind, manifest.name
    if kind in DATASET_KINDS:
        return {"raw": keys.raw(name, member), "split": keys.split(name, member)}
    if kind in MODEL_KINDS:
        data = manifest.members[member].data
        return {"model": keys.model(name, member), "report": keys.report(name, member), "split": keys.split(name, data)}
    return {"evaluation": keys.chain_evaluation(name, member)}


def consistency_verdicts(refs_by_key: dict[str, ArtifactRef]) -> list[Verdict]:
    """Every bundled artifact must have been built from the very upstream artifacts bundled with it.

    Each asset keeps only its latest materialization, so after a partial run (a model retrained, its report not)
    or two overlapping runs, the latest report may describe another model than the latest model. Gates read from
    such a report would judge the wrong model; the release is held until the stale asset is rematerialized.
    """
    out = []
    for key, ref in sorted(refs_by_key.items()):
        for upstream, digest in sorted(ref.upstream.items()):
            current = refs_by_key.get(upstream)
            if current is not None and current.digest != digest:
                reason = (
                    f"{key} was built from {upstream} {digest[:12]}, but the release would bundle {upstream} "
                    f"{current.digest[:12]}: rematerialize {key}"
                )
                out.append(Verdict(ref.member, "consistency", "failed", reason, None, {}))
    return out
