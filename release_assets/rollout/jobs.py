"""Promotion with manual approval, and rollback, as Dagster jobs launchable from the UI launchpad or the CLI.

Dagster has no built-in approval step (dagster#11661): here the approval *is* the launch, whose typed config
requires who approves and why; the job refuses versions that were never published or did not pass every gate.
"""

import contextlib

import dagster as dg
from pydantic import Field

from release_assets import keys
from release_assets.core.settings import get_settings
from release_assets.evaluation.report import markdown_table
from release_assets.manifest import ManifestError, release_manifest
from release_assets.record.ledger import PromotionError, replay
from release_assets.record.ledger import promote as promote_version
from release_assets.record.ledger import rollback as rollback_version
from release_assets.rollout.aliases import mirror_or_pending
from release_assets.rollout.canary import abort, rollout_in, start
from release_assets.rollout.environment_promotion import champions, promote_to
from release_assets.rollout.environments import EnvironmentsError, project_environments, trust_of
from release_assets.rollout.metrics_source import source_for


class PromoteConfig(dg.Config):
    release: str = Field(description="release name, e.g. helpdesk")
    version: str = Field(description="the published version to make champion")
    # Required to make the first environment's champion, and for an environment whose `approval` is true.
    approved_by: str = Field(default="", description="who approves this promotion (recorded in the ledger)")
    reason: str = Field(default="", description="why (recorded in the ledger)")
    override_weakened_gates: bool = Field(
        default=False,
        description="promote a version built with gates weakened from the committed manifest (recorded in the ledger)",
    )
    environment: str | None = Field(
        default=None,
        description="promote into this environment of environments.yaml, from the one before (default: the first)",
    )


class RollbackConfig(dg.Config):
    release: str = Field(description="release name, e.g. helpdesk")
    requested_by: str = Field(description="who rolls back (recorded in the ledger)")
    reason: str = Field(description="why (recorded in the ledger)")


def _mirror(context: dg.OpExecutionContext, release: str) -> tuple[dict[str, str | None], str | None]:
    """The aliases after the move, and why MLflow's are pending when it could not be reached (else None)."""

    state, pending = mirror_or_pending(context.resources.store.releases(), context.resources.registry.get, release)
    return {"candidate": state.candidate, "champion": state.champion}, pending


def _pending(context: dg.OpExecutionContext, moved: str, pending: str | None) -> None:
    """Fail the step, once the move is recorded and observed, when MLflow's aliases could not follow it: the run
    says the move stands and what MLflow lacks, in one line, rather than succeeding with a stale registry."""
    if pending:
        context.log.error(f"{moved}; {pending}")
        raise dg.Failure(description=f"{moved}; {pending}", allow_retries=False)


def _observe(
    context: dg.OpExecutionContext,
    release: str,
    moved: dict,
    aliases: dict[str, str | None],
    pending: str | None = None,
) -> None:
    """Each move shows on the release unit's asset page (Events), beside the materializations it moved between."""
    override = moved.get("override", {}).get("weakened_gates")
    where = (
        {"environment": moved["environment"], "regions": ", ".join(moved["regions"])} if "environment" in moved else {}
    )
    where["environments"] = dg.MetadataValue.md(_environments_table(context, release))
    context.log_event(
        dg.AssetObservation(
            asset_key=dg.AssetKey(keys.release_unit(release)),
            metadata={
                "event": moved["action"],
                "champion": aliases["champion"] or "none",
                "from_version": moved["from_version"] or "none",
                "actor": moved["actor"],
                "run_by": moved.get("run_by", ""),
                "reason": moved["reason"],
                **where,
                **({"OVERRIDE weakened gates": dg.MetadataValue.json(override)} if override else {}),
                **({"mlflow_aliases": f"pending: {pending}"} if pending else {}),
            },
        )
    )


def _environments_table(context: dg.OpExecutionContext, release: str) -> str:
    """Which version each environment runs now, after this move: on every move, so the release unit's latest
    event always answers it."""

    try:
        envs = project_environments()
    except EnvironmentsError as exc:
        return f"environments.yaml cannot be read: {exc}"
    running = champions(envs, context.resources.store.releases().events(release))
    return markdown_table(["environment", "champion"], [[env, version or "none"] for env, version in running.items()])


