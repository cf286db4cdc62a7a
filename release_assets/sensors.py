"""Sensors: materialize what a code, prompt, data or manifest change made stale; report failed gates.

``code_change_sensor`` watches exactly the files each asset's code version hashes (its ``code_inputs`` metadata)
and each release member's manifest section. A change requests one run for the assets it touched plus everything
downstream, checks included; the run key is the content of the change, so two ticks over the same edit launch one
run. Nothing is reloaded: the sensor reads the files, and the run process loads definitions from disk.
"""

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import dagster as dg

from release_assets import keys
from release_assets.core.hashing import sha256_json
from release_assets.core.settings import Settings
from release_assets.keys import STAGES, triage_job
from release_assets.manifest import ManifestError, ReleaseManifest, family, load_manifest, member_section
from release_assets.release.summary import GateLine
from release_assets.release.watch import scan

SENSOR_INTERVAL_S = 5


def _watched(repo: dg.RepositoryDefinition) -> dict[dg.AssetKey, dict[str, Any]]:
    graph = repo.asset_graph
    out = {}
    for key in graph.get_all_asset_keys():
        meta = graph.get(key).metadata or {}
        inputs = meta.get("code_inputs")
        inputs = getattr(inputs, "value", inputs)
        if inputs:
            out[key] = {
                "files": inputs["files"],
                "release": getattr(meta.get("release"), "value", meta.get("release")),
                "member": getattr(meta.get("member"), "value", meta.get("member")),
            }
    return out


def _sections(manifest: ReleaseManifest) -> dict[str, str]:
    return {m: sha256_json(member_section(manifest, m))[:16] for m in manifest.members}


def detect_changes(
    manifests: dict[str, Path], watched: dict[dg.AssetKey, dict[str, Any]], cursor: dict[str, Any]
) -> tuple[set[dg.AssetKey], dict[str, Any], list[str], list[str]]:
    """Assets whose inputs changed since ``cursor``; the new cursor; what changed (for people); problems."""
    files = sorted({f for w in watched.values() for f in w["files"]} | {str(p) for p in manifests.values()})
    result = scan(files, cursor.get("files", {}))
    sections = dict(cursor.get("sections", {}))
    touched: set[dg.AssetKey] = {k for k, w in watched.items() if result.changed & set(w["files"])}
    reasons = [f"edited {Path(p).name}" for p in sorted(result.changed)]
    problems = [f"watched file is missing: {p}" for p in sorted(result.missing)]
    for release, path in manifests.items():
        if str(path) not in result.changed and release in sections:
            continue
        try:
            current = _sections(load_manifest(path))
        except ManifestError as exc:
            problems.append(str(exc))
            continue
        before = sections.get(release)
        sections[release] = current
        if before is None:
            continue
        edited = {m for m in current.keys() | before.keys() if current.get(m) != before.get(m)}
        reasons += [f"{release}.yaml: members.{m}" for m in sorted(edited)]
        touched |= {k for k, w in watched.items() if w["release"] == release and w["member"] in edited}
    return touched, {"files": result.files, "sections": sections}, reasons, problems


def build_code_change_sensor(manifest_paths: dict[str, Path], job_name: str = "release_all") -> dg.SensorDefinition:
    @dg.sensor(
        name="code_change_sensor",
        description=(
            "Watches every file an asset's code version hashes (builder modules, data files, prompt templates, "
            "knowledge base, golden suite) and each member's manifest section; requests one run for what an edit "
            "made stale plus everything downstream, gates included. Unchanged models are reused, not retrained."
        ),
        minimum_interval_seconds=SENSOR_INTERVAL_S,
        default_status=dg.DefaultSensorStatus.RUNNING,
        job_name=job_name,
    )
    def code_change_sensor(context: dg.SensorEvaluationContext):
        start = time.perf_counter()
        cursor = json.loads(context.cursor) if context.cursor else {}
        repo = context.repository_def
        assert repo is not None, "Dagster evaluates a sensor with its code location's definitions"
        watched = _watched(repo)
        touched, new_cursor, reasons, problems = detect_changes(manifest_paths, watched, cursor)
        elapsed_ms = (time.perf_counter() - start) * 1000
        if problems and cursor:
            # The cursor stays where it was: edits made meanwhile are still changes once the problem is fixed.
            return dg.SkipReason("; ".join(problems) + " (fix it, or reload the code location if it was removed)")
        context.update_cursor(json.dumps(new_cursor, sort_keys=True))
        if problems:
            # A run on a broken manifest or with a watched file gone would only fail; say what to fix instead.
            return dg.SkipReason("; ".join(problems) + " (fix it, or reload the code location if it was removed)")
        if not cursor:
            return dg.SkipReason(f"baseline recorded: {len(new_cursor['files'])} watched files ({elapsed_ms:.0f} ms)")
        if not touched:
            return dg.SkipReason(f"no change in {len(new_cursor['files'])} watched files ({elapsed_ms:.0f} ms)")
        graph = repo.asset_graph
        # Downstream within the release stages: the rollout asset (fed by the canary monitor) and live evidence
        # depend on the release unit but are never part of a release run.
        downstream = dg.AssetSelection.assets(*touched).downstream().resolve(graph)
        stages = tuple(f"_{stage}" for stage in STAGES)
        in_stages = [k for k in downstream if (graph.get(k).group_name or "").endswith(stages)]
        keys = sorted(in_stages, key=lambda k: k.to_user_string())
        change = {k.to_user_string(): None for k in touched}
        run_key = sha256_json(
            {"assets": sorted(change), "files": {p: new_cursor["files"][p][2] for p in sorted(new_cursor["files"])}}
        )[:24]
        return dg.RunRequest(
            run_key=run_key,
            asset_selection=keys,
            tags={"release_assets/trigger": "; ".join(reasons)[:200] or "code change"},
        )

    return code_change_sensor


