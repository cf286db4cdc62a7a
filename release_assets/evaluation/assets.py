"""Evaluation stage: a report per model on its held-out split, and the chain on its golden suite."""

from pathlib import Path
from typing import Any

import dagster as dg

from release_assets import keys
from release_assets.artifacts import ArtifactRef
from release_assets.assets import build_output, versioned
from release_assets.core.hashing import CodeInputs, files_digest
from release_assets.core.settings import Settings
from release_assets.evaluation import report
from release_assets.evaluation.breaker import BreakerSettings
from release_assets.evaluation.chain_evaluation import build_chain_evaluation
from release_assets.evaluation.model_eval import REGRESSION_EXAMPLE_COLUMNS, build_model_report
from release_assets.evaluation.report import examples_markdown
from release_assets.manifest import ManifestError, ModelConfig, ReleaseManifest, member_section
from release_assets.plots import chain as chain_plots
from release_assets.plots import model as model_plots
from release_assets.plots import render
from release_assets.promotion.shadow_gates import shadow_verdict
from release_assets.record.ledger import replay
from release_assets.rollout.shadow_assets import shadow_gates, verdicts_plot
from release_assets.sensors import post_webhook
from release_assets.serving.loader import load_release
from release_assets.serving.shadow_replay import build_shadow_comparison, subset_text

REPORT_MODULES = [
    "release_assets.evaluation.model_eval",
    "release_assets.evaluation.metrics",
    "release_assets.evaluation.latency",
    "release_assets.evaluation.report",
    "release_assets.evaluation.behaviour",
]
CHAIN_EVAL_MODULES = [
    "release_assets.evaluation.chain_evaluation",
    "release_assets.evaluation.metrics",
    "release_assets.evaluation.latency",
    "release_assets.chains.runner",
    "release_assets.chains.bindings",
    "release_assets.chains.render",
    "release_assets.chains.spec",
    "release_assets.core.textfiles",
    "release_assets.chains.llm",
]


def plots_metadata(folder: Path, titles: dict[str, str]) -> dict[str, dg.MetadataValue]:
    """The plots an evidence artifact holds (``plots/*.png``), each inline as ``plot_<name>``: read from the
    artifact, so a reused report shows the plots drawn when it was built."""
    return {key: dg.MetadataValue.md(md) for key, md in render.metadata(render.read(folder, titles)).items()}


def _report_metadata(ref: ArtifactRef, store_root: Path) -> dict:
    s = ref.summary
    shared = {
        "report": dg.MetadataValue.path(str(ref.path(store_root, "report.md"))),
        **plots_metadata(ref.path(store_root), model_plots.TITLES),
    }
    if s.get("task") == "regression":  # no classes: errors per slice and the rows it missed by most
        return {
            **({"slices": dg.MetadataValue.md(report.slice_errors_markdown(s["slices"]))} if s["slices"] else {}),
            "worst_examples": dg.MetadataValue.md(report.examples_markdown(s["examples"], REGRESSION_EXAMPLE_COLUMNS)),
            **shared,
        }
    return {
        "confusion_matrix": dg.MetadataValue.md(report.confusion_markdown(s["labels"], s["confusion"])),
        "per_class": dg.MetadataValue.md(report.per_class_markdown(s["per_class"])),
        "slices": dg.MetadataValue.md(report.slices_markdown(s["slices"])),
        **shared,
    }


def _report_code(member: ModelConfig) -> CodeInputs:
    """The report's code version: the evaluation's modules, the behavioural cases and, for a member naming its own
    `metrics:` function, that function (config) and its module with what it imports of its own package."""
    mft = [c.model_dump() for c in getattr(member, "mft_cases", [])]
    own = getattr(member, "metrics", None)
    if own is None:
        return CodeInputs(REPORT_MODULES, config=mft)  # as before `metrics:` existed: the same versions
    return CodeInputs([*REPORT_MODULES, own.partition(":")[0]], config={"mft_cases": mft, "metrics": own})


