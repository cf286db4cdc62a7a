"""The canary controller: start, abort, and one monitor tick that analyses and acts.

The ledger is the only state. Each step's start (time and metric counters) is an event, so a restarted server,
daemon or CLI resumes at the recorded step; the flag file and the MLflow ``canary`` alias are mirrors, rewritten
from the ledger whenever they differ. Plain Python: the Dagster job, the sensor and the CLI all call these.

A canary runs in one environment of environments.yaml (``Rollout.environment``; None: the first). Its events carry
that ``environment``, like promotions into it, so the ledger replays each environment's canary and champion apart:
the flag file written is that environment's, a rollback restores its champion, and the monitor's promotion at the
last step makes the canary its champion (``rollout/environment_promotion.admit_canary`` checks and copies first).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from release_assets.manifest.rollout import RolloutSpec
from release_assets.record.canary_state import CanaryState
from release_assets.record.ledger import Action, LedgerState, PromotionError, check_servable, event, replay
from release_assets.release.store import ReleaseStore
from release_assets.rollout.aliases import mirror_or_pending
from release_assets.rollout.analysis import Analysis, analyse
from release_assets.rollout.counters import Snapshot, snapshot_from_dict, snapshot_to_dict, window
from release_assets.rollout.environment_promotion import admit_canary
from release_assets.rollout.environments import flags_dir_of, project_environments, store_for
from release_assets.rollout.metrics_source import MetricsUnavailable
from release_assets.serving.flag_source import FlagSource

MONITOR = "canary_monitor"  # the actor of every event the monitor writes on its own


@dataclass
class Rollout:
    """Where a release's canary lives: its ledger (in ``store``), its policy, its flag file, its registry."""

    store: ReleaseStore
    release: str
    spec: RolloutSpec
    flags_dir: Path | FlagSource  # a folder of flag files, or the S3 store's flags/ objects
    registry: Callable[[], Any] | None = None  # makes the MLflow registry client, only when an alias must move
    # Why MLflow's aliases could not follow the last move (MLflow unreachable), else None: the move stands.
    mirror_pending: str | None = None
    # The environment the canary runs in, as its events name it (None: the first environment's events name none);
    # with it, `environments` (environments.yaml, loaded) and the stores of its regions.
    environment: str | None = None
    environments: Any = None
    stores: Callable[[Any, str], ReleaseStore] | None = None

    def state(self) -> LedgerState:
        """The ledger replayed for this rollout's environment."""
        return replay(self.store.events(self.release), self.environment)

    @property
    def where(self) -> str:
        return f" in {self.environment}" if self.environment else ""


@dataclass
class Tick:
    """What one monitor tick saw and did. ``action``: idle, bake, hold, nodata, inconclusive, breach, advanced,
    rolled_back, promoted, paused (undecided in time, waiting for a person), aborted (the champion moved under the
    canary), unavailable (metrics could not be read) or baselined (the first counters of a canary started without
    them were recorded; judging starts at the next tick)."""

    action: str
    canary: CanaryState | None
    analysis: Analysis | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    note: str = ""


def rollout_in(
    store: ReleaseStore,
    release: str,
    spec: RolloutSpec,
    environment: str | None,
    registry: Callable[[], Any] | None = None,
    environments: Any = None,
) -> Rollout:
    """``release``'s canary in ``environment`` of environments.yaml (None: the first): the ledger in ``store`` (the
    first environment's), that environment's flag folder (its ``flags``), and the environments for the aliases."""
    envs = environments if environments is not None else project_environments()
    env = envs.get(environment or envs.first.name)
    if env is None:
        raise PromotionError(
            f"unknown environment {environment!r} (environments.yaml declares: {', '.join(envs.names)})"
        )
    first = env.name == envs.first.name
    flags = flags_dir_of(env, store, first)
    return Rollout(store, release, spec, flags, registry, environment=None if first else env.name, environments=envs)


