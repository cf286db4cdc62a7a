"""What the canary monitor reads: per-version counters of one release, from the servers or from Prometheus.

Two sources give the same :class:`Snapshot` for the same scraped numbers: :class:`MetricsEndpointSource` parses
each server's ``/metrics`` text, :class:`PrometheusSource` asks Prometheus with PromQL instant queries. Both feed
the rows they read into one accumulator (:class:`_Rows`), so they cannot drift apart in what they count.

Counters are cumulative since each server started; what they mean between two reads is in
:mod:`release_assets.rollout.counters`.
Requests refused before routing (variant ``none``) never reached a model and are left out of every version's
counters; those admission control shed (503/429) are counted apart, as the snapshot's ``shed``.
Plain Python (urllib, prometheus_client's parser): no Dagster here.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from typing import Any

from release_assets.core.settings import Settings
from release_assets.rollout.counters import FEEDBACK, SCALARS, Snapshot, VersionCounters, summed

PREFIX = "release_assets_serving"
DEFAULT_TIMEOUT_S = 5.0
REFUSED = "none"  # the variant label of requests answered before routing (401/404/413/415...)


class MetricsUnavailable(RuntimeError):
    """A source could not be read; the message names the URL and the reason."""


class _Rows:
    """Accumulates (kind, server, version, labels, value) rows from either source into VersionCounters."""

    def __init__(self) -> None:
        self._servers: dict[str, dict[str, dict]] = {}
        self._started: dict[str, float] = {}
        self._shed: dict[str, float] = {}

    def add(self, kind: str, server: str, version: str, labels: Mapping[str, str], value: float) -> None:
        if kind == "started":
            self._started[server] = value
            return
        if kind == "shed":
            reason = labels.get("reason", "")
            self._shed[reason] = self._shed.get(reason, 0.0) + value
            return
        zero = dict.fromkeys(SCALARS, 0.0) | {"intents": {}, "latency_buckets": {}, "circuit_open": False}
        c = self._servers.setdefault(server, {}).setdefault(version, zero)
        if kind == "requests":
            status = labels.get("status_class")
            if status in ("2xx", "5xx"):  # a 4xx (bad input) never reached the model
                c["requests"] += value
            if status == "5xx":
                c["errors"] += value
        elif kind in ("schema_failures", "escalations", "abstentions"):
            c[kind] += value
        elif kind == "feedback":
            outcome = labels.get("outcome", "")
            if outcome in FEEDBACK:  # an outcome this reader does not know is not guessed into another
                c[outcome] += value
        elif kind == "intents":
            intent = labels.get("intent", "")
            c["intents"][intent] = c["intents"].get(intent, 0.0) + value
        elif kind == "latency":
            bound = float(labels["le"])  # "+Inf" parses to math.inf
            c["latency_buckets"][bound] = c["latency_buckets"].get(bound, 0.0) + value
        elif kind == "circuit_open":
            c["circuit_open"] = c["circuit_open"] or value > 0

    def snapshot(self, sources: list[str]) -> Snapshot:
        by_server = {
            server: {v: VersionCounters(**c) for v, c in sorted(versions.items())}
            for server, versions in sorted(self._servers.items())
        }
        started = dict(sorted(self._started.items()))
        return Snapshot(summed(by_server.values()), sources, started, by_server, dict(sorted(self._shed.items())))


# Row kind -> (series, how PrometheusSource combines servers, grouping label besides version).
_SERIES = {
    "requests": (f"{PREFIX}_requests_total", "sum", "status_class"),
    "schema_failures": (f"{PREFIX}_schema_failures_total", "sum", None),
    "escalations": (f"{PREFIX}_escalations_total", "sum", None),
    "abstentions": (f"{PREFIX}_abstentions_total", "sum", None),
    "intents": (f"{PREFIX}_intents_total", "sum", "intent"),
    "feedback": (f"{PREFIX}_feedback_total", "sum", "outcome"),
    "latency": (f"{PREFIX}_request_duration_seconds_bucket", "sum", "le"),
    "circuit_open": (f"{PREFIX}_circuit_open", "max", None),
    "shed": (f"{PREFIX}_shed_total", "sum", "reason"),
    "started": (f"{PREFIX}_started_seconds", "max", None),
}
_KINDS = {series: kind for kind, (series, _, _) in _SERIES.items()}
_KIND_LABEL = "release_assets_kind"  # tags each sub-query's rows in the combined query


def _fetch(url: str, timeout: float, named: str | None = None) -> bytes:
    """The body at ``url``; an error names ``named`` (default: the URL itself)."""
    named = named or url
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read(500).decode("utf-8", "replace").strip()
        raise MetricsUnavailable(f"{named}: HTTP {exc.code} {exc.reason}: {detail}") from None
    except (urllib.error.URLError, OSError) as exc:  # refused, DNS, timeout (TimeoutError is an OSError)
        reason = getattr(exc, "reason", exc)
        raise MetricsUnavailable(f"{named}: {reason}") from None


def add_text(rows: _Rows, text: str, release: str, server: str) -> None:
    """Add the samples of one server's ``/metrics`` text about ``release`` to ``rows``; ValueError for text that is
    not the Prometheus text format."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        families = list(text_string_to_metric_families(text))
    except Exception as exc:  # the parser raises ValueError and friends on malformed text
        raise ValueError(f"not Prometheus text format ({exc})") from None
    for family in families:
        for sample in family.samples:
            kind, labels = _KINDS.get(sample.name), sample.labels
            if kind == "started":
                rows.add(kind, server, "", labels, sample.value)
            if kind is None or labels.get("release") != release or labels.get("variant") == REFUSED:
                continue
            rows.add(kind, server, labels.get("version", ""), labels, sample.value)


