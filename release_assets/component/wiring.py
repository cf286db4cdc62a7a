"""Every stage of a release, wired: the one place that names each stage's asset factories (``release_defs``), and
what all releases of a code location share (``shared_defs``: jobs, sensors, resources, executor).

Both roads to a code location build from here: ``definitions.build_defs`` (this repository's ``releases/*.yaml``)
and the Dagster Components a ``dg`` project declares (``component.py``), so they build the same assets, checks
and jobs. Runs use the in-process executor: every step here is small, and a subprocess per step would cost more
than most steps do (measured in BENCHMARKS.md).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dagster as dg

from release_assets import keys
from release_assets.assets import IO_MANAGER_KEY
from release_assets.chains.assets import chain_assets
from release_assets.core.settings import Settings
from release_assets.datasets.assets import dataset_assets
from release_assets.evaluation.assets import evaluation_assets
from release_assets.evaluation.triage_assets import regression_triage_defs, triage_chain
from release_assets.manifest import ReleaseManifest
from release_assets.models.assets import model_assets
from release_assets.promotion.checks import gate_checks
from release_assets.release.assets import release_unit_asset
from release_assets.release.jobs import build_registry_sync
from release_assets.resources.artifact_store import ArtifactStore
from release_assets.resources.executors import executor_from_env
from release_assets.resources.io import ArtifactRefIOManager
from release_assets.resources.registry import RegistryResource
from release_assets.rollout.drift_assets import live_drift_asset
from release_assets.rollout.jobs import abort_canary, promote_release, rollback_release, start_canary
from release_assets.rollout.sensors import build_canary_monitor, rollout_specs
from release_assets.rollout.shadow_assets import shadow_report_asset
from release_assets.sensors import build_code_change_sensor, build_failed_gate_sensor, triaged_assets


def release_defs(manifest: ReleaseManifest, project_root: Path) -> dg.Definitions:
    stages = [
        *dataset_assets(manifest, project_root),
        *model_assets(manifest, project_root),
        *chain_assets(manifest, project_root),
        *evaluation_assets(manifest, project_root),
    ]
    versions = {k.path[-1]: v for a in stages for k, v in a.code_versions_by_key.items()}
    code_versions = {name: versions.get(key[-1]) for name, key in keys.bundled(manifest).items()}
    unit = release_unit_asset(manifest, project_root, code_versions)
    assets: list[dg.AssetsDefinition | dg.AssetSpec] = [*stages, unit]
    job = dg.define_asset_job(
        f"{manifest.name}_release",
        selection=release_selection([manifest]),
        description=f"Build, gate and publish the `{manifest.name}` release unit.",
        # The run queue (deploy/dagster.postgres.yaml) allows one run per release, however the run is launched.
        tags={"release_assets/release": manifest.name},
    )
    checks = gate_checks(manifest)
    if manifest.rollout is not None:  # live evidence and the canary, outside the release job
        rollout_asset, budgets_check = rollout_specs(manifest)
        assets += [rollout_asset, live_drift_asset(manifest, project_root)]
        if keys.traffic_chain(manifest) is not None:
            assets.append(shadow_report_asset(manifest))
        checks.append(budgets_check)
    jobs = [job]
    if triage_chain(manifest) is not None:  # which member moved the chain's metrics, when gates hold a build
        triage_asset, triage_job = regression_triage_defs(manifest)
        assets.append(triage_asset)
        jobs.append(triage_job)
    return dg.Definitions(assets=assets, asset_checks=checks, jobs=jobs)


def release_selection(manifests: list[ReleaseManifest]) -> dg.AssetSelection:
    """What a release run materializes: its stages, and the team's own assets its members are taken from
    (`asset:`), so a release always sees their current value. Never the live evidence or the canary."""
    member_assets = [
        dg.AssetKey(asset.split("/"))
        for m in manifests
        for member in m.members_of_family("dataset").values()
        if (asset := getattr(member, "asset", None))
    ]
    stages = dg.AssetSelection.groups(*(keys.group(m.name, s) for m in manifests for s in keys.STAGES))
    return stages | dg.AssetSelection.assets(*member_assets) if member_assets else stages


def resources_for(settings: Settings) -> dict[str, Any]:
    """The embedded defaults (local store, sqlite MLflow), or S3 when ``RELEASE_ASSETS_STORE_BACKEND=s3``."""
    store_root = str(settings.store_path)
    s3_credentials = {
        field: dg.EnvVar(var)
        for field, var in (
            ("aws_access_key_id", "AWS_ACCESS_KEY_ID"),
            ("aws_secret_access_key", "AWS_SECRET_ACCESS_KEY"),
        )
        if settings.store_backend == "s3" and os.environ.get(var)
    }
    return {
        "store": ArtifactStore(
            root=store_root,
            backend=settings.store_backend,
            bucket=settings.s3_bucket,
            prefix=settings.s3_prefix,
            endpoint_url=settings.s3_endpoint_url,
            region_name=settings.s3_region,
            s3_connect_timeout=settings.s3_connect_timeout,
            s3_read_timeout=settings.s3_read_timeout,
            s3_max_attempts=settings.s3_max_attempts,
            **s3_credentials,
        ),
        IO_MANAGER_KEY: ArtifactRefIOManager(root=store_root),
        "registry": RegistryResource(
            tracking_uri=settings.tracking_uri,
            artifact_root=settings.artifact_root,
            ui_url=settings.mlflow_ui_url,
            timeout_s=settings.mlflow_timeout_s,
            max_attempts=settings.mlflow_max_attempts,
        ),
    }


def shared_defs(
    manifests: list[ReleaseManifest], per_release: list[dg.Definitions], resources: dict[str, Any]
) -> dg.Definitions:
    """What all releases share, once per code location (here, and in ReleasePlatformComponent)."""
    everything = dg.define_asset_job(
        "release_all",
        # The stages only: live evidence and the canary (<release>_rollout groups) are never part of a release run.
        selection=release_selection(manifests),
        description="Build, gate and publish every release.",
    )
    manifest_paths = {m.name: m.source for m in manifests if m.source is not None}
    registry_sync, registry_sync_sensor = build_registry_sync([m.name for m in manifests])
    shared = dg.Definitions(
        jobs=[everything, promote_release, rollback_release, start_canary, abort_canary, registry_sync],
        sensors=[
            registry_sync_sensor,
            build_code_change_sensor(manifest_paths),
            build_failed_gate_sensor(
                [job for d in per_release for job in d.jobs or [] if job.name.endswith("_triage")],
                {m.name: triaged_assets(m) for m in manifests if triage_chain(m) is not None},
            ),
            build_canary_monitor(manifests),
        ],
        resources=resources,
        executor=executor_from_env(),  # in-process by default; Celery workers with RELEASE_ASSETS_EXECUTOR=celery
    )
    return shared
