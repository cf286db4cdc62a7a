"""Per-version counters of one release, and what they mean between two reads: windows and latency quantiles.

Pure arithmetic on what :mod:`release_assets.rollout.metrics_source` read: counters are cumulative since each
server started; :func:`window` turns two snapshots into the counts in between (server by server, a restarted server
from its restart), and :func:`quantile_ms` estimates latency quantiles from histogram buckets the way PromQL's
histogram_quantile does.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from release_assets.serving.feedback import FEEDBACK_OUTCOMES as FEEDBACK

SCALARS = ("requests", "errors", "schema_failures", "escalations", "abstentions", *FEEDBACK)  # plain counts


@dataclass(frozen=True)
class VersionCounters:
    """Cumulative counts for one version, summed over every scraped server and every variant label."""

    requests: float  # answers that reached the model: status_class 2xx + 5xx
    errors: float  # 5xx answers
    schema_failures: float
    escalations: float
    abstentions: float
    intents: dict[str, float]  # intent (or classifier label) -> answers
    latency_buckets: dict[float, float]  # upper bound in seconds (math.inf for +Inf) -> cumulative count
    circuit_open: bool  # any server reports the breaker open for this version
    reset: bool = False  # set by window(): a counter went down (a server restarted), so this is `after` alone
    # Feedback (POST /v1/{release}/feedback) on the version's answers, by outcome; zero where none came back.
    resolved: float = 0.0
    unresolved: float = 0.0
    thumbs_up: float = 0.0
    thumbs_down: float = 0.0
    escalation_needed: float = 0.0
    escalation_not_needed: float = 0.0


@dataclass(frozen=True)
class Snapshot:
    versions: dict[str, VersionCounters]  # by version label, for one release, summed over servers
    # For the record only: two sources that read the same numbers compare equal whatever they read them from.
    sources: list[str] = field(default_factory=list, compare=False)
    # Per server (host:port, Prometheus' `instance`): when its counters started, and its own counters, so a window
    # subtracts each server's counts from its own and a restarted server counts from its restart only.
    started: dict[str, float] = field(default_factory=dict, compare=False)
    by_server: dict[str, dict[str, VersionCounters]] = field(default_factory=dict, compare=False)
    # Requests of the release refused by admission control (reason -> count, summed over servers): shed before
    # routing, so no version's counters hold them; the analysis reports them beside its verdict.
    shed: dict[str, float] = field(default_factory=dict)

    def counters(self, version: str) -> VersionCounters:
        """The version's counters; all zero when nothing was read for it (no traffic yet, or not exported)."""
        found = self.versions.get(version)
        return found if found is not None else VersionCounters(0.0, 0.0, 0.0, 0.0, 0.0, {}, {}, False)


# Business KPIs, as the rollout's budgets and tests read them: of the feedback answers reporting an outcome either
# way, the share reporting the bad one (KPI -> (bad outcome, good outcome)).
FEEDBACK_KPIS = {
    "unresolved_rate": ("unresolved", "resolved"),
    "thumbs_down_rate": ("thumbs_down", "thumbs_up"),
    "false_escalation_rate": ("escalation_not_needed", "escalation_needed"),
}


def feedback_answers(c: VersionCounters, kpi: str) -> float:
    """The feedback answers a business KPI is a share of (those reporting its outcome either way)."""
    bad, good = FEEDBACK_KPIS[kpi]
    return getattr(c, bad) + getattr(c, good)


def summed(parts: Iterable[dict[str, VersionCounters]]) -> dict[str, VersionCounters]:
    total: dict[str, VersionCounters] = {}
    for part in parts:
        for version, c in part.items():
            t = total.get(version)
            total[version] = c if t is None else _plus(t, c)
    return dict(sorted(total.items()))


def _plus(a: VersionCounters, b: VersionCounters) -> VersionCounters:
    def merged(x: dict, y: dict) -> dict:
        return {k: x.get(k, 0.0) + y.get(k, 0.0) for k in x.keys() | y.keys()}

    return replace(
        a,
        **{k: getattr(a, k) + getattr(b, k) for k in SCALARS},
        intents=merged(a.intents, b.intents),
        latency_buckets=merged(a.latency_buckets, b.latency_buckets),
        circuit_open=a.circuit_open or b.circuit_open,
        reset=a.reset or b.reset,
    )


def _minus(after: dict, before: dict) -> dict:
    return {key: value - before.get(key, 0.0) for key, value in after.items()}


def _went_down(after: VersionCounters, before: VersionCounters) -> bool:
    pairs = [(getattr(after, k), getattr(before, k)) for k in SCALARS]
    pairs += [(after.intents.get(key, 0.0), value) for key, value in before.intents.items()]
    pairs += [(after.latency_buckets.get(key, 0.0), value) for key, value in before.latency_buckets.items()]
    return any(now < then for now, then in pairs)