# -- the mirrors ---------------------------------------------------------------------------------------------------


def sync_flags(r: Rollout, champion: str | None, canary: CanaryState | None) -> bool:
    """Write the flag file the ledger implies; True when it had to change. Only called while a canary runs or just
    after one ended: with no canary, the file belongs to ``release-assets flags`` (shadow settings)."""
    from release_assets.serving.flags import current_flags, flag_document, publish_flags

    if champion is None:
        return False
    document = flag_document(r.release, champion, *((canary.version, canary.percent) if canary else ()))
    if current_flags(r.flags_dir, r.release) == document:
        return False
    publish_flags(r.flags_dir, r.release, document)
    return True


def _mirror(r: Rollout) -> None:
    """MLflow's aliases follow the ledger; when MLflow cannot be reached the move stands (the ledger and the flag
    file are written already) and ``r.mirror_pending`` says why, for the caller to report."""
    if r.registry is not None:
        _, r.mirror_pending = mirror_or_pending(r.store, r.registry, r.release, r.environments)


def _append(r: Rollout, e: dict[str, Any]) -> dict[str, Any]:
    return r.store.append_event(r.release, {**e, "environment": r.environment} if r.environment else e)


def _canary_event(r: Rollout, state, action: Action, reason: str, actor: str = MONITOR, **extra: Any) -> dict[str, Any]:
    """Record ``action`` about the running canary (from the champion to the canary's version) in the ledger."""
    return _append(
        r,
        event(
            action,
            r.release,
            actor=actor,
            reason=reason,
            from_version=state.champion,
            to_version=state.canary.version,
            **extra,
        ),
    )


# -- commands ------------------------------------------------------------------------------------------------------


def start(
    r: Rollout,
    version: str,
    approved_by: str,
    reason: str,
    source: Any = None,
    override_weakened_gates: bool = False,
) -> dict[str, Any]:
    """Start ``version`` as the canary at the first step: ledger, then flag file, then alias."""
    if not approved_by.strip() or not reason.strip():
        raise PromotionError("a canary needs both `approved_by` and `reason`")
    state = r.state()
    if state.canary is not None:
        c = state.canary
        raise PromotionError(
            f"{r.release} already has canary {c.version} at {c.percent}%{r.where}: abort it first (`canary abort`)"
        )
    regions: dict[str, Any] = {}
    if r.environment is not None:  # checked like a promotion there, and copied to its regions for its servers
        copied = admit_canary(
            r.store,
            r.environments,
            r.release,
            version,
            r.environment,
            override_weakened_gates,
            stores=r.stores or store_for,
        )
        regions = {"regions": copied}
    if state.champion is None:
        raise PromotionError(
            f"{r.release} has no champion{r.where} to judge a canary against: promote a first champion"
        )
    if state.champion == version:
        raise PromotionError(f"{r.release} {version} is already the champion{r.where}")
    if r.environment is None:
        check_servable(r.store, r.release, version, override_weakened_gates, action="sent canary traffic")
    if r.spec.require_shadow:
        _require_shadow_report(r, version)
    baseline = None
    if source is not None:
        try:
            baseline = snapshot_to_dict(source.snapshot(r.release))
        except MetricsUnavailable:
            baseline = None  # recorded as such: the first tick that reads metrics takes the baseline (_take_baseline)
    written = _append(
        r,
        event(
            "canary_started",
            r.release,
            actor=approved_by,
            reason=reason,
            from_version=state.champion,
            to_version=version,
            rollout={"steps": r.spec.steps, "bake_s": r.spec.bake_s, "min_requests": r.spec.min_requests},
            baseline=baseline,
            **regions,
            **({"override": {"weakened_gates": True}} if override_weakened_gates else {}),
        ),
    )
    after = r.state()
    if after.canary is None or after.canary.version != version:
        raise PromotionError(f"{r.release} {version}: another command changed the canary at the same time")
    sync_flags(r, after.champion, after.canary)
    _mirror(r)
    return written