def _failed_gates(instance: dg.DagsterInstance, run_id: str) -> list[dict[str, Any]]:
    records = instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    # (every record of an event type is a Dagster event)
    lines = [GateLine.from_evaluation(r.dagster_event.event_specific_data) for r in records if r.dagster_event]
    return [
        {"release": g.release, "asset": f"{g.release}/{g.asset}", "check": g.check, "severity": g.severity}
        | {"reason": g.reason}
        for g in lines
        if not g.passed
    ]


def post_webhook(url: str, payload: dict[str, Any], timeout_s: float = 5.0) -> int:
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        return response.status


def summarise_failed_gates(failed: list[dict[str, Any]]) -> str:
    return "\n".join(f"{f['release']}: {f['check']} on {f['asset']} ({f['severity']}): {f['reason']}" for f in failed)


def triaged_assets(manifest: ReleaseManifest) -> set[str]:
    """The gated assets whose failure launches a regression triage: each model, its report, the chain evaluations."""

    out = set()
    for name, member in manifest.members.items():
        if family(member.kind) == "model":
            out.add("/".join(keys.model(manifest.name, name)))
            if member.upstream:  # a model evaluated on a dataset has a report
                out.add("/".join(keys.report(manifest.name, name)))
        elif member.kind == "prompt_chain":
            out.add("/".join(keys.chain_evaluation(manifest.name, name)))
    return out


def triage_requests(failed: list[dict[str, Any]], triaged: dict[str, set[str]], run_id: str) -> list[dg.RunRequest]:
    """One ``<release>_triage`` run per release held by a gate on a model or its chain's evaluation (``triaged``:
    release -> those asset keys): which member moved the metric. Data gates hold the build before anything the
    golden suite reads, so they start none."""

    held = sorted({f["release"] for f in failed if f["asset"] in triaged.get(f["release"], set())})
    return [dg.RunRequest(run_key=f"{run_id}:{r}", job_name=triage_job(r), tags={"held_run": run_id}) for r in held]


def build_failed_gate_sensor(
    triage_jobs: list[Any] | None = None, triaged: dict[str, set[str]] | None = None
) -> dg.SensorDefinition:
    """``triage_jobs``/``triaged``: each release's regression-triage job, and the gated assets whose failure
    launches it."""

    @dg.run_failure_sensor(
        name="failed_gate_sensor",
        description="When a run fails because a blocking gate failed, posts which release, which check and why to "
        "the run's event log and, if RELEASE_ASSETS_GATE_WEBHOOK is set, to that URL as JSON; when the gate is on "
        "a model or a chain evaluation, launches that release's regression triage against the champion.",
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=SENSOR_INTERVAL_S,
        request_jobs=triage_jobs or None,
    )
    def failed_gate_sensor(context: dg.RunFailureSensorContext):
        run_id = context.dagster_run.run_id
        failed = [f for f in _failed_gates(context.instance, run_id) if f["severity"] == "ERROR"]
        if not failed:
            return dg.SkipReason(f"run {run_id} failed, but no gate failed")
        summary = summarise_failed_gates(failed)
        context.instance.report_engine_event(f"held back by gates:\n{summary}", context.dagster_run)
        requests = triage_requests(failed, triaged or {}, run_id)
        url = Settings().gate_webhook  # read at each tick, not cached for the process
        if url:
            # A failing webhook must not fail the tick: a retried tick would write the summary to the run twice.
            payload = {"run_id": run_id, "failed_gates": failed, "text": summary}
            try:
                status = post_webhook(url, payload)
            except OSError as exc:
                context.log.warning(f"could not post failed gates to {url}: {exc}")
            else:
                context.log.info(f"posted {len(failed)} failed gate(s) to the webhook (HTTP {status})")
        return requests or None

    return failed_gate_sensor
