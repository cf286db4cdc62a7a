"""The canary in Dagster: the ``<release>/rollout`` asset, its budget check, and the ``canary_monitor`` sensor.

Each tick reads every server's counters once per release (``/metrics``, or PromQL when
``RELEASE_ASSETS_PROMETHEUS_URL`` is set), lets :func:`release_assets.rollout.canary.tick` decide and act, and
records the analysis on the rollout asset: an observation (step, weight, KPIs against budgets, plotted by the UI)
and, for every judged step, a ``canary_budgets`` check evaluation that fails on a breach. A breach, a rollback and
an open circuit breaker are posted to ``RELEASE_ASSETS_GATE_WEBHOOK``, like a failed gate.

Every environment of environments.yaml can run a canary: the first is ticked always (its champion's circuit is
watched with or without a canary), a later one while a canary runs there, on its own servers
(``prometheus_url`` / ``metrics_urls``), and the asset's metadata names the environment.
"""

import json
from typing import Any

import dagster as dg

from release_assets import keys
from release_assets.core.hashing import CodeInputs
from release_assets.core.settings import Settings, get_settings
from release_assets.evaluation.report import markdown_table
from release_assets.manifest import ReleaseManifest
from release_assets.record.ledger import PromotionError, replay
from release_assets.release.store import StoreError
from release_assets.rollout.canary import Tick, analyse_step, rollout_in, tick
from release_assets.rollout.canary_plot import canary_plot
from release_assets.rollout.environments import Environments, EnvironmentsError, project_environments
from release_assets.rollout.live_drift import read_live_drift
from release_assets.rollout.metrics_source import MetricsUnavailable, source_for
from release_assets.sensors import post_webhook

MONITOR_INTERVAL_S = 10
ROLLOUT_MODULES = [
    "release_assets.rollout.analysis",
    "release_assets.rollout.judgement",
    "release_assets.rollout.sequential",
    "release_assets.rollout.canary",
    "release_assets.manifest.rollout",
]
CHECK = "canary_budgets"


class _Fixed:
    """One snapshot read for the tick and the circuit alert, so both judge the same numbers."""

    def __init__(self, snapshot: Any) -> None:
        self._snapshot = snapshot

    def snapshot(self, release: str) -> Any:
        return self._snapshot


