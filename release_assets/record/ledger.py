"""The promotion ledger: who moved which release where, when and why, as append-only events.

MLflow keeps no history of alias moves; this ledger is the history, and the registry aliases are derived from it.
The champion is never stored on its own: it is replayed from the events, so the two cannot disagree.
The store chains the events by hash and verifies the chain on every read (see ``release_assets.release.store``),
so every command that replays the ledger refuses one that was edited, cut short or reordered.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from release_assets.core.settings import Settings
from release_assets.provenance.keys import Trust
from release_assets.record.canary_state import CanaryState, next_canary
from release_assets.record.servable import PromotionError, check_names, check_servable, overridden_controls, verified
from release_assets.release.store import LedgerError, ReleaseStore, StoreError, check_release_name

Action = Literal[
    "published",
    "approved",
    "promoted",
    "rolled_back",
    "routed",
    "shadow_reported",
    # the canary (rollout/canary.py): started, each step reached, each failed or inconclusive analysis, paused when
    # undecided in time and resumed by a person, stopped by a person
    "canary_started",
    "canary_baselined",
    "canary_advanced",
    "canary_breach",
    "canary_inconclusive",
    "canary_paused",
    "canary_resumed",
    "canary_aborted",
]


def default_actor() -> str:
    return Settings().actor or getpass.getuser()  # afresh: asked once per command, no need to fill the cache


def run_by() -> str:
    """Who actually ran the command: the CI actor, else the OS user (whatever ``actor`` claims)."""
    if os.environ.get("GITHUB_ACTOR"):
        return os.environ["GITHUB_ACTOR"]
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a container user with no name
        return f"uid {os.getuid()}"


def event(
    action: Action,
    release: str,
    *,
    actor: str,
    reason: str,
    from_version: str | None,
    to_version: str | None,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "time": datetime.now(UTC).isoformat(timespec="microseconds"),
        "action": action,
        "release": release,
        "actor": actor,
        "reason": reason,
        "from_version": from_version,
        "to_version": to_version,
        **extra,
        "run_by": run_by(),  # after `extra`: the process's identity is recorded, never claimed by a caller
    }


@dataclass(frozen=True)
class LedgerState:
    champions: list[str]  # champion history as a stack: the last is the champion, the one before is rollback's target
    candidate: str | None
    approved: set[str]
    published: set[str]
    canary: CanaryState | None = None

    @property
    def champion(self) -> str | None:
        return self.champions[-1] if self.champions else None

    @property
    def previous_champion(self) -> str | None:
        return self.champions[-2] if len(self.champions) > 1 else None


def replay(events: list[dict[str, Any]], environment: str | None = None) -> LedgerState:
    """The state of one environment: None is the first (events without ``environment``, as before environments)."""
    champions: list[str] = []
    candidate, approved, published = None, set(), set()
    canary: CanaryState | None = None
    for e in events:
        if e.get("environment") != environment:
            continue  # another environment's move (rollout/environment_promotion.py)
        canary = next_canary(canary, e)
        if e.get("scope") == "canary":
            continue  # a canary rolled back never moved the champion
        if e["action"] == "published":
            candidate = e["to_version"]
            published.add(e["to_version"])
        elif e["action"] == "approved":
            approved.add(e["to_version"])
        # A move applies only from the champion it says it moves from: of two concurrent promotions or rollbacks
        # that both read the same state, the second is void instead of moving the champion twice.
        elif e["action"] == "promoted" and e.get("from_version") == (champions[-1] if champions else None):
            champions.append(e["to_version"])
        elif e["action"] == "rolled_back" and champions and e.get("from_version") == champions[-1]:
            champions.pop()
    return LedgerState(champions, candidate, approved, published, canary)


def verify_ledger(store: ReleaseStore, release: str) -> dict[str, Any]:
    """Verify ``release``'s ledger (chain and head record); raise :class:`LedgerError` naming the line or key.

    Returns counts: ``events`` in all, ``chained`` and ``legacy`` (written before the chain), and ``head``, the head
    record ``{"seq", "hash"}`` or None when none was written yet.
    """
    try:
        check_release_name(release)
    except StoreError as exc:
        raise LedgerError(str(exc)) from None
    ledger = store.read_ledger(release)
    total = len(ledger.events)
    return {
        "release": release,
        "events": total,
        "chained": total - ledger.legacy,
        "legacy": ledger.legacy,
        "head": ledger.head,
    }


def promote(
    store: ReleaseStore,
    release: str,
    version: str,
    approved_by: str,
    reason: str,
    override_weakened_gates: bool = False,
    trust: Trust | None = None,
) -> list[dict[str, Any]]:
    """Manual approval then promotion of ``version`` to champion (with ``trust``, the first environment's
    ``trusted_keys``: only a unit signed by one of them).

    Decides from the verified bundle's own manifest: refuses anything unpublished, not all-passed, or whose bundle
    does not verify; a release built with weakened gates, or from a dirty tree or off the default branch, needs
    ``override_weakened_gates``, and the ledger records what it went around (``override``) beside the approver and
    the reason.
    """
    check_names(release, version)
    if not approved_by.strip() or not reason.strip():
        raise PromotionError("a promotion needs both `approved_by` and `reason`")
    manifest = check_servable(store, release, version, override_weakened_gates, action="promoted", trust=trust)
    state = replay(store.events(release))
    if state.champion == version:
        raise PromotionError(f"{release} {version} is already the champion")
    overridden = overridden_controls(manifest)
    extra = {"override": overridden} if overridden else {}
    moves = [
        event(
            action, release, actor=approved_by, reason=reason, from_version=state.champion, to_version=version, **extra
        )
        for action in ("approved", "promoted")
    ]
    written = [store.append_event(release, e) for e in moves]
    # Two promotions that read the same champion both append, and replay voids the second (it no longer moves
    # from the champion it names): say so instead of reporting a promotion that did not take effect.
    if replay(store.events(release)).champion != version:
        raise PromotionError(
            f"{release} {version} was not promoted: another promotion or rollback moved the champion at the same "
            "time (see `release-assets history`)"
        )
    return written


def record_routing(
    store: ReleaseStore, release: str, routing: dict[str, Any], actor: str, reason: str
) -> dict[str, Any]:
    """A flag change that sends users to another version is recorded like a promotion: who, why, what share."""
    if not actor.strip() or not reason.strip():
        raise PromotionError("sending traffic to a canary needs both `approved_by` and `reason`")
    state = replay(store.events(release))
    e = event(
        "routed",
        release,
        actor=actor,
        reason=reason,
        from_version=state.champion,
        to_version=routing.get("canary"),
        routing=routing,
    )
    return store.append_event(release, e)


def rollback(store: ReleaseStore, release: str, actor: str, reason: str) -> dict[str, Any]:
    """Move the champion back to the previous champion, as a whole release unit (models and chain together)."""
    check_names(release)
    if not reason.strip():
        raise PromotionError("a rollback needs a `reason`")
    state = replay(store.events(release))
    if state.champion is None:
        raise PromotionError(f"{release} has no champion to roll back")
    if state.previous_champion is None:
        raise PromotionError(f"{release} {state.champion} is the first champion; there is nothing to roll back to")
    verified(store, release, state.previous_champion, "rolled back to")
    e = event(
        "rolled_back",
        release,
        actor=actor,
        reason=reason,
        from_version=state.champion,
        to_version=state.previous_champion,
    )
    return store.append_event(release, e)


def record_published(
    store: ReleaseStore, release: str, version: str, actor: str, run_id: str, weakened_gates: list[str] | None = None
) -> dict[str, Any]:
    previous = replay(store.events(release)).candidate
    extra = {"weakened_gates": weakened_gates} if weakened_gates else {}
    e = event(
        "published",
        release,
        actor=actor,
        reason=f"dagster run {run_id}",
        from_version=previous,
        to_version=version,
        **extra,
    )
    return store.append_event(release, e)


def record_shadow_report(
    store: ReleaseStore,
    release: str,
    version: str,
    passed: bool,
    pairs: int,
    metrics: dict[str, Any],
    verdicts: list[dict[str, Any]],
    actor: str = "dagster",
) -> dict[str, Any]:
    """A live shadow report of ``version`` against the champion (the ``shadow_report`` asset): evidence a canary
    start can require. ``reason`` names the gates that did not pass, so a refused canary can say why."""
    check_names(release, version)
    not_passed = [
        f"{v.get('gate')}: {v.get('status')} ({v.get('reason')})" for v in verdicts if v.get("status") != "passed"
    ]
    reason = f"live shadow report over {pairs} pairs: " + ("passed" if passed else "; ".join(not_passed) or "failed")
    e = event(
        "shadow_reported",
        release,
        actor=actor,
        reason=reason,
        from_version=replay(store.events(release)).champion,
        to_version=version,
        passed=bool(passed),
        pairs=int(pairs),
        metrics=metrics,
        verdicts=verdicts,
    )
    return store.append_event(release, e)