def _report_asset(manifest: ReleaseManifest, name: str) -> dg.AssetsDefinition:
    member = manifest.model(name)
    assert member.data is not None, "only a model built from a dataset has a report"
    own_metrics = getattr(member, "metrics", None)

    @dg.asset(
        key=keys.report(manifest.name, name),
        ins={
            "model": dg.AssetIn(keys.model(manifest.name, name)),
            "data": dg.AssetIn(keys.split(manifest.name, member.data)),
        },
        required_resource_keys={"store"},
        group_name=keys.group(manifest.name, "evaluation"),
        **versioned(_report_code(member), manifest, name),
        description=(
            f"Evaluation of `{name}` on the test split of `{member.data}`, by the model's task. Classifiers: "
            "accuracy, macro-F1, per-class recall, confusion matrix, accuracy per slice (binary ones also ROC AUC, "
            "PR AUC and the calibration error of the positive class). Regression: RMSE, MAE, R², MAE per slice. "
            "Each: worst examples, single-item latency p50/p95."
            + (f" Also the metrics `{own_metrics}` returns." if own_metrics else "")
        ),
        owners=manifest.owners,
        kinds={"python"},
    )
    def model_report(context: dg.AssetExecutionContext, model: ArtifactRef, data: ArtifactRef) -> dg.Output:
        local = context.resources.store.local()
        return build_output(
            context,
            local,
            release=manifest.name,
            member=f"{name}_report",
            kind="model_report",
            inputs={"model": model, "data": data},
            builder=lambda out: build_model_report(
                member.kind,
                model.path(local.root),
                data.path(local.root),
                out,
                f"{manifest.name}/{name}",
                [c.model_dump() for c in getattr(member, "mft_cases", [])],
                own_metrics,
            ),
            metadata=lambda ref: _report_metadata(ref, local.root),
        )

    return model_report


def _alert_stopped(context: dg.AssetExecutionContext, release: str, member: str, summary: dict[str, Any]) -> None:
    """Post the breaker's stop to RELEASE_ASSETS_GATE_WEBHOOK (read now), as the failed-gate sensor posts a held
    release: the evaluation stopped on its own, before any gate ran. A failing webhook is logged, not raised."""
    stopped = summary.get("breaker")
    if not stopped:
        return
    text = (
        f"{release}: the golden evaluation of {member} stopped after {stopped['cases_run']} cases "
        f"({stopped['failure_rate']:.0%} failed validation, above {stopped['max_failure_rate']:.0%}); "
        f"{stopped['cases_skipped']} cases not run"
    )
    context.log.warning(text)
    url = Settings().gate_webhook
    if not url:
        return
    payload = {"release": release, "member": member, "breaker": stopped, "text": text, "run_id": context.run_id}
    try:
        post_webhook(url, payload)
    except OSError as exc:
        context.log.warning(f"could not post the breaker's alert to the webhook: {exc}")


def _chain_evaluation_asset(manifest: ReleaseManifest, name: str, project_root: Path) -> dg.AssetsDefinition:
    member = manifest.chain(name)
    golden = project_root / member.golden
    labels = project_root / member.judge_labels if member.judge_labels else None
    data_files = [golden, *([labels] if labels else [])]
    breaker = BreakerSettings(**member.breaker.model_dump()) if member.breaker else None
    model_ins = {m: dg.AssetIn(keys.model(manifest.name, m)) for m in member.uses}

    @dg.asset(
        key=keys.chain_evaluation(manifest.name, name),
        ins={"chain": dg.AssetIn(keys.chain(manifest.name, name)), **model_ins},
        required_resource_keys={"store"},
        group_name=keys.group(manifest.name, "evaluation"),
        **versioned(
            CodeInputs(CHAIN_EVAL_MODULES, data_files, member_section(manifest, name)["member"]), manifest, name
        ),
        description=(
            f"`{name}` run with the release's own models over the golden suite `{member.golden}`: format validity, "
            "and what the chain file's `evaluation:` maps (decision accuracy, entity F1, required facts, forbidden "
            "phrases, reply similarity), latency."
        ),
        owners=manifest.owners,
        kinds={"jinja", "python"},
    )
    def chain_evaluation(context: dg.AssetExecutionContext, chain: ArtifactRef, **models):
        local = context.resources.store.local()
        model_dirs = {m: (ref.kind, ref.path(local.root)) for m, ref in models.items()}
        output = build_output(
            context,
            local,
            release=manifest.name,
            member=f"{name}_evaluation",
            kind="chain_evaluation",
            inputs={"chain": chain, **models},
            params=files_digest(data_files),
            # LLM answers are cached in the store, so re-evaluating an unchanged chain costs no calls.
            builder=lambda out: build_chain_evaluation(
                chain.path(local.root),
                model_dirs,
                golden,
                out,
                local.root / "llm_cache",
                member.chain_file,
                member.repeats,
                judge_labels=labels,
                breaker=breaker,
            ),
            metadata=lambda ref: {
                "worst_cases": dg.MetadataValue.md(
                    examples_markdown(ref.summary["examples"], ["id", "message", "expected", "got", "problems"])
                ),
                "report": dg.MetadataValue.path(str(ref.path(local.root, "report.md"))),
                **plots_metadata(ref.path(local.root), chain_plots.TITLES),
            },
        )
        _alert_stopped(context, manifest.name, name, output.value.summary)
        return output

    return chain_evaluation


