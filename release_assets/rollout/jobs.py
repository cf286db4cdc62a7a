"""Promotion with manual approval, and rollback, as Dagster jobs launchable from the UI launchpad or the CLI.

Dagster has no built-in approval step (dagster#11661): here the approval *is* the launch, whose typed config
requires who approves and why; the job refuses versions that were never published or did not pass every gate.
"""

import contextlib

import dagster as dg
from pydantic import Field


class PromoteConfig(dg.Config):
    release: str = Field(description="release name, e.g. helpdesk")
    version: str = Field(description="the published version to make champion")
    approved_by: str = Field(description="who approves this promotion (recorded in the ledger)")
    reason: str = Field(description="why (recorded in the ledger)")
    override_weakened_gates: bool = Field(
        default=False,
        description="promote a version built with gates weakened from the committed manifest (recorded in the ledger)",
    )


class RollbackConfig(dg.Config):
    release: str = Field(description="release name, e.g. helpdesk")
    requested_by: str = Field(description="who rolls back (recorded in the ledger)")
    reason: str = Field(description="why (recorded in the ledger)")


def _mirror(context: dg.OpExecutionContext, release: str) -> dict[str, str | None]:
    from release_assets.rollout.aliases import mirror_aliases

    state = mirror_aliases(context.resources.store.releases(), context.resources.registry.get(), release)
    return {"candidate": state.candidate, "champion": state.champion}


def _observe(context: dg.OpExecutionContext, release: str, moved: dict, aliases: dict[str, str | None]) -> None:
    """Each move shows on the release unit's asset page (Events), beside the materializations it moved between."""
    from release_assets import keys

    override = moved.get("override", {}).get("weakened_gates")
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
                **({"OVERRIDE weakened gates": dg.MetadataValue.json(override)} if override else {}),
            },
        )
    )


@contextlib.contextmanager
def _refused(action: str):
    """A refused promotion or rollback fails the step with the ledger's own reason, and nothing else."""
    from release_assets.rollout.ledger import PromotionError

    try:
        yield
    except PromotionError as exc:
        raise dg.Failure(description=f"{action} refused: {exc}") from None


@dg.op(required_resource_keys={"store", "registry"}, description="Approve and promote a published version.")
def promote(context: dg.OpExecutionContext, config: PromoteConfig) -> None:
    from release_assets.rollout.ledger import promote as promote_version

    with _refused("promotion"):
        events = promote_version(
            context.resources.store.releases(),
            config.release,
            config.version,
            config.approved_by,
            config.reason,
            override_weakened_gates=config.override_weakened_gates,
        )
    aliases = _mirror(context, config.release)
    _observe(context, config.release, events[-1], aliases)
    if events[-1].get("override"):
        context.log.warning(
            f"{config.release} {config.version}: promoted OVER weakened gates "
            f"({'; '.join(events[-1]['override']['weakened_gates'])}), approved by {config.approved_by}"
        )
    context.log.info(
        f"{config.release}: champion {events[-1]['from_version'] or 'none'} -> {aliases['champion']} "
        f"(approved by {config.approved_by}: {config.reason})"
    )


@dg.op(required_resource_keys={"store", "registry"}, description="Move champion back to the previous champion.")
def rollback(context: dg.OpExecutionContext, config: RollbackConfig) -> None:
    from release_assets.rollout.ledger import rollback as rollback_release

    with _refused("rollback"):
        event = rollback_release(context.resources.store.releases(), config.release, config.requested_by, config.reason)
    aliases = _mirror(context, config.release)
    _observe(context, config.release, event, aliases)
    context.log.info(
        f"{config.release}: champion {event['from_version']} -> {aliases['champion']} (rolled back by "
        f"{config.requested_by}: {config.reason})"
    )


@dg.job(description="Manual approval gate: make a published, all-gates-passed version the champion.")
def promote_release():
    promote()


@dg.job(description="Roll the champion back to the previous champion, as a whole release unit.")
def rollback_release():
    rollback()