@contextlib.contextmanager
def _refused(action: str):
    """A refused promotion or rollback fails the step with the ledger's own reason, and nothing else."""

    try:
        yield
    except PromotionError as exc:
        raise dg.Failure(description=f"{action} refused: {exc}") from None


def _promote_to_environment(context: dg.OpExecutionContext, config: PromoteConfig) -> None:
    """Copy to the environment's regions in waves, then record the move (rollout/environment_promotion.py)."""

    environment = config.environment
    assert environment, "promote calls this only for an environment"
    store = context.resources.store.releases()
    with _refused("promotion"):
        try:
            envs = project_environments()
        except EnvironmentsError as exc:
            raise PromotionError(str(exc)) from None
        events = promote_to(
            store,
            envs,
            config.release,
            config.version,
            environment,
            config.approved_by,
            config.reason,
            override_weakened_gates=config.override_weakened_gates,
        )
    _, pending = mirror_or_pending(store, context.resources.registry.get, config.release, envs)
    champion = replay(store.events(config.release), config.environment).champion
    _observe(context, config.release, events[-1], {"champion": champion}, pending)
    moved = f"{config.release}: {config.environment} champion {events[-1]['from_version'] or 'none'} -> {champion}"
    _pending(context, f"{moved} (recorded in the ledger)", pending)
    context.log.info(
        f"{moved} (regions {', '.join(events[-1]['regions'])}; by {events[-1]['actor']}: {events[-1]['reason']})"
    )


@dg.op(required_resource_keys={"store", "registry"}, description="Approve and promote a published version.")
def promote(context: dg.OpExecutionContext, config: PromoteConfig) -> None:
    if config.environment:
        _promote_to_environment(context, config)
        return
    with _refused("promotion"):
        try:  # the first environment's trusted_keys (none without environments.yaml)
            trust = trust_of(project_environments().first)
        except EnvironmentsError as exc:
            raise PromotionError(str(exc)) from None
        events = promote_version(
            context.resources.store.releases(),
            config.release,
            config.version,
            config.approved_by,
            config.reason,
            override_weakened_gates=config.override_weakened_gates,
            trust=trust,
        )
    aliases, pending = _mirror(context, config.release)
    _observe(context, config.release, events[-1], aliases, pending)
    moved = f"{config.release}: champion {events[-1]['from_version'] or 'none'} -> {aliases['champion']}"
    if events[-1].get("override"):
        context.log.warning(
            f"{config.release} {config.version}: promoted OVER weakened gates "
            f"({'; '.join(events[-1]['override']['weakened_gates'])}), approved by {config.approved_by}"
        )
    _pending(context, f"{moved} (recorded in the ledger)", pending)
    context.log.info(f"{moved} (approved by {config.approved_by}: {config.reason})")


@dg.op(required_resource_keys={"store", "registry"}, description="Move champion back to the previous champion.")
def rollback(context: dg.OpExecutionContext, config: RollbackConfig) -> None:
    with _refused("rollback"):
        event = rollback_version(context.resources.store.releases(), config.release, config.requested_by, config.reason)
    aliases, pending = _mirror(context, config.release)
    _observe(context, config.release, event, aliases, pending)
    moved = f"{config.release}: champion {event['from_version']} -> {aliases['champion']}"
    _pending(context, f"{moved} (rolled back in the ledger)", pending)
    context.log.info(f"{moved} (rolled back by {config.requested_by}: {config.reason})")


@dg.job(description="Manual approval gate: make a published, all-gates-passed version the champion.")
def promote_release():
    promote()


@dg.job(description="Roll the champion back to the previous champion, as a whole release unit.")
def rollback_release():
    rollback()


class StartCanaryConfig(dg.Config):
    release: str = Field(description="release name, e.g. helpdesk")
    version: str = Field(description="the published version to send the first step of traffic to")
    approved_by: str = Field(description="who approves this canary (recorded, and carried into its promotion)")
    reason: str = Field(description="why (recorded in the ledger)")
    override_weakened_gates: bool = Field(
        default=False, description="allow a version built with weakened gates (recorded in the ledger)"
    )
    environment: str | None = Field(
        default=None,
        description="run the canary in this environment of environments.yaml: its servers' flag file, its champion "
        "(default: the first)",
    )


