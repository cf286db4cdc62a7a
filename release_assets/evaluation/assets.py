"""Evaluation stage: a report per model on its held-out split, and the chain on its golden suite."""

from pathlib import Path

import dagster as dg

from release_assets import keys
from release_assets.artifacts import ArtifactRef
from release_assets.assets import build_output, versioned
from release_assets.hashing import CodeInputs, files_digest
from release_assets.manifest import MODEL_KINDS, PromptChain, ReleaseManifest, member_section

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
    "release_assets.textfiles",
    "release_assets.chains.llm",
]


def _report_metadata(ref: ArtifactRef, store_root: Path) -> dict:
    from release_assets.evaluation import report

    s = ref.summary
    return {
        "confusion_matrix": dg.MetadataValue.md(report.confusion_markdown(s["labels"], s["confusion"])),
        "per_class": dg.MetadataValue.md(report.per_class_markdown(s["per_class"])),
        "slices": dg.MetadataValue.md(report.slices_markdown(s["slices"])),
        "report": dg.MetadataValue.path(str(ref.path(store_root, "report.md"))),
    }


def _report_asset(manifest: ReleaseManifest, name: str) -> dg.AssetsDefinition:
    member = manifest.members[name]

    @dg.asset(
        key=keys.report(manifest.name, name),
        ins={
            "model": dg.AssetIn(keys.model(manifest.name, name)),
            "data": dg.AssetIn(keys.split(manifest.name, member.data)),
        },
        required_resource_keys={"store", "mlflow"},
        group_name=keys.group(manifest.name, "evaluation"),
        **versioned(
            CodeInputs(REPORT_MODULES, config=[c.model_dump() for c in getattr(member, "mft_cases", [])]),
            manifest,
            name,
        ),
        description=(
            f"Evaluation of `{name}` on the test split of `{member.data}`: accuracy, macro-F1, per-class recall, "
            "confusion matrix, slices, worst examples, single-item latency p50/p95."
        ),
        owners=manifest.owners,
        kinds={"python"},
    )
    def model_report(context: dg.AssetExecutionContext, model: ArtifactRef, data: ArtifactRef) -> dg.Output:
        from release_assets.evaluation.model_eval import build_model_report

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
            ),
            metadata=lambda ref: _report_metadata(ref, local.root),
            tracking=context.resources.mlflow,
        )

    return model_report


def _chain_evaluation_asset(manifest: ReleaseManifest, name: str, project_root: Path) -> dg.AssetsDefinition:
    member: PromptChain = manifest.members[name]
    golden = project_root / member.golden
    model_ins = {m: dg.AssetIn(keys.model(manifest.name, m)) for m in member.uses}

    @dg.asset(
        key=keys.chain_evaluation(manifest.name, name),
        ins={"chain": dg.AssetIn(keys.chain(manifest.name, name)), **model_ins},
        required_resource_keys={"store", "mlflow"},
        group_name=keys.group(manifest.name, "evaluation"),
        **versioned(CodeInputs(CHAIN_EVAL_MODULES, [golden], member_section(manifest, name)["member"]), manifest, name),
        description=(
            f"`{name}` run with the release's own models over the golden suite `{member.golden}`: format validity, "
            "and what the chain file's `evaluation:` maps (decision accuracy, entity F1, required facts, forbidden "
            "phrases, reply similarity), latency."
        ),
        owners=manifest.owners,
        kinds={"jinja", "python"},
    )
    def chain_evaluation(context: dg.AssetExecutionContext, chain: ArtifactRef, **models):
        from release_assets.evaluation.chain_evaluation import build_chain_evaluation
        from release_assets.evaluation.report import examples_markdown

        local = context.resources.store.local()
        model_dirs = {m: (ref.kind, ref.path(local.root)) for m, ref in models.items()}
        return build_output(
            context,
            local,
            release=manifest.name,
            member=f"{name}_evaluation",
            kind="chain_evaluation",
            inputs={"chain": chain, **models},
            params=files_digest([golden]),
            # LLM answers are cached in the store, so re-evaluating an unchanged chain costs no calls.
            builder=lambda out: build_chain_evaluation(
                chain.path(local.root),
                model_dirs,
                golden,
                out,
                local.root / "llm_cache",
                member.chain_file,
                member.repeats,
            ),
            metadata=lambda ref: {
                "worst_cases": dg.MetadataValue.md(
                    examples_markdown(ref.summary["examples"], ["id", "message", "expected", "got", "problems"])
                ),
                "report": dg.MetadataValue.path(str(ref.path(local.root, "report.md"))),
            },
            tracking=context.resources.mlflow,
        )

    return chain_evaluation


def evaluation_assets(manifest: ReleaseManifest, project_root: Path) -> list[dg.AssetsDefinition]:
    out = [_report_asset(manifest, name) for name in manifest.members_of(*MODEL_KINDS)]
    out += [_chain_evaluation_asset(manifest, name, project_root) for name in manifest.members_of("prompt_chain")]
    return out