def window(before: Snapshot | None, after: Snapshot) -> Snapshot:
    """The counts between two snapshots, per version of ``after`` (a version gone from ``after`` is dropped).

    Server by server when both snapshots say when each server's counters started: a server that restarted since
    ``before`` (another start time) or is new counts from its start alone, marked ``reset=True``; the others are
    ``after - before``. Otherwise (no start times) over the sums: a version new since ``before`` counts from its
    start, and a counter that went down means a restart, so that version's window is ``after`` alone. A restart
    whose counts already passed the old ones is invisible that way; the start time is what catches it.
    ``circuit_open`` is a state, not a count: it is ``after``'s."""
    if before is None:
        return after
    shed = _minus(after.shed, before.shed)
    if any(n < 0 for n in shed.values()):  # a server restarted: its shed count began again
        shed = dict(after.shed)
    sources = [*before.sources, *after.sources]
    if after.started and before.started:
        parts = []
        for server, counters in after.by_server.items():
            same = server in before.started and before.started[server] == after.started.get(server)
            if same:
                parts.append(_subtract(Snapshot(before.by_server.get(server, {})), Snapshot(counters)).versions)
            else:
                parts.append({v: replace(c, reset=True) for v, c in counters.items()})
        return Snapshot(summed(parts), sources, after.started, after.by_server, shed)
    return Snapshot(_subtract(before, after).versions, sources, after.started, after.by_server, shed)


def _subtract(before: Snapshot, after: Snapshot) -> Snapshot:
    versions = {}
    for version, now in after.versions.items():
        then = before.versions.get(version)
        if then is None:
            versions[version] = now
        elif _went_down(now, then):
            versions[version] = replace(now, reset=True)
        else:
            versions[version] = replace(
                now,
                **{k: getattr(now, k) - getattr(then, k) for k in SCALARS},
                intents=_minus(now.intents, then.intents),
                latency_buckets=_minus(now.latency_buckets, then.latency_buckets),
                reset=False,
            )
    return Snapshot(versions)


def quantile_ms(buckets: Mapping[float, float], q: float) -> float | None:
    """The ``q`` quantile in milliseconds from cumulative buckets (upper bound in seconds -> count), computed as
    PromQL's histogram_quantile: linear interpolation inside the bucket holding the rank (from 0 for the first
    bucket); a rank in the +Inf bucket answers the highest finite bound. None when there are no observations."""
    if not 0 <= q <= 1:
        raise ValueError(f"q: {q!r} is not a quantile in [0, 1]")
    if not buckets:
        return None
    bounds = sorted(buckets)
    if bounds[-1] != math.inf:
        raise ValueError(f"latency_buckets: no +Inf bucket among {bounds}")
    counts, highest = [], 0.0
    for bound in bounds:  # like Prometheus' ensureMonotonic: a bucket never holds fewer than the one below
        highest = max(highest, buckets[bound])
        counts.append(highest)
    total = counts[-1]
    if total <= 0:
        return None
    if len(bounds) < 2:
        return None  # only +Inf: nothing to interpolate in (PromQL answers NaN)
    rank = q * total
    b = next(i for i, count in enumerate(counts) if count >= rank)
    if b == len(bounds) - 1:
        return bounds[-2] * 1000
    if b == 0 and bounds[0] <= 0:
        return bounds[0] * 1000
    start, end, count = 0.0, bounds[b], counts[b]
    if b > 0:
        start, count, rank = bounds[b - 1], count - counts[b - 1], rank - counts[b - 1]
    if count <= 0:  # only q == 0 over empty low buckets lands here (PromQL: 0/0, NaN); the bucket's start is exact
        return start * 1000
    return (start + (end - start) * (rank / count)) * 1000


def p99_ms(counters: VersionCounters) -> float | None:
    return quantile_ms(counters.latency_buckets, 0.99)


# Snapshots as the ledger's canary events store them (``baseline``): plain JSON, an infinite bucket bound as "+Inf".
def snapshot_to_dict(snapshot: Snapshot) -> dict[str, Any]:
    def counters(c: VersionCounters) -> dict[str, Any]:
        out = asdict(c)
        out["latency_buckets"] = {("+Inf" if math.isinf(le) else repr(le)): n for le, n in c.latency_buckets.items()}
        return out

    return {
        "versions": {v: counters(c) for v, c in snapshot.versions.items()},
        "sources": list(snapshot.sources),
        "started": dict(snapshot.started),
        "by_server": {s: {v: counters(c) for v, c in part.items()} for s, part in snapshot.by_server.items()},
        "shed": dict(snapshot.shed),
    }


def snapshot_from_dict(data: dict[str, Any] | None) -> Snapshot | None:
    if not data:
        return None

    def counters(c: dict[str, Any]) -> VersionCounters:
        buckets = {math.inf if le == "+Inf" else float(le): n for le, n in c["latency_buckets"].items()}
        return VersionCounters(**{**c, "latency_buckets": buckets})

    return Snapshot(
        versions={v: counters(c) for v, c in data["versions"].items()},
        sources=data.get("sources", []),
        started=data.get("started", {}),
        by_server={s: {v: counters(c) for v, c in part.items()} for s, part in data.get("by_server", {}).items()},
        shed=data.get("shed", {}),  # baselines recorded before admission control have none
    )