class AbortCanaryConfig(dg.Config):
    release: str = Field(description="release name, e.g. helpdesk")
    requested_by: str = Field(description="who stops the canary (recorded in the ledger)")
    reason: str = Field(description="why (recorded in the ledger)")
    environment: str | None = Field(
        default=None, description="the environment of environments.yaml the canary runs in (default: the first)"
    )


def rollout_for(context: dg.OpExecutionContext, release: str, environment: str | None = None):
    """The release's canary context in ``environment`` (default: the first): its ``rollout:`` policy from the
    manifest, its ledger, that environment's flag folder, and the registry."""
    settings = get_settings()
    try:
        manifest = release_manifest(settings.releases_path, release)
    except ManifestError as exc:
        raise PromotionError(str(exc)) from None
    if manifest.rollout is None:
        raise PromotionError(f"releases/{release}.yaml has no `rollout:` section: nothing says how to ramp a canary")
    store = context.resources.store.releases()
    try:
        return rollout_in(store, release, manifest.rollout, environment, context.resources.registry.get)
    except EnvironmentsError as exc:
        raise PromotionError(str(exc)) from None


@dg.op(required_resource_keys={"store", "registry"}, description="Send the first rollout step to a canary.")
def start_canary_op(context: dg.OpExecutionContext, config: StartCanaryConfig) -> None:
    with _refused("canary start"):
        rollout = rollout_for(context, config.release, config.environment)
        started = start(
            rollout,
            config.version,
            config.approved_by,
            config.reason,
            source=source_for(rollout.environments.get(config.environment) if config.environment else None),
            override_weakened_gates=config.override_weakened_gates,
        )
    context.log_event(
        dg.AssetObservation(
            asset_key=dg.AssetKey(keys.rollout(config.release)),
            metadata={
                "event": "canary_started",
                "environment": config.environment or rollout.environments.first.name,
                "canary_version": config.version,
                "champion": started["from_version"] or "none",
                "percent": rollout.spec.steps[0],
                "approved_by": config.approved_by,
                "reason": config.reason,
                "baseline": "recorded"
                if started.get("baseline")
                else "none yet: the first tick that reads metrics records it",
                **({"mlflow_aliases": f"pending: {rollout.mirror_pending}"} if rollout.mirror_pending else {}),
            },
        )
    )
    moved = f"{config.release}: canary {config.version} at {rollout.spec.steps[0]}%{rollout.where}"
    _pending(context, f"{moved} (recorded in the ledger)", rollout.mirror_pending)
    context.log.info(f"{moved} (approved by {config.approved_by})")


@dg.op(required_resource_keys={"store", "registry"}, description="Stop the canary: everyone back to the champion.")
def abort_canary_op(context: dg.OpExecutionContext, config: AbortCanaryConfig) -> None:
    with _refused("canary abort"):
        rollout = rollout_for(context, config.release, config.environment)
        ended = abort(rollout, config.requested_by, config.reason)
    pending = rollout.mirror_pending
    context.log_event(
        dg.AssetObservation(
            asset_key=dg.AssetKey(keys.rollout(config.release)),
            metadata={
                "event": "canary_aborted",
                "environment": config.environment or rollout.environments.first.name,
                "canary_version": ended["from_version"],
                "reason": config.reason,
                **({"mlflow_aliases": f"pending: {pending}"} if pending else {}),
            },
        )
    )
    moved = f"{config.release}: canary {ended['from_version']} aborted{rollout.where}"
    _pending(context, f"{moved} (recorded in the ledger)", pending)
    context.log.info(f"{moved} by {config.requested_by}")


@dg.job(description="Start a canary: a published, all-gates-passed version gets the rollout's first step.")
def start_canary():
    start_canary_op()


@dg.job(description="Abort the running canary: route everyone to the champion, record who and why.")
def abort_canary():
    abort_canary_op()
