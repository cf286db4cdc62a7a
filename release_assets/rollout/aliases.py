"""The registry mirrors the ledger: the one place that derives its aliases, after every sync and every move."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from release_assets.core.extras import not_installed
from release_assets.record.ledger import LedgerState, replay
from release_assets.release.registry_sync import register_published
from release_assets.release.store import ReleaseStore
from release_assets.release.tracking_server import RegistryUnavailable, registry_failure


def mirror_aliases(releases: ReleaseStore, registry: Any, release: str, environments: Any = None) -> LedgerState:
    """Register what ``release``'s ledger published and MLflow lacks (``release/registry_sync.py``), then
    :func:`point_aliases`: an alias can only point at a registered version, and a promotion may come before the
    sensor's sync did. Idempotent: a run that died after a ledger write completes the mirror on retry."""

    register_published(releases, registry, release)
    return point_aliases(releases, registry, release, environments)


def mirror_or_pending(
    releases: ReleaseStore, registry: Callable[[], Any], release: str, environments: Any = None
) -> tuple[LedgerState, str | None]:
    """After a ledger move: :func:`mirror_aliases` on the registry ``registry()`` opens; or, when MLflow cannot be
    opened or fails, the ledger's state and one line saying why MLflow's aliases are pending.

    The move stands either way: the ledger is the truth (serving reads it), so a promotion, a rollback or a canary
    step never waits on MLflow, and the next ``registry sync`` (or the one the ledger's growth launches) points
    the aliases. The caller reports the line; it is None when the aliases mirror the ledger now, and without the
    mlflow extra (a core install has no registry to mirror: the ledger alone is the truth)."""

    if not_installed("mlflow") is not None:
        return replay(releases.events(release)), None
    opened = None
    try:
        opened = registry()
        return mirror_aliases(releases, opened, release, environments), None
    except Exception as exc:
        mlflow_errors = sys.modules.get("mlflow.exceptions")  # not loaded: the failure cannot be MLflow's
        if not isinstance(exc, RegistryUnavailable) and not (
            mlflow_errors is not None and isinstance(exc, mlflow_errors.MlflowException)
        ):
            raise
        why = registry_failure(exc, getattr(opened, "tracking_uri", "")) or (
            f"MLflow failed: {' '.join(str(exc).split())[:300]}"
        )
    pending = f"{why}; MLflow's aliases of {release} follow the ledger at the next `release-assets registry sync`"
    return replay(releases.events(release)), pending


def point_aliases(releases: ReleaseStore, registry: Any, release: str, environments: Any = None) -> LedgerState:
    """Replay ``release``'s ledger and point the registry's ``candidate``, ``champion`` and ``canary`` aliases where
    it says (``canary`` is removed when no canary is in progress). With ``environments`` (``environments.yaml``,
    loaded), also ``<env>-champion`` and ``<env>-canary`` for every environment after the first (``champion`` and
    ``canary`` are the first's). The registry points each alias on ``<release>`` and on the member model versions
    and prompt versions the aliased release version shipped (``Registry.mirror``). Returns the replayed state."""
    events = releases.events(release)
    state = replay(events)
    canary = state.canary.version if state.canary else None
    aliases = {"candidate": state.candidate, "champion": state.champion, "canary": canary}
    for env in environments.environments[1:] if environments is not None else []:
        there = replay(events, env.name)
        aliases[f"{env.name}-champion"] = there.champion
        aliases[f"{env.name}-canary"] = there.canary.version if there.canary else None
    registry.mirror(release, aliases)
    return state
