"""Promotion gates as blocking asset checks, one check per gate the manifest declares.

Each check is attached to the asset whose output it reads (raw rows, split, model report, chain evaluation) and
asks :func:`release_assets.promotion.gates.member_verdicts` for the verdict: the same function the release unit
calls before publishing. A failing check's metadata shows the reason, threshold, observed and champion values,
a markdown table of the worst examples, and plots (``plot_<name>``): the drifted features' distributions, champion
against candidate, for a failed drift gate; the worst slices against the overall accuracy for a failed slice gap;
the model report's confusion matrix, recall per class, curves or residuals for a failed metric gate.
"""

import json
import logging
from collections.abc import Iterator
from typing import Any

import dagster as dg

from release_assets.artifacts import ArtifactRef
from release_assets.evaluation.regression_triage import explain_held
from release_assets.evaluation.report import examples_markdown
from release_assets.manifest import ReleaseManifest
from release_assets.plots import gates as gate_plots
from release_assets.plots import model as model_plots
from release_assets.plots import render
from release_assets.plots.render import Plot
from release_assets.promotion.gates import MemberInputs, gate_role, member_roles, member_verdicts, producer_roles
from release_assets.promotion.policy import Verdict, bounds_text
from release_assets.record.champion import ChampionView

log = logging.getLogger(__name__)


def check_name(gate: str) -> str:
    return f"{gate}_gate"


def _profiles(member: str, inputs: MemberInputs) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The champion's reference profile and this build's, as the drift gate compared them (catalogue.drift)."""
    champion = inputs.champion
    if champion is None or champion.version is None or "split" not in inputs.refs:
        return None
    folder = champion.member_dir(f"{member}_split")
    if folder is None:
        return None
    current = json.loads((inputs.dir("split") / "profile.json").read_text())
    return json.loads((folder / "profile.json").read_text()), current


def _report_plots(verdict: Verdict, inputs: MemberInputs | None) -> list[Plot]:
    """The model report's own plots that explain a failed metric gate (``plots.model.EXPLAINS``), as the report
    drew them: a failed accuracy gate shows which classes the model confuses. Bytes read, nothing drawn, so a
    model's report and its failed check always show the same picture (none for a report built without matplotlib)."""
    wanted = model_plots.EXPLAINS.get(verdict.gate, ())
    if not wanted or inputs is None or "report" not in inputs.refs:
        return []
    drawn = {p.name: p for p in render.read(inputs.dir("report"), model_plots.TITLES)}
    return [drawn[name] for name in wanted if name in drawn]


def verdict_plots(verdict: Verdict, inputs: MemberInputs | None = None) -> list[Plot]:
    """The plots a failed gate shows: the drifted features or the worst slices, drawn from the data the gate read;
    for a model's metric gate, its report's plots that explain the metric. None for the other gates, for a gate
    that did not fail, or without matplotlib. Never raises: a plot that cannot be drawn leaves the verdict as it
    is."""
    if verdict.status != "failed":
        return []
    try:
        if verdict.gate in model_plots.EXPLAINS:
            return _report_plots(verdict, inputs)
        if verdict.gate == "slice_gap" and verdict.examples and verdict.threshold.get("max") is not None:
            worst = verdict.examples[0]
            overall = float(worst["accuracy"]) + float(worst["gap"])
            plot = gate_plots.slice_gap(verdict.examples, overall, float(verdict.threshold["max"] or 0.0))
            return [plot] if plot else []
        if verdict.gate == "drift" and inputs is not None:
            profiles = _profiles(verdict.member, inputs)
            if profiles is None:
                return []
            drifted = [row for row in verdict.examples if row.get("drifted")]
            features = []
            for row in drifted:
                series = gate_plots.drift_series(*profiles, row["feature"])
                if series is not None:
                    features.append({"feature": row["feature"], "caption": _drift_caption(row), **series})
            plot = gate_plots.drift(features)
            return [plot] if plot else []
    except Exception as exc:  # evidence only: the gate's verdict stands without its plot
        log.warning(f"{verdict.member} {verdict.gate}: plot not drawn: {type(exc).__name__}: {exc}")
    return []


def _drift_caption(row: dict[str, Any]) -> str:
    if row.get("test") in ("ks", "chi_square"):
        return f"{row['feature']}: {row['test']} {row['statistic']:.3g}, p={row['p_value_or_psi']:.2g}"
    return f"{row['feature']}: {row['test']} {row['statistic']:.3g}"


def _example_tables(examples: list[dict]) -> dict[str, dg.MetadataValue]:
    """One markdown table per kind of example: a row's ``_table`` names its table (e.g. a failing format_valid gate
    has the worst cases and the most common format errors), by default ``worst_examples``. Columns starting with
    ``_`` are bookkeeping, not shown."""
    tables: dict[str, list[dict]] = {}
    for example in examples:
        tables.setdefault(example.get("_table", "worst_examples"), []).append(example)
    return {
        name: dg.MetadataValue.md(examples_markdown(rows, [c for c in rows[0] if not c.startswith("_")]))
        for name, rows in tables.items()
    }


