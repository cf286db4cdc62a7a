"""Release stage wiring: the release unit asset around :func:`release_assets.release.unit.release`."""

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from release_assets import keys
from release_assets.artifacts import ArtifactRef
from release_assets.assets import versioned
from release_assets.core.git_base import BaseRefError, configured_base_ref, provenance
from release_assets.core.hashing import CodeInputs
from release_assets.core.settings import get_settings
from release_assets.evaluation.report import markdown_table
from release_assets.manifest import ReleaseManifest
from release_assets.promotion.policy import bounds_text
from release_assets.release.unit import HeldBack, release

RELEASE_UNIT_AUTOMATION = dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed()

NOT_PUBLISHED = "evaluated, not published"


class ReleaseUnitConfig(dg.Config):
    publish: bool = Field(
        default=True,
        description="false: gate and report only; nothing is published and no ledger event is written (a pull "
        "request's build). RELEASE_ASSETS_PUBLISH=false turns publishing off for every run of the process.",
    )


MODULES = [
    "release_assets.release.unit",
    "release_assets.release.bundle",
    "release_assets.release.publish",
    "release_assets.promotion.policy",
]


def _verdict_table(verdicts) -> str:
    return markdown_table(
        ["member", "gate", "status", "observed", "threshold", "reason"],
        [
            [
                v.member,
                v.gate,
                v.status,
                "" if v.observed is None else v.observed,
                bounds_text(v.threshold),
                v.reason,
            ]
            for v in verdicts
        ],
    )


def _passed_text(gates: list[dict]) -> str:
    return f"{sum(g.get('status') == 'passed' for g in gates)}/{len(gates)} passed"


def _member_table(published: dict) -> str:
    shown = ("accuracy", "macro_f1", "intent_accuracy", "format_valid")
    rows = [
        [name, m["digest"][:12], m["size"], ", ".join(f"{k}={v:.3g}" for k, v in m["metrics"].items() if k in shown)]
        for name, m in published["members"].items()
    ]
    return markdown_table(["member", "sha256", "size", "metrics"], rows)


def _run_started(context: dg.AssetExecutionContext) -> str | None:
    """When this Dagster run started (RFC 3339, UTC), for the unit's provenance; None if the instance lacks it."""
    start = context.instance.get_run_stats(context.run.run_id).start_time
    return datetime.fromtimestamp(start, UTC).isoformat(timespec="seconds").replace("+00:00", "Z") if start else None


def release_unit_asset(
    manifest: ReleaseManifest, project_root: Path, code_versions: dict[str, str | None]
) -> dg.AssetsDefinition:
    """``code_versions`` maps each bundled member to its asset's code version, recorded in the lineage."""
    members = keys.bundled(manifest)

    @dg.asset(
        key=keys.release_unit(manifest.name),
        ins={name: dg.AssetIn(key) for name, key in members.items()},
        group_name=keys.group(manifest.name, "release"),
        **versioned(CodeInputs(MODULES, [manifest.source] if manifest.source else []), manifest, None),
        description=(
            f"The `{manifest.name}` release unit: every member bundled into one content-addressed tar.gz with a "
            "manifest (digests, metrics, gate verdicts, lineage), published only if every blocking gate passes."
        ),
        owners=manifest.owners,
        kinds={"python", "mlflow"},
        required_resource_keys={"store"},
        # For teams that turn on declarative automation: `eager()` alone would publish past failed blocking
        # checks (dagster#17332), so the condition also requires every dependency's blocking checks to pass.
        automation_condition=RELEASE_UNIT_AUTOMATION,
    )
    def release_unit(context: dg.AssetExecutionContext, config: ReleaseUnitConfig, **refs: ArtifactRef) -> dg.Output:
        publish = config.publish and get_settings().publish
        store = context.resources.store
        local = store.local()
        try:
            git = provenance(project_root, configured_base_ref())
        except BaseRefError as exc:
            raise dg.Failure(description=str(exc)) from None
        lineage = {
            "dagster_run_id": context.run.run_id,
            # Where it was built (commit, dirty, branch, on the default branch): promotion refuses a dirty or
            # off-branch build without an override. Outside the version digest, like everything in the lineage.
            "git": git,
            "code_versions": code_versions,
            "data_versions": {name: ref.digest[:16] for name, ref in refs.items()},
            "fingerprints": {name: ref.fingerprint for name, ref in refs.items()},
        }
        try:
            unit = release(
                manifest,
                refs,
                {tuple(key): refs[name] for name, key in members.items()},
                cache=local,
                releases=store.releases(),
                lineage=lineage,
                run_id=context.run.run_id,
                project_root=project_root,
                publish=publish,
                started_on=_run_started(context),
            )
        except HeldBack as held:
            raise dg.Failure(
                description=str(held), metadata={"gates": dg.MetadataValue.md(_verdict_table(held.verdicts))}
            ) from None
        except BaseRefError as exc:
            raise dg.Failure(description=str(exc)) from None
        if unit.weakened_gates:
            context.log.warning(f"{manifest.name}: gates weakened from the default branch: {unit.weakened_gates}")
        if unit.evaluated_only:
            context.log.info(f"{manifest.name} {unit.version}: {NOT_PUBLISHED} (publishing is off for this run)")
        else:
            done = "published" if unit.published else "already published"
            context.log.info(f"{manifest.name} {unit.version}: {done} at {unit.uri}")
        location = unit.bundle.parent if unit.bundle else local.root / "bundles" / manifest.name / unit.version
        ref = ArtifactRef(
            release=manifest.name,
            member="release_unit",
            kind="release_unit",
            fingerprint=unit.version,
            location=location.relative_to(local.root).as_posix(),
            files={},
            summary={
                "version": unit.version,
                "published": unit.published,
                "evaluated_only": unit.evaluated_only,
                "gates": [v.as_dict() for v in unit.verdicts],
            },
        )
        where: dict[str, Any] = (
            {"bundle": dg.MetadataValue.path(unit.uri)}
            if unit.uri
            else {
                "bundle": f"none ({NOT_PUBLISHED})",
                "evaluated_only": True,
                "already_published": unit.already_published,
            }
        )
        return dg.Output(
            ref,
            data_version=dg.DataVersion(unit.version),
            metadata={
                "version": unit.version,
                "published": unit.published,
                **where,
                "git": dg.MetadataValue.json(git),
                "champion": unit.champion or "none yet",
                # The release report (gates against the champion, plots, lineage, changes): the bundle's copy, in
                # the build cache; `release-assets report <release> <version>` fetches it from the store.
                "report": dg.MetadataValue.path(str(unit.report)) if unit.report else "none (bundled before reports)",
                # MLflow follows: the registry_sync job registers it and records the MLflow run on this asset.
                "members": dg.MetadataValue.md(_member_table(unit.manifest)),
                "gates": dg.MetadataValue.md(_verdict_table(unit.verdicts)),
                # Empty when built with the default branch's gates; otherwise promotion needs an explicit override.
                "weakened_gates": dg.MetadataValue.json(unit.weakened_gates),
                # What the stored version records (what `list` shows and promotion reads): a rebuild of a version
                # published earlier may pass more gates now (a champion to compare with) than were recorded then.
                "recorded_gates": _passed_text(unit.manifest.get("gates") or []),
            },
        )

    return release_unit
