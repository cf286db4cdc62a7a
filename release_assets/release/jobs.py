"""Wiring for the registry sync (``registry_sync.py``): the ``registry_sync`` job, and the sensor that launches it
when a release's ledger moves, so MLflow follows every publish without a release run waiting for it."""

# No `from __future__ import annotations`: Dagster reads the op's config class from its live annotation.
import contextlib
import hashlib
import json
import time
from collections.abc import Iterator

import dagster as dg
from pydantic import Field

from release_assets import keys
from release_assets.core.extras import not_installed
from release_assets.release.registry_sync import register_published
from release_assets.release.store import StoreError
from release_assets.release.tracking_server import registry_failure
from release_assets.rollout.aliases import point_aliases
from release_assets.rollout.environments import EnvironmentsError, project_environments

SYNC_INTERVAL_S = 30
# The last sync the sensor launched, kept in its cursor until it succeeds: a sync that failed (MLflow down) is
# launched again, after a wait that doubles with each failure, up to an hour, so aliases pending since a promotion
# made while MLflow was down are mirrored once it is back, without the ledger having to move again.
PENDING = "_pending_sync"
MAX_RETRY_WAIT_S = 3600


class RegistrySyncConfig(dg.Config):
    releases: list[str] = Field(
        default_factory=list, description="release names to sync (default: every release of this code location)"
    )


@contextlib.contextmanager
def _unreachable_fails_the_step(tracking_uri: str) -> Iterator[None]:
    """An unreachable tracking server fails the step with one line naming it (the preflight's, or that of an MLflow
    request out of retries), not MLflow's wrapped ``requests`` traceback; other errors pass as they are."""

    try:
        yield
    except Exception as exc:
        line = registry_failure(exc, tracking_uri)
        if line is None:
            raise
        raise dg.Failure(description=line, allow_retries=False) from None


def _after_last_sync(instance: dg.DagsterInstance, pending: dict | None, now: float) -> tuple[dict | None, list[str]]:
    """What became of the last sync launched: (what is still pending, releases to sync again now). Succeeded: nothing
    pending. Failed or canceled: its releases again once its wait is over (``retry_at`` is set at the first tick that
    sees the failure). Queued, running or not yet launched: it stays pending."""
    if not pending:
        return None, []
    runs = instance.get_runs(dg.RunsFilter(tags={"dagster/run_key": pending["run_key"]}), limit=1)
    if not runs:
        return pending, []
    status = runs[0].status
    if status == dg.DagsterRunStatus.SUCCESS:
        return None, []
    if status not in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED):
        return pending, []
    if "retry_at" not in pending:
        wait = min(SYNC_INTERVAL_S * 2 ** pending["attempt"], MAX_RETRY_WAIT_S)
        pending = {**pending, "retry_at": now + wait}
    if now < pending["retry_at"]:
        return pending, []
    return pending, list(pending["releases"])


def build_registry_sync(release_names: list[str]) -> tuple[dg.JobDefinition, dg.SensorDefinition]:
    """The job that registers every published, unregistered version and points the aliases where the ledgers say,
    and the sensor that requests it for the releases whose ledger grew since its last tick."""

    @dg.op(
        name="sync_registry",
        required_resource_keys={"store", "registry"},
        description="Register in MLflow what the ledgers published, and mirror their aliases.",
    )
    def sync(context: dg.OpExecutionContext, config: RegistrySyncConfig) -> None:
        store = context.resources.store.releases()
        with _unreachable_fails_the_step(context.resources.registry.tracking_uri):
            registry = context.resources.registry.get()  # checks the server first: one line when it is not there
        try:
            environments = project_environments()
        except EnvironmentsError as exc:  # aliases per environment need it; the rest does not
            context.log.warning(f"environments.yaml cannot be read, <env>-champion aliases left as they are: {exc}")
            environments = None
        failed = []
        with _unreachable_fails_the_step(registry.tracking_uri):  # the server went away mid-sync
            for release in config.releases or release_names:
                synced = register_published(store, registry, release)
                failed += [f"{release} {version}: {why}" for version, why in synced.failed.items()]
                for done in synced.registered:
                    link = registry.run_link(done.mlflow_run_id)
                    context.log_event(
                        dg.AssetObservation(
                            asset_key=dg.AssetKey(keys.release_unit(release)),
                            metadata={
                                "event": "registered in MLflow",
                                "version": done.version,
                                "mlflow_run_id": done.mlflow_run_id,
                                **({"mlflow_run": dg.MetadataValue.url(link)} if link else {}),
                                "model_versions": done.models_text(),
                                "prompt_versions": done.prompts_text(),
                            },
                        )
                    )
                    context.log.info(f"{release} {done.version}: registered (MLflow run {done.mlflow_run_id})")
                state = point_aliases(store, registry, release, environments)  # registered just above
                context.log.info(f"{release}: aliases candidate={state.candidate} champion={state.champion}")
        if failed:  # the rest is registered and mirrored; these stay out of MLflow until their bundle is fixed
            raise dg.Failure(description="not registered: " + "; ".join(failed))

    @dg.job(name="registry_sync", description="Bring MLflow's registry to what the release ledgers say.")
    def registry_sync_job() -> None:
        sync()

    @dg.sensor(
        name="registry_sync_sensor",
        job=registry_sync_job,
        minimum_interval_seconds=SYNC_INTERVAL_S,
        default_status=dg.DefaultSensorStatus.RUNNING,
        required_resource_keys={"store"},
        description="Launches registry_sync for each release whose ledger grew (a publish, promotion or rollback).",
    )
    def registry_sync_sensor(context: dg.SensorEvaluationContext):
        if (missing := not_installed("mlflow")) is not None:  # a core install: no registry to bring up to date
            return dg.SkipReason(missing)
        try:
            store = context.resources.store.releases()
            heads = {release: len(store.events(release)) for release in release_names}
        except StoreError as exc:  # the cursor stays: what moved meanwhile is still moved once the store is back
            return dg.SkipReason(f"release store unavailable: {exc}")
        cursor = json.loads(context.cursor) if context.cursor else {}
        pending, retry = _after_last_sync(context.instance, cursor.get(PENDING), time.time())
        moved = sorted({r for r, n in heads.items() if n and cursor.get(r) != n} | set(retry))
        if not moved:
            context.update_cursor(json.dumps({**heads, **({PENDING: pending} if pending else {})}, sort_keys=True))
            waiting = f"; a failed sync of {', '.join(pending['releases'])} is retried later" if pending else ""
            counts = ", ".join(f"{r}: {n} events" for r, n in sorted(heads.items()))
            return dg.SkipReason(f"no ledger moved ({counts}){waiting}")
        attempt = pending["attempt"] + 1 if retry and pending else 0
        run_key = hashlib.sha256(json.dumps(heads, sort_keys=True).encode()).hexdigest()[:16]
        run_key += f"-retry{attempt}" if attempt else ""
        launched = {"run_key": run_key, "releases": moved, "attempt": attempt}
        context.update_cursor(json.dumps({**heads, PENDING: launched}, sort_keys=True))
        return dg.RunRequest(run_key=run_key, run_config={"ops": {"sync_registry": {"config": {"releases": moved}}}})

    return registry_sync_job, registry_sync_sensor