def check_result(
    verdict: Verdict,
    asset_key: dg.AssetKey,
    triage: tuple[str, str] | None = None,
    plots: list[Plot] | None = None,
) -> dg.AssetCheckResult:
    """The check's outcome; ``triage`` (headline, markdown table) explains a failed chain gate by member; ``plots``
    (:func:`verdict_plots`) go inline into the metadata as ``plot_<name>``."""
    meta: dict = {
        "status": verdict.status,
        "reason": verdict.reason,
        "threshold": bounds_text(verdict.threshold) or "see reason",
        "severity": verdict.severity,
    }
    if verdict.status == "inconclusive":
        meta["if_inconclusive"] = verdict.on_inconclusive
    if verdict.observed is not None:
        meta["observed"] = float(verdict.observed)
    if verdict.champion is not None:
        meta["champion"] = float(verdict.champion)
    if verdict.status != "passed":
        meta.update(_example_tables(verdict.examples))
    meta.update({p.key: dg.MetadataValue.md(p.markdown()) for p in plots or []})
    description = verdict.reason
    if triage is not None and verdict.holds_release:
        description += "\n\n" + triage[0]
        meta["regression_triage"] = dg.MetadataValue.md(triage[1])
    return dg.AssetCheckResult(
        asset_key=asset_key,
        passed=verdict.status == "passed",
        check_name=check_name(verdict.gate),
        metadata=meta,
        description=description,
        # Only what holds the release is an ERROR (and so blocks downstream); warn gates and inconclusive
        # verdicts the manifest lets pass show as warnings.
        severity=dg.AssetCheckSeverity.ERROR if verdict.holds_release else dg.AssetCheckSeverity.WARN,
    )


def _member_checks(manifest: ReleaseManifest, member: str, role: str) -> dg.AssetChecksDefinition:
    """The gates of ``member`` that read its ``role`` asset, as one check step attached to that asset.

    One step per target asset, not per member: a blocking check on the raw rows must finish before the split
    runs, so it cannot share a step with checks that read the split.
    """
    kind = manifest.members[member].kind
    roles = member_roles(manifest, member)
    gates = {g: t for g, t in manifest.gates[member].items() if gate_role(kind, g, manifest.members[member]) == role}
    target = dg.AssetKey(roles[role])
    used_roles = {role} | ({"model", "split"} if "regression" in gates else set())
    if "contract" in gates:  # the interfaces of the members it is built from
        used_roles |= set(producer_roles(manifest, member))
    read = [dg.AssetKey(roles[r]) for r in sorted(used_roles)]
    specs = [
        dg.AssetCheckSpec(
            check_name(gate),
            asset=target,
            additional_deps=[k for k in read if k != target],
            blocking=t.severity == "block",
            description=f"`{member}`: {gate} "
            + ", ".join(f"{op} {v:g}" for op, v in (("min", t.min), ("max", t.max)) if v is not None)
            + (" (inconclusive passes with a warning)" if t.on_inconclusive == "warn" else ""),
        )
        for gate, t in sorted(gates.items())
    ]
    only = manifest.model_copy(update={"gates": {**manifest.gates, member: gates}})

    @dg.multi_asset_check(
        name=f"{manifest.name}__{member}_{role}_gates",
        specs=specs,
        ins={r: dg.AssetIn(roles[r]) for r in sorted(used_roles)},
        required_resource_keys={"store"},
        description=f"Promotion gates of `{manifest.name}/{member}` ({role}), from `releases/{manifest.name}.yaml`.",
    )
    def gates_check(context: dg.AssetCheckExecutionContext, **refs: ArtifactRef) -> Iterator[dg.AssetCheckResult]:
        store = context.resources.store
        root = store.local().root
        champion = ChampionView(store.releases(), root, manifest.name)
        inputs = MemberInputs(refs=refs, store_root=root, champion=champion)
        verdicts = member_verdicts(only, member, inputs)
        triage = None
        if role == "evaluation" and any(v.holds_release and v.status == "failed" for v in verdicts):
            # Which member moved the metric, against the champion: computed once, cached for the
            # regression_triage asset; a triage that cannot run is said in the table, and never fails the gate.
            triage = explain_held(store.local(), store.releases(), refs["evaluation"], champion.version)
            context.log.info(triage[0])
        for verdict in verdicts:
            yield check_result(verdict, target, triage, verdict_plots(verdict, inputs))

    return gates_check


def gate_checks(manifest: ReleaseManifest) -> list[dg.AssetChecksDefinition]:
    by_target: set[tuple[str, str]] = {
        (member, gate_role(manifest.members[member].kind, gate, manifest.members[member]))
        for member, gates in manifest.gates.items()
        for gate in gates
    }
    return [_member_checks(manifest, member, role) for member, role in sorted(by_target)]
