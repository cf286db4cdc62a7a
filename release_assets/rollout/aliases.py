"""The registry's aliases mirror the ledger: the one place that derives them, after every publish and move."""

from __future__ import annotations

from typing import Any

from release_assets.release.store import ReleaseStore
from release_assets.rollout.ledger import LedgerState, replay


def mirror_aliases(releases: ReleaseStore, registry: Any, release: str) -> LedgerState:
    """Replay ``release``'s ledger and point the registry's ``candidate``, ``champion`` and ``canary`` aliases where
    it says (``canary`` is removed when no canary is in progress).

    Idempotent: a run that died after a ledger write completes the mirror on retry. Returns the replayed state.
    """
    state = replay(releases.events(release))
    canary = state.canary.version if state.canary else None
    registry.mirror(release, {"candidate": state.candidate, "champion": state.champion, "canary": canary})
    return state
