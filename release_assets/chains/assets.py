"""Prompts stage: the chain config, validated against the release's models and frozen with its knowledge base."""

from pathlib import Path

import dagster as dg

from release_assets import keys
from release_assets.artifacts import ArtifactRef
from release_assets.assets import build_output, versioned
from release_assets.chains.build import build_chain, chain_files, python_modules
from release_assets.core.hashing import CodeInputs, files_digest, module_closure, module_source_path
from release_assets.manifest import ReleaseManifest, member_section
from release_assets.resources.artifact_store import ArtifactStore

MODULES = [
    "release_assets.chains.build",
    "release_assets.chains.contract",
    "release_assets.chains.spec",
    "release_assets.core.textfiles",
    "release_assets.chains.render",
    "release_assets.chains.llm",
]


def _chain_asset(manifest: ReleaseManifest, name: str, project_root: Path) -> dg.AssetsDefinition:
    member = manifest.chain(name)
    chain_dir = project_root / member.path
    kb = project_root / member.knowledge_base if member.knowledge_base else None
    files = [*chain_files(chain_dir), *([kb] if kb else [])]
    # The team's code a python step runs (python:package.module:function): its module and every module of its own
    # package it imports enter the code version, so editing a step function rebuilds (and re-evaluates) the chain.
    step_modules = python_modules(chain_dir, member.chain_file)

    @dg.asset(
        key=keys.chain(manifest.name, name),
        ins={m: dg.AssetIn(keys.model(manifest.name, m)) for m in member.uses},
        group_name=keys.group(manifest.name, "prompts"),
        # The chain's files are in the code version: editing a template makes this asset (only) stale.
        **versioned(CodeInputs([*MODULES, *step_modules], files, member_section(manifest, name)), manifest, name),
        description=(
            f"Prompt chain `{member.path}`: templates compile in a sandbox, every variable is provided, every "
            "binding names a model of this release, output schemas are valid."
        ),
        owners=manifest.owners,
        kinds={"jinja"},
    )
    def chain(context: dg.AssetExecutionContext, store: ArtifactStore, **models: ArtifactRef) -> dg.Output:
        labels = {m: ref.summary["labels"] for m, ref in models.items()}
        return build_output(
            context,
            store.local(),
            release=manifest.name,
            member=name,
            kind="prompt_chain",
            # Only the models' label sets shape the chain; retraining with the same labels keeps it as is.
            inputs={},
            params={
                "labels": labels,
                "files": files_digest([*chain_files(chain_dir), *([kb] if kb else [])]),
                # Read at build time too: a step function edited after definitions loaded still rebuilds.
                **(
                    {"code": files_digest([module_source_path(m) for m in module_closure(step_modules)])}
                    if step_modules
                    else {}
                ),
            },
            builder=lambda out: build_chain(chain_dir, kb, labels, out, member.chain_file),
            metadata=lambda ref: {
                "steps": dg.MetadataValue.md(
                    "\n".join(f"- `{s['id']}`: {s['binding']} via `{s['template']}`" for s in ref.summary["steps"])
                )
            },
        )

    return chain


def chain_assets(manifest: ReleaseManifest, project_root: Path) -> list[dg.AssetsDefinition]:
    return [_chain_asset(manifest, name, project_root) for name in manifest.members_of("prompt_chain")]
