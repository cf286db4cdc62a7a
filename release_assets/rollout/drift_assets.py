"""The ``<release>/live_drift`` asset: a window of live inputs (request spans written by ``serve``) against a
version's reference data, with Evidently's drift preset (evaluation/live_drift.py).

The reference data is the version's own dataset splits, read from its published release unit (``<member>_split``
in the bundle: every row the offline drift gate's profile was built from). The verdict JSON goes to
``<store>/live_drift/<release>/<version>.json``, where the canary monitor reads it (``read_live_drift``); the HTML
report beside it is the evidence. Outside the release job (group ``<release>_rollout``) and with no upstream asset,
like ``shadow_report``: it reads live files.
"""

# No `from __future__ import annotations`: Dagster reads the `config: LiveDriftConfig` annotation when defining.
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg

from release_assets import keys
from release_assets.core.hashing import CodeInputs
from release_assets.core.settings import get_settings
from release_assets.evaluation.report import markdown_table
from release_assets.manifest import ReleaseManifest, family
from release_assets.record.champion import ChampionView
from release_assets.record.ledger import replay
from release_assets.rollout.live_drift import (
    DEFAULT_MIN_ROWS,
    DEFAULT_WINDOW,
    drift_report,
    live_inputs,
    write_live_drift,
)
from release_assets.rollout.live_text import redact_rows

MODULES = [
    "release_assets.rollout.drift_assets",
    "release_assets.rollout.live_drift",
    "release_assets.promotion.drift",
]


class LiveDriftConfig(dg.Config):
    traces: str | None = None  # the trace JSONL `serve` writes; default <store_path>/traces/serve.jsonl
    version: str | None = None  # whose reference data; default the canary in progress, else the champion
    live_version: str | None = None  # only requests this version answered; default every request of the release
    window: int = DEFAULT_WINDOW  # newest requests
    min_rows: int = DEFAULT_MIN_ROWS


def reference_rows(view: Any, manifest: ReleaseManifest) -> list[dict[str, Any]]:
    """Every row of every dataset split in the version's release unit (``view``: a ``ChampionView``)."""
    rows: list[dict[str, Any]] = []
    for name, member in manifest.members.items():
        if family(member.kind) != "dataset":
            continue
        folder = view.member_dir(f"{name}_split", data=True)  # its rows may be held by reference
        if folder is None:
            raise FileNotFoundError(f"{manifest.name} {view.version} has no member {name}_split in its release unit")
        for path in sorted(folder.glob("*.jsonl")):
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path} line {n}: not valid JSON: {exc.msg}") from None
    return rows


def features_markdown(features: list[dict[str, Any]]) -> str:
    rows = [
        [f["feature"], f["test"], "" if f["score"] is None else f["score"], f.get("threshold") or "", f["drifted"]]
        for f in features
    ]
    return markdown_table(["feature", "test", "score (p-value or distance)", "threshold", "drifted"], rows)


def live_drift_asset(manifest: ReleaseManifest, project_root: Path) -> dg.AssetsDefinition:
    """``project_root`` is unused (the store resource locates everything) but keeps the asset factories' shape."""
    release = manifest.name

    @dg.asset(
        key=dg.AssetKey(keys.live_drift(release)),
        group_name=keys.rollout_group(release),
        required_resource_keys={"store"},
        code_version=CodeInputs(MODULES).version(),
        description=(
            f"Live inputs of `{release}` (request spans from `serve`) against a version's reference data, with "
            "Evidently's data drift preset: verdict (drifted, clean, inconclusive), per-feature tests and the HTML "
            "report. Config `version` (default: the canary in progress, else the champion), `traces`, `window`."
        ),
        owners=manifest.owners,
        kinds={"python", "evidently"},
    )
    def live_drift(context: dg.AssetExecutionContext, config: LiveDriftConfig) -> dg.MaterializeResult:
        store = context.resources.store
        releases, root = store.releases(), store.local().root
        state = replay(releases.events(release))
        version = config.version or (state.canary.version if state.canary else None) or state.champion
        traces = Path(config.traces) if config.traces else get_settings().store_path / "traces" / "serve.jsonl"
        live = live_inputs(traces, release, config.live_version, limit=config.window)
        if version is None:
            reason = f"inconclusive: {release} has no champion or canary, so no reference data"
            return dg.MaterializeResult(metadata={"verdict": "inconclusive", "reason": reason, "live_rows": len(live)})
        view = ChampionView(releases, root, release)
        view.version = version  # a cached_property: assigning it points the view at this version, not the champion
        reference = redact_rows(reference_rows(view, manifest))
        result = drift_report(reference, live, root / "live_drift" / release / version, min_rows=config.min_rows)
        times = [r["time"] for r in live if r.get("time")]
        result |= {
            "release": release,
            "version": version,
            "traces": str(traces),
            "live_version": config.live_version,
            "window": config.window,
            "live_from": min(times, default=None),
            "live_to": max(times, default=None),
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        verdict_file = write_live_drift(root, release, version, result)
        context.log.info(f"{release} {version}: live drift {result['verdict']}: {result['reason']}")
        return dg.MaterializeResult(
            metadata={
                "verdict": result["verdict"],
                "reason": result["reason"],
                "version": version,
                "live_rows": result["live_rows"],
                "reference_rows": result["reference_rows"],
                "drifted_share": result["drifted_share"],
                "features": dg.MetadataValue.md(features_markdown(result["features"])),
                "report": dg.MetadataValue.path(result["report"]),
                "verdict_file": dg.MetadataValue.path(str(verdict_file)),
                "traces": dg.MetadataValue.path(str(traces)),
            }
        )

    return live_drift