def rollout_specs(manifest: ReleaseManifest) -> tuple[dg.AssetSpec, dg.AssetChecksDefinition]:
    """The rollout asset of a release with a ``rollout:`` section: its history is the canary's analyses."""
    rollout = manifest.rollout
    assert rollout is not None, "built only for a release with a rollout section"
    key = dg.AssetKey(keys.rollout(manifest.name))
    spec = dg.AssetSpec(
        key,
        deps=[dg.AssetKey(keys.release_unit(manifest.name))],
        group_name=keys.rollout_group(manifest.name),
        description=(
            f"The `{manifest.name}` canary: every analysis of the `canary_monitor` sensor (step, weight, live KPIs "
            f"of canary and champion against the budgets in `releases/{manifest.name}.yaml`), and every start, "
            "advance, rollback and promotion."
        ),
        owners=manifest.owners,
        kinds={"prometheus"},
        # What judges the canary: a change shows in the UI as a new code version of the rollout asset.
        code_version=CodeInputs(ROLLOUT_MODULES).version(),
    )

    @dg.asset_check(
        asset=key,
        name=CHECK,
        required_resource_keys={"store"},
        description="The running canary's live KPIs against its budgets, judged now without acting (the monitor "
        "acts); passes when no canary runs.",
    )
    def canary_budgets(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        state = replay(context.resources.store.releases().events(manifest.name))
        if state.canary is None:
            return dg.AssetCheckResult(passed=True, description="no canary in progress", metadata={"decision": "idle"})
        analysis = analyse_step(rollout, state, source_for(None).snapshot(manifest.name))
        return check_evaluation(manifest.name, analysis, state.canary.version, evaluation=False)

    return spec, canary_budgets


def kpi_table(analysis: Any) -> str:
    def show(v: float | None) -> str:
        return "" if v is None else f"{v:.4g}"

    verdict = {True: "BREACH", False: "ok", None: "not judged"}
    rows = [[k.name, show(k.canary), show(k.champion), k.budget, verdict[k.breached]] for k in analysis.kpis]
    return markdown_table(["kpi", "canary", "champion", "budget", "verdict"], rows)


def analysis_metadata(analysis: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "decision": analysis.decision,
        "reason": analysis.reason,
        "step": analysis.step,
        "weight_percent": analysis.percent,
        "canary_requests": float(analysis.canary_requests),
        "champion_requests": float(analysis.champion_requests),
        "elapsed_s": float(analysis.elapsed_s),
        "kpis": dg.MetadataValue.md(kpi_table(analysis)),
    }
    tests = getattr(analysis, "judgement", None)
    if tests:  # the statistical judgement: its verdict, score and each metric's test
        rows = [[m["name"], m["outcome"], "yes" if m["critical"] else "", m["reason"]] for m in tests["metrics"]]
        meta["statistical_verdict"] = tests["verdict"]
        if tests["score"] is not None:
            meta["statistical_score"] = float(tests["score"])
        meta["statistical_tests"] = dg.MetadataValue.md(markdown_table(["metric", "outcome", "critical", "test"], rows))
    for k in analysis.kpis:  # numbers, so the asset page plots each KPI of both variants over the rollout
        for side in ("canary", "champion"):
            value = getattr(k, side)
            if value is not None:
                meta[f"{side}_{k.name}"] = float(value)
    return meta


def check_evaluation(
    release: str, analysis: Any, version: str, evaluation: bool = True, plot: dict[str, Any] | None = None
):
    """A judged step as the ``canary_budgets`` check: an evaluation (sensor) or a result (executed check)."""
    passed = analysis.decision != "breach"
    meta = {**analysis_metadata(analysis), "canary_version": version, **(plot or {})}
    severity = dg.AssetCheckSeverity.ERROR if not passed else dg.AssetCheckSeverity.WARN
    if evaluation:
        return dg.AssetCheckEvaluation(
            asset_key=dg.AssetKey(keys.rollout(release)),
            check_name=CHECK,
            passed=passed,
            metadata=meta,
            severity=severity,
            description=analysis.reason,
        )
    return dg.AssetCheckResult(passed=passed, metadata=meta, severity=severity, description=analysis.reason)


def tick_events(
    release: str,
    t: Any,
    history: list[dict[str, Any]] | None = None,
    spec: Any = None,
    environment: str | None = None,
) -> list[Any]:
    """What the UI shows of one tick: an observation always, a check evaluation when a step was judged. When the
    tick recorded a move, ``history`` (the ledger's events of the canary's environment, that move included) and
    ``spec`` (the rollout policy) add the canary's KPI series so far as a plot (``plot_canary_kpis``) to both.
    ``environment``: where the canary runs, named in the metadata."""
    meta: dict[str, Any] = {"action": t.action, "note": t.note}
    if environment is not None:
        meta["environment"] = environment
    if t.canary is not None:
        meta |= {"canary_version": t.canary.version, "champion": t.canary.champion or "none"}
    if t.analysis is not None:
        meta |= analysis_metadata(t.analysis)
    drawn = canary_plot(release, history, spec) if t.events and history and spec is not None else None
    plot = {drawn.key: dg.MetadataValue.md(drawn.markdown())} if drawn else {}
    events: list[Any] = [dg.AssetObservation(asset_key=dg.AssetKey(keys.rollout(release)), metadata=meta | plot)]
    if t.analysis is not None and t.analysis.decision in ("breach", "advance", "promote"):
        events.append(check_evaluation(release, t.analysis, t.canary.version, plot=plot))
    return events


def _alert(context: dg.SensorEvaluationContext, payload: dict[str, Any]) -> None:
    context.log.warning(payload["text"])
    url = Settings().gate_webhook  # read at each alert, as the metrics source is at each tick
    if url:
        try:  # a failing webhook must not stop the monitor from acting on the next release
            post_webhook(url, payload)
        except OSError as exc:
            context.log.warning(f"could not post to {url}: {exc}")


def build_canary_monitor(manifests: list[ReleaseManifest]) -> dg.SensorDefinition:
    policies = {m.name: m.rollout for m in manifests if m.rollout is not None}

    @dg.sensor(
        name="canary_monitor",
        description=(
            "Judges each running canary on live KPIs against the champion in the same window (servers' /metrics, "
            "or Prometheus when RELEASE_ASSETS_PROMETHEUS_URL is set): advances after the bake time, holds on too "
            "little traffic, rolls back on a breach, promotes at 100%. Alerts on an open circuit breaker."
        ),
        minimum_interval_seconds=MONITOR_INTERVAL_S,
        default_status=dg.DefaultSensorStatus.RUNNING,
        required_resource_keys={"store", "registry"},
    )
    def canary_monitor(context: dg.SensorEvaluationContext):
        cursor = json.loads(context.cursor) if context.cursor else {}
        events, notes, open_circuits = [], [], {}
        try:
            envs = project_environments()
        except EnvironmentsError as exc:
            context.update_cursor(json.dumps({"open": cursor.get("open", {})}, sort_keys=True))
            return dg.SensorResult(skip_reason=f"no canary judged: {exc}")
        for release, policy in sorted(policies.items()):
            for environment in _environments_to_tick(context, release, envs):
                key = release if environment is None else f"{release}@{environment}"  # circuits alerted, per place
                t, circuits = run_tick(context, release, policy, cursor.get("open", {}).get(key, []), environment, envs)
                open_circuits[key] = circuits
                where = f" in {environment}" if environment else ""
                notes.append(f"{release}{where}: {t.action}" + (f" ({t.note})" if t.note else ""))
                history = _history(context, release, environment) if t.events else None
                events += tick_events(release, t, history, policy, environment or envs.first.name)
        context.update_cursor(json.dumps({"open": open_circuits}, sort_keys=True))
        return dg.SensorResult(asset_events=events, skip_reason="; ".join(notes) or "no release has a rollout")

    return canary_monitor


def _environments_to_tick(context: Any, release: str, envs: Environments) -> list[str | None]:
    """The first environment (None) always; each later one while a canary of ``release`` runs there."""
    try:
        events = context.resources.store.releases().events(release)
    except (StoreError, PromotionError, OSError):
        return [None]  # run_tick reports the unreadable ledger
    return [None, *(e.name for e in envs.environments[1:] if replay(events, e.name).canary is not None)]


def run_tick(
    context: Any,
    release: str,
    policy: Any,
    alerted: list[str],
    environment: str | None = None,
    envs: Environments | None = None,
) -> tuple[Any, list[str]]:
    """One release's tick in ``environment`` (None: the first); returns it and the versions whose circuit is open
    now (alerted once per opening)."""
    store = context.resources.store.releases()
    try:
        rollout = rollout_in(store, release, policy, environment, context.resources.registry.get, envs)
        state = rollout.state()
    except (StoreError, PromotionError, EnvironmentsError) as exc:
        return Tick("error", None, note=str(exc)), alerted
    try:
        snapshot = source_for(rollout.environments.get(environment or rollout.environments.first.name)).snapshot(
            release
        )
    except MetricsUnavailable as exc:
        # No server to read is normal while nothing is rolling out; during a canary the step simply waits.
        return Tick("unavailable" if state.canary else "idle", state.canary, note=str(exc)), alerted
    # Checked with or without a canary: a failing champion is the alert that matters most.
    circuits = sorted(v for v, c in snapshot.versions.items() if c.circuit_open)
    for version in sorted(set(circuits) - set(alerted)):
        role = "champion" if version == state.champion else "canary" if state.canary else "version"
        text = (
            f"{release}{rollout.where}: circuit breaker open for the {role} {version} "
            "(serve routes a canary's users away)"
        )
        _alert(context, {"release": release, "event": "circuit_open", "version": version, "text": text})
    if state.canary is None:
        return Tick("idle", None, note="no canary in progress"), circuits
    try:
        t = tick(rollout, _Fixed(snapshot), drift=_live_drift(release, state.canary.version))
    except (StoreError, PromotionError) as exc:
        return Tick("error", state.canary, note=str(exc)), circuits
    if t.action in ("breach", "rolled_back", "paused") and t.canary is not None:  # (a breach is always of a canary)
        payload = {"release": release, "event": t.action, "canary_version": t.canary.version}
        payload["environment"] = environment or rollout.environments.first.name
        kpis = [k.__dict__ for k in t.analysis.breached] if t.analysis else []
        text = f"{release} canary {t.canary.version}{rollout.where} {t.action}: {t.note}"
        _alert(context, {**payload, "kpis": kpis, "text": text})
    return t, circuits


def _history(
    context: dg.SensorEvaluationContext, release: str, environment: str | None = None
) -> list[dict[str, Any]] | None:
    """The release's ledger after a tick that recorded a move, the canary's environment's events only: what the
    canary's KPI plot is drawn from."""
    try:
        return [e for e in context.resources.store.releases().events(release) if e.get("environment") == environment]
    except (StoreError, PromotionError, OSError) as exc:
        context.log.warning(f"{release}: canary plot not drawn, the ledger could not be read: {exc}")
        return None


def _live_drift(release: str, version: str) -> dict[str, Any] | None:
    """The latest live-drift verdict for the canary, when the live_drift asset has produced one."""

    return read_live_drift(get_settings().store_path, release, version)