def outcome(r: Rollout, version: str) -> tuple[str, dict[str, Any] | None]:
    """Where ``version``'s latest canary in the rollout's environment stands: ``running``, ``paused`` (waiting for a
    person), ``promoted`` (the monitor made it the champion), ``rolled_back``, ``aborted``, or ``none`` (it never
    started there), with the event that says so (None while it runs)."""
    events = [e for e in r.store.events(r.release) if e.get("environment") == r.environment]
    starts = [i for i, e in enumerate(events) if e["action"] == "canary_started" and e["to_version"] == version]
    if not starts:
        return "none", None
    for e in events[starts[-1] + 1 :]:
        if e["action"] == "promoted" and e["to_version"] == version and e.get("via") == MONITOR:
            return "promoted", e
        if e["action"] == "rolled_back" and e.get("scope") == "canary" and e["from_version"] == version:
            return "rolled_back", e
        if e["action"] == "canary_aborted" and e["from_version"] == version:
            return "aborted", e
    c = replay(events, r.environment).canary
    if c is None or c.version != version:
        return "none", None  # its start was void (another canary ran already)
    if c.paused is not None:
        return "paused", next(e for e in reversed(events) if e["action"] == "canary_paused")
    return "running", None


def _require_shadow_report(r: Rollout, version: str) -> None:
    reports = [e for e in r.store.events(r.release) if e["action"] == "shadow_reported" and e["to_version"] == version]
    if not reports:
        raise PromotionError(
            f"{r.release} {version} has no live shadow report and the manifest's rollout requires one "
            "(shadow it with `release-assets flags --shadow`, then materialize the shadow_report asset)"
        )
    if not reports[-1].get("passed"):
        raise PromotionError(f"{r.release} {version}: its latest shadow report failed ({reports[-1].get('reason')})")


def abort(r: Rollout, actor: str, reason: str) -> dict[str, Any]:
    if not actor.strip() or not reason.strip():
        raise PromotionError("aborting a canary needs who and why")
    state = r.state()
    if state.canary is None:
        raise PromotionError(f"{r.release} has no canary in progress{r.where}")
    written = _end(r, state, "canary_aborted", actor, reason)
    return written


def _end(r: Rollout, state, action: Action, actor: str, reason: str, **extra: Any) -> dict[str, Any]:
    """Stop the canary: the ledger first (the truth), then route everyone to the champion, then the alias."""
    c = state.canary
    scope = {"scope": "canary"} if action == "rolled_back" else {}
    # From the canary back to the champion: the reverse of the events about a running canary.
    written = _append(
        r,
        event(
            action,
            r.release,
            actor=actor,
            reason=reason,
            from_version=c.version,
            to_version=state.champion,
            **scope,
            **extra,
        ),
    )
    sync_flags(r, state.champion, None)
    _mirror(r)
    return written


def _promote(r: Rollout, state, analysis: Analysis) -> list[dict[str, Any]]:
    c = state.canary
    # Checked again: the bundle must still verify now, and an override given at start carries over.
    check_servable(r.store, r.release, c.version, c.approval["override_weakened_gates"], action="promoted")
    by, why = c.approval["by"], c.approval["reason"]
    extra = {"via": MONITOR, "approval": c.approval, "analysis": analysis.as_dict()}
    moves = [
        event(
            a,
            r.release,
            actor=by,
            reason=f"{why} (canary passed every step)",
            from_version=state.champion,
            to_version=c.version,
            **extra,
        )
        for a in ("approved", "promoted")
    ]
    written = [_append(r, e) for e in moves]
    after = r.state()
    if after.champion != c.version:
        raise PromotionError(f"{r.release} {c.version} was not promoted: the champion moved at the same time")
    sync_flags(r, after.champion, None)
    _mirror(r)
    return written


