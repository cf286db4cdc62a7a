"""Model stage: one asset per trained model, reused from the store when code, params and data are unchanged."""

import dagster as dg

from release_assets import keys
from release_assets.artifacts import ArtifactRef
from release_assets.assets import build_output, versioned
from release_assets.hashing import CodeInputs
from release_assets.manifest import MODEL_KINDS, ReleaseManifest, member_section
from release_assets.models.registry import MODEL_KINDS as TRAINERS

KINDS = {
    "tabular_classifier": {"sklearn"},
    "image_classifier": {"pytorch"},
    "text_classifier": {"transformers"},
}
DESCRIPTIONS = {
    "tabular_classifier": "Standardised multinomial logistic regression (scikit-learn), stored as JSON parameters.",
    "image_classifier": "Small CNN (torch) reading 8x8 digit images, stored as safetensors.",
    "text_classifier": "BERT-style encoder (transformers) with a WordPiece vocabulary learned from the train split, "
    "stored as safetensors.",
}


def _model_asset(manifest: ReleaseManifest, name: str) -> dg.AssetsDefinition:
    member = manifest.members[name]
    trainer = TRAINERS[member.kind]

    @dg.asset(
        key=keys.model(manifest.name, name),
        ins={"data": dg.AssetIn(keys.split(manifest.name, member.data))},
        required_resource_keys={"store", "mlflow", "registry"},
        group_name=keys.group(manifest.name, "models"),
        **versioned(
            CodeInputs(
                [trainer.module, "release_assets.models.train", "release_assets.models.registry"],
                config=member_section(manifest, name)["member"],
            ),
            manifest,
            name,
        ),
        description=f"{DESCRIPTIONS[member.kind]} Trained on the train split of `{member.data}`.",
        owners=manifest.owners,
        kinds=KINDS[member.kind],
    )
    def model(context: dg.AssetExecutionContext, data: ArtifactRef) -> dg.Output:
        from release_assets.models.train import build_model

        local = context.resources.store.local()
        tracking = context.resources.mlflow

        def register(ref: ArtifactRef) -> dict:
            # A new model version only when something was trained; a reused artifact is already registered.
            tracking.log_params({f"{manifest.name}.{name}.{k}": v for k, v in ref.summary["params"].items()})
            version = context.resources.registry.get().register(
                f"{manifest.name}.{name}",
                source=ref.path(local.root).as_uri(),
                run_id=tracking.active_run().info.run_id,
                tags={"digest": ref.digest, "fingerprint": ref.fingerprint, "dagster_run_id": context.run.run_id},
            )
            return {"mlflow_model_version": f"{manifest.name}.{name} v{version}"}

        return build_output(
            context,
            local,
            release=manifest.name,
            member=name,
            kind=member.kind,
            inputs={"data": data},
            params=member.params,
            builder=lambda out: build_model(member.kind, member.params, data.path(local.root), out),
            metadata=lambda ref: {
                "labels": ", ".join(ref.summary["labels"]),
                "format": ref.summary["format"],
            },
            tracking=tracking,
            on_built=register,
        )

    return model


def model_assets(manifest: ReleaseManifest) -> list[dg.AssetsDefinition]:
    return [_model_asset(manifest, name) for name in manifest.members_of(*MODEL_KINDS)]
