"""Model stage: one asset per trained model, reused from the store when code, params and data are unchanged."""

from pathlib import Path
from typing import Any

import dagster as dg

from release_assets import keys
from release_assets.artifacts import ArtifactRef
from release_assets.assets import build_output, versioned
from release_assets.core.hashing import CodeInputs, files_digest
from release_assets.manifest import ReleaseManifest, member_kind, member_section
from release_assets.models.onnx_parity import GATE, MAX_ABS_DIFF, ONNX_KINDS, artifact_verdict
from release_assets.models.train import build_model
from release_assets.models.trainers import MODEL_KINDS
from release_assets.promotion.checks import check_name, check_result


def _parity_spec(manifest: ReleaseManifest, name: str) -> list[dg.AssetCheckSpec]:
    """A blocking check on every exported model: its ONNX logits equal torch's on the test split (onnx_parity.py).

    Always on, not a manifest gate: serving and evaluation run the ONNX file, which is only sound if it computes
    what the torch model computes. Decided in the model's own step, right after the export it checks.
    """
    if manifest.members[name].kind not in ONNX_KINDS:
        return []
    description = (
        f"`{name}`: model.onnx (what serving and evaluation run) gives torch's logits within {MAX_ABS_DIFF:g} "
        "(largest absolute difference) on every row of the test split."
    )
    return [
        dg.AssetCheckSpec(
            check_name(GATE), asset=keys.model(manifest.name, name), blocking=True, description=description
        )
    ]


def _parity_result(name: str, kind: str, model: ArtifactRef, data: ArtifactRef, root, key) -> dg.AssetCheckResult:
    verdict = artifact_verdict(name, kind, model.path(root), data.path(root), (root, key[0]))
    return check_result(verdict, dg.AssetKey(key))


def _model_asset(manifest: ReleaseManifest, name: str, project_root: Path) -> dg.AssetsDefinition:
    member = manifest.model(name)
    declared = member_kind(member.kind)
    runtime = MODEL_KINDS[member.kind]
    checks = _parity_spec(manifest, name)
    source_files = runtime.source_files(member, project_root)
    check_reproducible = "reproducibility" in manifest.gates.get(name, {})

    # A model built from a dataset reads its split; pre-trained embeddings (from_data false) read nothing.
    ins = {"data": dg.AssetIn(keys.split(manifest.name, member.data))} if member.data is not None else {}
    built_from = f"Built from the split of `{member.data}`." if member.data is not None else "Built from its weights."

    def materialize(context: dg.AssetExecutionContext, data: ArtifactRef | None):
        local = context.resources.store.local()
        split_dir = data.path(local.root) if data is not None else None
        output = build_output(
            context,
            local,
            release=manifest.name,
            member=name,
            kind=member.kind,
            inputs={"data": data} if data is not None else {},
            params=_build_params(member, runtime, source_files, project_root, check_reproducible),
            builder=lambda out: build_model(member, split_dir, out, project_root, check_reproducible),
            metadata=lambda ref: {
                "labels": ", ".join(ref.summary["labels"]) or ("(regression: none)" if data is not None else "(none)"),
                "format": ref.summary["format"],
            },
        )
        yield output
        if checks and data is not None:
            yield _parity_result(name, member.kind, output.value, data, local.root, keys.model(manifest.name, name))

    decorate = dg.asset(
        key=keys.model(manifest.name, name),
        ins=ins,
        required_resource_keys={"store"},
        group_name=keys.group(manifest.name, "models"),
        **versioned(
            CodeInputs(
                [*runtime.code_modules(member), "release_assets.models.train", "release_assets.models.trainers"],
                source_files,
                # `metrics:` is the evaluation's (the report's version covers it): naming another function
                # re-evaluates the model, it does not retrain it.
                config={k: v for k, v in member_section(manifest, name)["member"].items() if k != "metrics"},
            ),
            manifest,
            name,
        ),
        description=f"{declared.description} {built_from}",
        owners=manifest.owners,
        kinds=set(declared.tags),
        check_specs=checks,
    )
    if member.data is None:

        @decorate
        def pretrained_model(context: dg.AssetExecutionContext):
            yield from materialize(context, None)

        return pretrained_model

    @decorate
    def model(context: dg.AssetExecutionContext, data: ArtifactRef):
        yield from materialize(context, data)

    return model


def _build_params(member, runtime, source_files: list[Path], project_root: Path, retrained: bool) -> Any:
    """The build's inputs beyond code and data, read now: an imported model's file digest (an edit made after
    definitions loaded still counts), the MLflow version its URI names (a moved alias imports again), and whether
    it is trained twice (a build without the `reproducibility` figure cannot answer that gate)."""
    identity = runtime.source_identity(member, project_root)
    if not source_files and identity is None and not retrained:
        return member.params  # a trained model: its hyperparameters, as always
    extra = {"retrained": True} if retrained else {}
    return {"params": member.params, "files": files_digest(source_files), "source": identity, **extra}


def model_assets(manifest: ReleaseManifest, project_root: Path) -> list[dg.AssetsDefinition]:
    return [_model_asset(manifest, name, project_root) for name in manifest.members_of_family("model")]