def resume(r: Rollout, actor: str, reason: str) -> dict[str, Any]:
    """A person lets a paused canary go on at its step: its bake time, deadline and inconclusive count start again,
    the counters since the step began are kept."""
    if not actor.strip() or not reason.strip():
        raise PromotionError("resuming a canary needs who and why")
    state = r.state()
    c = state.canary
    if c is None or c.paused is None:
        raise PromotionError(f"{r.release} has no paused canary" + (f" ({c.version} is running)" if c else ""))
    return _canary_event(r, state, "canary_resumed", reason, actor=actor)


def _undecided(r: Rollout, state, why: str, analysis: Analysis | None) -> Tick:
    """The step could not decide in time (``inconclusive_limit`` or ``progress_deadline_s``): pause for a person,
    traffic staying where it is, or roll back, as the rollout's ``on_undecided`` says. The ledger records why."""
    c = state.canary
    recorded: dict[str, Any] = {"analysis": analysis.as_dict()} if analysis else {}
    if r.spec.on_undecided == "rollback":
        e = _end(r, state, "rolled_back", MONITOR, why, undecided=True, **recorded)
        return Tick("rolled_back", c, analysis, [e], why)
    e = _canary_event(r, state, "canary_paused", why, **recorded)
    return Tick("paused", r.state().canary, analysis, [e], why)


def _past_deadline(r: Rollout, c: CanaryState, now: datetime | None) -> str | None:
    """Why the step is past its progress deadline, or None."""
    if r.spec.progress_deadline_s is None:
        return None
    elapsed = ((now or datetime.now(UTC)) - datetime.fromisoformat(c.step_started)).total_seconds()
    if elapsed < r.spec.progress_deadline_s:
        return None
    return f"progress deadline: no decision at {c.percent}% within {r.spec.progress_deadline_s:g} s ({elapsed:.0f} s)"


def _take_baseline(r: Rollout, state, snapshot: Snapshot) -> Tick:
    """The canary started while the servers' metrics could not be read, so no counters mark where its traffic
    begins: judging now would count every error since the servers started (an earlier rollout's among them). The
    first tick that reads metrics records them as the baseline and restarts the step's bake time; judging starts
    at the next tick."""
    c = state.canary
    why = (
        f"no baseline was recorded when the canary started (metrics unavailable then): counters taken now, "
        f"the {c.percent}% step is judged from here"
    )
    e = _canary_event(r, state, "canary_baselined", why, baseline=snapshot_to_dict(snapshot))
    return Tick("baselined", r.state().canary, events=[e], note=why)


def analyse_step(
    spec: RolloutSpec, state, snapshot: Snapshot, now: datetime | None = None, drift: dict[str, Any] | None = None
) -> Analysis:
    """The running canary's current step, judged on the counters since the step began. Read-only."""
    c = state.canary
    current = window(snapshot_from_dict(c.baseline), snapshot)
    elapsed = ((now or datetime.now(UTC)) - datetime.fromisoformat(c.step_started)).total_seconds()
    return analyse(
        current.counters(c.version),
        current.counters(state.champion),
        spec,
        c.step,
        elapsed,
        drift,
        shed=sum(current.shed.values()),
    )


def _inconclusive(r: Rollout, state, analysis: Analysis, now: datetime | None) -> Tick:
    """A marginal score: recorded (the count is the ledger's), then undecided once ``inconclusive_limit`` are."""
    c = state.canary
    e = _canary_event(r, state, "canary_inconclusive", analysis.reason, analysis=analysis.as_dict())
    count, limit = c.inconclusive + 1, r.spec.inconclusive_limit
    if limit is not None and count >= limit:
        why = f"inconclusive limit: {count} inconclusive analyses at {c.percent}% (limit {limit}): {analysis.reason}"
        t = _undecided(r, state, why, analysis)
        return Tick(t.action, t.canary, analysis, [e, *t.events], t.note)
    late = _past_deadline(r, c, now)
    if late:
        t = _undecided(r, state, f"{late}; last analysis: {analysis.reason}", analysis)
        return Tick(t.action, t.canary, analysis, [e, *t.events], t.note)
    note = f"{count} inconclusive" + (f" of {limit}" if limit else "") + f": {analysis.reason}"
    return Tick("inconclusive", r.state().canary, analysis, [e], note)