def snapshot_of_text(texts: Mapping[str, str], release: str) -> Snapshot:
    """The snapshot of ``release`` from ``/metrics`` texts already read (server -> text), as
    :class:`MetricsEndpointSource` reads it from the servers."""
    rows = _Rows()
    for server, text in texts.items():
        add_text(rows, text, release, server)
    return rows.snapshot(list(texts))


class MetricsEndpointSource:
    """Reads each server's ``/metrics`` (Prometheus text format) and sums them."""

    def __init__(self, urls: Iterable[str], timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.urls, self.timeout = list(urls), timeout
        if not self.urls:
            raise ValueError("MetricsEndpointSource needs at least one /metrics URL")

    def snapshot(self, release: str) -> Snapshot:
        rows = _Rows()
        for url in self.urls:
            server = urllib.parse.urlsplit(url).netloc  # host:port, what Prometheus calls the instance
            text = _fetch(url, self.timeout).decode("utf-8", "replace")
            try:
                add_text(rows, text, release, server)
            except ValueError as exc:
                raise MetricsUnavailable(f"{url}: {exc}") from None
        return rows.snapshot(self.urls)

    def __repr__(self) -> str:
        return f"MetricsEndpointSource({self.urls!r})"


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def snapshot_query(release: str) -> str:
    """One PromQL expression for every number a Snapshot holds. One query, not seven, so every number comes from
    the same evaluation instant: separate queries could straddle a scrape and mix two windows."""
    selector = f"{{release={_quote(release)},variant!={_quote(REFUSED)}}}"
    parts = []
    for kind, (series, aggregation, extra) in _SERIES.items():
        if kind == "started":  # one per server, no release label
            parts.append(f'label_replace(max by (instance) ({series}), "{_KIND_LABEL}", "{kind}", "", "")')
            continue
        by = ", ".join(["instance", "version", *([extra] if extra else [])])
        inner = f"{aggregation} by ({by}) ({series}{selector})"
        parts.append(f'label_replace({inner}, "{_KIND_LABEL}", "{kind}", "", "")')
    return " or ".join(parts)


class PrometheusSource:
    """The same numbers through Prometheus' HTTP API (``/api/v1/query``), summed over every scraped server.

    Prometheus holds the last scraped value of each counter, so a snapshot is as fresh as the last scrape; a
    series with no sample in the lookback (5 minutes by default) is absent, like a server that is gone."""

    def __init__(self, base_url: str, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.base_url, self.timeout = base_url.rstrip("/"), timeout

    def query(self, expr: str, what: str = "") -> list[dict]:
        """An instant query's vector result (``[{"metric": {...}, "value": [t, "v"]}, ...]``). Errors name the server
        and ``what`` was asked (the URL-encoded query runs to kilobytes: no use in a one-line reason)."""
        url = f"{self.base_url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
        named = f"Prometheus {self.base_url}" + (f" ({what})" if what else "")
        raw = _fetch(url, self.timeout, named)
        try:
            body = json.loads(raw)
        except ValueError:
            raise MetricsUnavailable(f"{named}: answer is not JSON: {raw[:200]!r}") from None
        if not isinstance(body, dict) or body.get("status") != "success":
            error = body.get("error") if isinstance(body, dict) else body
            raise MetricsUnavailable(f"{named}: query failed: {error}")
        data = body.get("data") or {}
        if data.get("resultType") != "vector" or not isinstance(data.get("result"), list):
            raise MetricsUnavailable(f"{named}: expected a vector result, got {data.get('resultType')!r}")
        return data["result"]

    def snapshot(self, release: str) -> Snapshot:
        rows = _Rows()
        what = f"{PREFIX}_* counters of release {release}"
        for item in self.query(snapshot_query(release), what):  # empty: no data yet, i.e. zero counts
            labels = item["metric"]
            server = labels.get("instance", "")
            rows.add(labels[_KIND_LABEL], server, labels.get("version", ""), labels, float(item["value"][1]))
        return rows.snapshot([f"{self.base_url}/api/v1/query"])

    def __repr__(self) -> str:
        return f"PrometheusSource({self.base_url!r})"


def source_from_env(settings: Settings | None = None) -> MetricsEndpointSource | PrometheusSource:
    """PrometheusSource when RELEASE_ASSETS_PROMETHEUS_URL is set, else the servers listed (comma-separated) in
    RELEASE_ASSETS_METRICS_URLS, by default the local ``serve`` at 127.0.0.1:8000. ``settings``: by default read
    afresh at each call (each tick), never the process's cached ones."""
    settings = settings if settings is not None else Settings()
    if settings.prometheus_url:
        return PrometheusSource(settings.prometheus_url)
    return MetricsEndpointSource(settings.metrics_urls)


def source_for(environment: Any, settings: Settings | None = None) -> MetricsEndpointSource | PrometheusSource:
    """The servers of ``environment`` (environments.yaml: its ``prometheus_url`` or ``metrics_urls``), so a canary
    there is judged on its own users' traffic; an environment naming neither reads :func:`source_from_env`'s."""
    if environment is not None and environment.prometheus_url:
        return PrometheusSource(environment.prometheus_url)
    if environment is not None and environment.metrics_urls:
        return MetricsEndpointSource(list(environment.metrics_urls))
    return source_from_env(settings)
