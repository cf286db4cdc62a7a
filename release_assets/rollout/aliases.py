"""The registry mirrors the ledger: the one place that derives its aliases, after every sync and every move."""

from __future__ import annotations

from typing import Any

from release_assets.release.store import ReleaseStore
from release_assets.rollout.ledger import LedgerState, replay


def mirror_aliases(releases: ReleaseStore, registry: Any, release: str, environments: Any = None) -> LedgerState:
    """Register what ``release``'s ledger published and MLflow lacks (``release/registry_sync.py``), then
    :func:`point_aliases`: an alias can only point at a registered version, and a promotion may come before the
    sensor's sync did. Idempotent: a run that died after a ledger write completes the mirror on retry."""
    from release_assets.release.registry_sync import register_published

    register_published(releases, registry, release)
    return point_aliases(releases, registry, release, environments)


def point_aliases(releases: ReleaseStore, registry: Any, release: str, environments: Any = None) -> LedgerState:
    """Replay ``release``'s ledger and point the registry's ``candidate``, ``champion`` and ``canary`` aliases where
    it says (``canary`` is removed when no canary is in progress). With ``environments`` (``environments.yaml``,
    loaded), also ``<env>-champion`` for every environment after the first (``champion`` is the first's). Returns
    the replayed state."""
    events = releases.events(release)
    state = replay(events)
    canary = state.canary.version if state.canary else None
    aliases = {"candidate": state.candidate, "champion": state.champion, "canary": canary}
    for env in environments.environments[1:] if environments is not None else []:
        aliases[f"{env.name}-champion"] = replay(events, env.name).champion
    registry.mirror(release, aliases)
    return state