def tick(r: Rollout, source: Any, now: datetime | None = None, drift: dict[str, Any] | None = None) -> Tick:
    """Read the metrics, analyse the current step, act on the decision, and keep the mirrors in line. A move whose
    MLflow aliases could not follow (MLflow unreachable) still happened: its note says so."""
    r.mirror_pending = None
    t = _tick(r, source, now, drift)
    if r.mirror_pending:
        t.note = f"{t.note}; {r.mirror_pending}" if t.note else r.mirror_pending
    return t


def _tick(r: Rollout, source: Any, now: datetime | None, drift: dict[str, Any] | None) -> Tick:
    state = r.state()
    c = state.canary
    if c is None:
        return Tick("idle", None, note=f"{r.release}: no canary in progress{r.where}")
    if c.champion != state.champion:
        why = f"the champion{r.where} moved from {c.champion} to {state.champion} during the canary"
        return Tick("aborted", c, events=[_end(r, state, "canary_aborted", MONITOR, why)], note=why)
    sync_flags(r, state.champion, c)  # a flag file lost or edited by hand comes back to the recorded step
    if c.paused is not None:
        return Tick("paused", c, note=f"paused for a person at {c.percent}% ({c.paused}): `canary resume` or `abort`")
    try:
        snapshot = source.snapshot(r.release)
    except MetricsUnavailable as exc:
        late = _past_deadline(r, c, now)
        if late:
            return _undecided(r, state, f"{late}; metrics unavailable: {exc}", None)
        return Tick("unavailable", c, note=f"metrics unavailable, holding at {c.percent}%: {exc}")
    if c.baseline is None:
        return _take_baseline(r, state, snapshot)
    analysis = analyse_step(r.spec, state, snapshot, now, drift)
    if analysis.decision == "inconclusive":
        return _inconclusive(r, state, analysis, now)
    if analysis.decision in ("bake", "hold", "nodata"):
        late = _past_deadline(r, c, now)
        if late:
            return _undecided(r, state, f"{late}; last analysis: {analysis.reason}", analysis)
        return Tick(analysis.decision, c, analysis, note=analysis.reason)
    if analysis.decision == "breach":
        if c.breaches + 1 < r.spec.failures_to_rollback:
            e = _canary_event(r, state, "canary_breach", analysis.reason, analysis=analysis.as_dict())
            return Tick(
                "breach", c, analysis, [e], f"{c.breaches + 1} of {r.spec.failures_to_rollback}: {analysis.reason}"
            )
        kpis = [asdict(k) for k in analysis.breached]
        failed = [m for m in (analysis.judgement or {}).get("metrics", []) if m["outcome"] == "fail"]
        tests = {"failed_tests": failed} if failed else {}  # the statistical tests that failed, beside the budgets
        e = _end(r, state, "rolled_back", MONITOR, analysis.reason, kpis=kpis, analysis=analysis.as_dict(), **tests)
        return Tick("rolled_back", c, analysis, [e], analysis.reason)
    if analysis.decision == "promote":
        return Tick("promoted", c, analysis, _promote(r, state, analysis), analysis.reason)
    e = _canary_event(
        r,
        state,
        "canary_advanced",
        analysis.reason,
        step=c.step + 1,
        percent=analysis.next_percent,
        baseline=snapshot_to_dict(snapshot),
        analysis=analysis.as_dict(),
    )
    after = r.state()
    sync_flags(r, after.champion, after.canary)
    _mirror(r)
    return Tick("advanced", after.canary, analysis, [e], analysis.reason)