SHADOW_MODULES = [
    "release_assets.serving.shadow_replay",
    "release_assets.evaluation.shadow_pairs",
    "release_assets.serving.loader",
    "release_assets.serving.shadow",
    *CHAIN_EVAL_MODULES[3:],
]


def _shadow_comparison_asset(manifest: ReleaseManifest, name: str, project_root: Path) -> dg.AssetsDefinition:
    member = manifest.chain(name)
    assert member.traffic, "keys.traffic_chain names a chain with recorded traffic"
    traffic = project_root / member.traffic
    model_ins = {m: dg.AssetIn(keys.model(manifest.name, m)) for m in member.uses}

    @dg.asset(
        key=keys.shadow_comparison(manifest.name),
        ins={"chain": dg.AssetIn(keys.chain(manifest.name, name)), **model_ins},
        required_resource_keys={"store"},
        group_name=keys.group(manifest.name, "evaluation"),
        **versioned(CodeInputs(SHADOW_MODULES, [traffic], member_section(manifest, name)["member"]), manifest, name),
        description=(
            f"`{name}` (this build, with the release's own models) against the champion on the recorded traffic "
            f"`{member.traffic}`, pair by pair: intent and entity agreement, reply similarity, abstain and "
            f"escalation rates, latency (candidate minus champion). Replays {subset_text()}. No champion: nothing "
            "to compare, the shadow gates are inconclusive. Bundled as evidence; re-run when the champion changes."
        ),
        owners=manifest.owners,
        kinds={"python"},
    )
    def shadow_comparison(context: dg.AssetExecutionContext, chain: ArtifactRef, **models: ArtifactRef):
        store = context.resources.store
        local, releases = store.local(), store.releases()
        champion = replay(releases.events(manifest.name)).champion
        members = {name: (chain.kind, chain.path(local.root))}
        members.update({m: (ref.kind, ref.path(local.root)) for m, ref in models.items()})
        return build_output(
            context,
            local,
            release=manifest.name,
            member="shadow_comparison",
            kind="shadow_comparison",
            inputs={"chain": chain, **models},
            # The champion is an input too: a new champion must re-run the comparison.
            params={"traffic": files_digest([traffic]), "champion": champion},
            builder=lambda out: build_shadow_comparison(
                manifest.name,
                members,
                member.chain_file,
                traffic,
                out,
                champion,
                lambda version: load_release(
                    releases, manifest.name, version=version, cache_dir=local.root / "serving"
                ),
            ),
            metadata=lambda ref: {
                "champion": ref.summary.get("champion") or "none yet",
                "disagreeing_pairs": dg.MetadataValue.md(
                    examples_markdown(
                        ref.summary["examples"],
                        [c for c in (ref.summary["examples"] or [{}])[0] if not c.startswith("_")] or ["id"],
                    )
                ),
                "report": dg.MetadataValue.path(str(ref.path(local.root, "report.md"))),
                **_shadow_plot(manifest, ref),
            },
        )

    return shadow_comparison


def _shadow_plot(manifest: ReleaseManifest, ref: ArtifactRef) -> dict[str, dg.MetadataValue]:
    """The shadow gates on the recorded traffic (as their checks decide them), against their bounds."""
    member, gates = shadow_gates(manifest)
    if member is None or not ref.summary.get("champion"):
        return {}
    verdicts = [shadow_verdict(member, gate, ref.summary, t) for gate, t in gates.items()]
    return verdicts_plot(verdicts, f"{manifest.name}: recorded traffic against champion {ref.summary['champion']}")


def evaluation_assets(manifest: ReleaseManifest, project_root: Path) -> list[dg.AssetsDefinition]:
    # A model built from no dataset (pre-trained embeddings) has no test split to be evaluated on.
    out = [_report_asset(manifest, name) for name in manifest.members_of_family("model") if manifest.model(name).data]
    out += [_chain_evaluation_asset(manifest, name, project_root) for name in manifest.members_of("prompt_chain")]
    served = keys.traffic_chain(manifest)
    for name in manifest.members_of("prompt_chain"):
        if manifest.chain(name).traffic and name != served:
            raise ManifestError(
                f"{manifest.source or manifest.name}: members.{name}.traffic: only the chain serving answers with "
                f"(the first by name, {sorted(manifest.members_of('prompt_chain'))[0]}) can replay recorded traffic"
            )
    if served:
        out.append(_shadow_comparison_asset(manifest, served, project_root))
    return out
