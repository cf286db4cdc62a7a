"""Write one Grafana dashboard per servable release (deploy/grafana/dashboards/<release>.json).

Generated so the dashboards stay alike: every panel is built here from the release name, and a test checks the
committed files equal this script's output. Run ``python deploy/grafana/generate.py`` after changing it (or after
adding a release with a chain or a model). Panels read the recording rules of deploy/prometheus/rules.yml where
one exists (ratios and quantiles over 5 minutes, the same windows the alerts use) and the raw series otherwise.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent / "dashboards"
DATASOURCE = {"type": "prometheus", "uid": "release-assets-prometheus"}  # provisioning/datasources/prometheus.yml
P = "release_assets_serving"
RVV = "release_version_variant"  # the recording rules' aggregation level


def release_kinds(root: Path = ROOT) -> dict[str, str]:
    """``{release: "chain" | "classifier"}`` for every manifest in releases/ with a prompt chain or a model."""
    import yaml

    kinds = {}
    for path in sorted((root / "releases").glob("*.yaml")):
        manifest = yaml.safe_load(path.read_text())
        members = [m.get("kind", "") for m in (manifest.get("members") or {}).values()]
        if "prompt_chain" in members:
            kinds[manifest["name"]] = "chain"
        elif any(kind.endswith("_classifier") for kind in members):
            kinds[manifest["name"]] = "classifier"
    return kinds


def _target(expr: str, legend: str, ref: str) -> dict[str, Any]:
    return {"datasource": DATASOURCE, "expr": expr, "legendFormat": legend, "refId": ref}


def _panel(title: str, description: str, targets: list[tuple[str, str]], unit: str, **extra: Any) -> dict[str, Any]:
    defaults: dict[str, Any] = {"unit": unit, "custom": {"lineInterpolation": extra.pop("interpolation", "linear")}}
    if "thresholds" in extra:
        # A dashed line at the budget: a value on the wrong side of it is what the alert fires on.
        limit, bad_below = extra.pop("thresholds")
        steps = [{"color": "red" if bad_below else "green", "value": None}, {"color": "green" if bad_below else "red"}]
        steps[1]["value"] = limit
        defaults["thresholds"] = {"mode": "absolute", "steps": steps}
        defaults["custom"]["thresholdsStyle"] = {"mode": "dashed"}
    defaults.update(extra)
    refs = "ABCDEFGH"
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": [_target(expr, legend, refs[i]) for i, (expr, legend) in enumerate(targets)],
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {"legend": {"displayMode": "table", "placement": "bottom", "calcs": ["lastNotNull", "max"]}},
    }


def _panels(release: str, kind: str) -> list[dict[str, Any]]:
    r = f'release="{release}"'
    answers = "intents" if kind == "chain" else "labels"
    panels = [
        _panel(
            "Traffic split by variant",
            "Answers per second by variant and version; requests refused before routing (bad token, body) apart.",
            [
                (
                    f'sum by (variant, version) (rate({P}_requests_total{{{r}, variant!="none"}}[$__rate_interval]))',
                    "{{variant}} {{version}}",
                ),
                (f'sum(rate({P}_requests_total{{{r}, variant="none"}}[$__rate_interval]))', "refused before routing"),
            ],
            "reqps",
        ),
        _panel(
            "Rollout step (canary weight)",
            "Percentage of routing keys the flag file sends to the canary now.",
            [(f"release:{P}_canary_weight:max{{{r}}}", "{{canary_version}}")],
            "percent",
            interpolation="stepAfter",
            min=0,
            max=100,
        ),
        _panel(
            "Error rate by variant",
            "5xx answers over answers that reached the model, 5 minutes. Alert: canary above champion + 2 points.",
            [(f"{RVV}:{P}_error_ratio:rate5m{{{r}}}", "{{variant}} {{version}}")],
            "percentunit",
            min=0,
        ),
        _panel(
            "Latency p50 and p99 by variant",
            "Request duration quantiles over 5 minutes. Alert: canary p99 over champion's by 25 ms and 1.5x.",
            [
                (f"{RVV}:{P}_request_duration_seconds:p50_5m{{{r}}}", "p50 {{variant}} {{version}}"),
                (f"{RVV}:{P}_request_duration_seconds:p99_5m{{{r}}}", "p99 {{variant}} {{version}}"),
            ],
            "s",
            min=0,
        ),
        # Business KPIs beside the technical ones: what users reported back (POST /v1/{release}/feedback).
        _panel(
            "Business KPIs from feedback",
            "Of the feedback reporting each outcome, the share that was bad, per variant, over an hour: unresolved, "
            "thumbs down, escalations users did not need. Budgets: the manifest's rollout.budgets.",
            [
                (f"{RVV}:{P}_unresolved_ratio:rate1h{{{r}}}", "unresolved {{variant}} {{version}}"),
                (f"{RVV}:{P}_thumbs_down_ratio:rate1h{{{r}}}", "thumbs down {{variant}} {{version}}"),
                (f"{RVV}:{P}_false_escalation_ratio:rate1h{{{r}}}", "false escalation {{variant}} {{version}}"),
            ],
            "percentunit",
            min=0,
            max=1,
        ),
        _panel(
            "Feedback received",
            "Feedback outcomes per hour by variant: how much the business KPIs rest on (the canary waits for "
            "min_feedback answers a side).",
            [
                (
                    f"sum by (variant, version, outcome) (increase({P}_feedback_total{{{r}}}[1h]))",
                    "{{variant}} {{version}} {{outcome}}",
                )
            ],
            "short",
            min=0,
        ),
    ]
    if kind == "chain":
        panels += [
            _panel(
                "Schema failures",
                "Share of answers with a step output that failed validation, and failures per second by step.",
                [
                    (f"{RVV}:{P}_schema_failure_ratio:rate5m{{{r}}}", "share {{variant}} {{version}}"),
                    (
                        f"sum by (variant, step) (rate({P}_schema_failures_total{{{r}}}[$__rate_interval]))",
                        "per s {{variant}} {{step}}",
                    ),
                ],
                "percentunit",
                min=0,
            ),
            _panel(
                "Escalation and abstain rates",
                "Share of answers handed to a person or abstained, 5 minutes. Alert: canary above champion + 5 points.",
                [
                    (f"{RVV}:{P}_escalation_ratio:rate5m{{{r}}}", "escalate {{variant}} {{version}}"),
                    (f"{RVV}:{P}_abstain_ratio:rate5m{{{r}}}", "abstain {{variant}} {{version}}"),
                ],
                "percentunit",
                min=0,
            ),
        ]
    panels += [
        _panel(
            f"{answers.capitalize()} by variant",
            f"Share of each {answers[:-1]} among a variant's answers, 5 minutes.",
            [(f"release_variant_intent:{P}_intents:share5m{{{r}}}", "{{variant}} {{intent}}")],
            "percentunit",
            min=0,
            max=1,
        ),
        _panel(
            f"Canary {answers} distance from champion",
            "Total variation distance between the canary's and the champion's shares, 5 minutes (budget 0.15).",
            [(f"release:{P}_intent_distance:tvd5m{{{r}}}", "distance")],
            "none",
            thresholds=(0.15, False),
            min=0,
            max=1,
        ),
        _panel(
            "Shadow agreement",
            "Share of shadow answers agreeing with the primary, per field: since the server started, and over "
            "5 minutes. Alert below 0.8.",
            [
                (f"{P}_shadow_agreement_ratio{{{r}}}", "since start {{shadow_version}} {{field}}"),
                (f"release_versions_field:{P}_shadow_agreement:ratio5m{{{r}}}", "5m {{shadow_version}} {{field}}"),
            ],
            "percentunit",
            thresholds=(0.8, True),
            min=0,
            max=1,
        ),
        _panel(
            "Shadow traffic",
            "Shadow requests per second: submitted, dropped (queue full), failed; and the mean latency difference.",
            [
                (
                    f"sum by (shadow_version) (rate({P}_shadow_submitted_total{{{r}}}[$__rate_interval]))",
                    "submitted {{shadow_version}}",
                ),
                (
                    f"sum by (shadow_version) (rate({P}_shadow_dropped_total{{{r}}}[$__rate_interval]))",
                    "dropped {{shadow_version}}",
                ),
                (
                    f"sum by (shadow_version) (rate({P}_shadow_failures_total{{{r}}}[$__rate_interval]))",
                    "failed {{shadow_version}}",
                ),
            ],
            "reqps",
            min=0,
        ),
        _panel(
            "Circuit breaker",
            "1 while a version's circuit breaker is open: serve stops routing users to it.",
            [(f"{RVV}:{P}_circuit_open:max{{{r}}}", "{{variant}} {{version}}")],
            "none",
            interpolation="stepAfter",
            thresholds=(1, False),
            min=0,
            max=1,
        ),
    ]
    for i, panel in enumerate(panels):  # two columns, in reading order
        panel["id"] = i + 1
        panel["gridPos"] = {"h": 8, "w": 12, "x": 12 * (i % 2), "y": 8 * (i // 2)}
    return panels


def dashboard(release: str, kind: str = "chain") -> dict[str, Any]:
    """The dashboard for ``release``; ``kind`` "classifier" leaves out the chain-only panels and says labels."""
    if kind not in ("chain", "classifier"):
        raise ValueError(f"kind: {kind!r}, expected 'chain' or 'classifier'")
    return {
        "uid": f"release-assets-{release}",
        "title": f"release-assets: {release}",
        "description": f"Serving and progressive delivery of the {release} release (champion, canary, shadow).",
        "tags": ["release-assets", "canary", release],
        "editable": False,
        "refresh": "10s",
        "schemaVersion": 39,
        "time": {"from": "now-1h", "to": "now"},
        "timezone": "browser",
        "annotations": {"list": []},
        "templating": {"list": []},
        "panels": _panels(release, kind),
    }


def render(release: str, kind: str) -> str:
    return json.dumps(dashboard(release, kind), indent=2) + "\n"


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    for release, kind in release_kinds().items():
        (OUT / f"{release}.json").write_text(render(release, kind))
        print(f"wrote {OUT / f'{release}.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
