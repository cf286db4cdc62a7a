"""End MLflow runs left RUNNING by Dagster runs that are over (killed processes, runs launched by the daemon).

A registry sync (``release/registry_sync.py``) opens one MLflow run per release unit it registers and terminates it
when done; a sync whose process is killed in between leaves it RUNNING in MLflow forever. The next run that opens
the registry sweeps them: :func:`stale_runs` decides (pure, no I/O), :func:`end_stale_runs` asks MLflow and
the Dagster instance and ends what was decided, tagged so nobody mistakes the status for the run's own outcome.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

DAGSTER_RUN_TAG = "dagster_run_id"  # the Dagster run that opened the MLflow run (Registry.log_release_unit)
HOST_TAG = "release_assets.host"
PID_TAG = "release_assets.pid"
ENDED_BY_TAG = "release_assets.ended_by"
ENDED_BY = "stale_run_cleanup"
REASON_TAG = "release_assets.ended_reason"
# With no Dagster record to ask, a run this old whose process is not known to be alive is taken as abandoned.
STALE_AFTER_S = 24 * 3600.0
# A finished Dagster run says how it ended; its MLflow run gets the matching status rather than a blanket FAILED.
_END_STATUS = {"SUCCESS": "FINISHED", "FAILURE": "FAILED", "CANCELED": "KILLED"}


@dataclass(frozen=True)
class OpenRun:
    """A RUNNING MLflow run and what is known about the Dagster run and process behind it."""

    run_id: str
    start_time: float  # seconds since the epoch
    dagster_run_id: str | None = None
    dagster_status: str | None = None  # the Dagster instance's status for it; None when the instance lacks the run
    process_alive: bool | None = None  # None when it cannot be told (no pid tag, or another host)


@dataclass(frozen=True)
class Verdict:
    run_id: str
    status: str  # the MLflow status to end it with
    reason: str


def stale_runs(
    runs: Iterable[OpenRun], *, now: float, max_age_s: float = STALE_AFTER_S, current_dagster_run_id: str | None = None
) -> list[Verdict]:
    """Which RUNNING MLflow runs no live Dagster run will ever end, and with which status."""
    out = []
    for run in runs:
        if run.dagster_run_id is not None and run.dagster_run_id == current_dagster_run_id:
            continue  # this run's own MLflow run
        label = f"dagster run {run.dagster_run_id}" if run.dagster_run_id else "no dagster_run_id tag"
        if run.dagster_status in _END_STATUS:
            # The Dagster run is over whatever its process does: nobody will end this MLflow run any more.
            out.append(Verdict(run.run_id, _END_STATUS[run.dagster_status], f"{label} ended {run.dagster_status}"))
            continue
        if run.process_alive:
            continue
        if run.dagster_status is not None:
            # Dagster still says in progress; a killed in-process run stays STARTED forever, so ask the process.
            if run.process_alive is False:
                out.append(Verdict(run.run_id, "FAILED", f"{label} is {run.dagster_status} but its process is gone"))
            continue
        age = now - run.start_time
        if age > max_age_s:
            why = "its process is gone" if run.process_alive is False else "its process cannot be checked"
            if run.dagster_run_id:
                label += " unknown to this Dagster instance"
            out.append(Verdict(run.run_id, "FAILED", f"{label}, {age / 3600:.0f} h old, {why}"))
    return out


def process_tags() -> dict[str, str]:
    """Tags that let a later sweep tell whether the process running an MLflow run is still there."""
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}


def _process_alive(tags: dict[str, str]) -> bool | None:
    if tags.get(HOST_TAG) != socket.gethostname() or not tags.get(PID_TAG, "").isdigit():
        return None  # another machine (or an untagged run): its processes cannot be seen from here
    try:
        os.kill(int(tags[PID_TAG]), 0)  # signal 0: existence check only
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def end_stale_runs(
    tracking_uri: str,
    experiment_id: str,
    *,
    instance: Any = None,
    current_dagster_run_id: str | None = None,
    max_age_s: float = STALE_AFTER_S,
    now: float | None = None,
) -> list[Verdict]:
    """End the experiment's stale RUNNING runs; ``instance`` (a DagsterInstance) answers for Dagster run status."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    found, token = [], None
    while True:
        page = client.search_runs(
            [experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=500, page_token=token
        )
        found += list(page)
        token = page.token
        if not token:
            break
    statuses: dict[str, str | None] = {}

    def status_of(dagster_run_id: str | None) -> str | None:
        if dagster_run_id is None or instance is None:
            return None
        if dagster_run_id not in statuses:
            record = instance.get_run_by_id(dagster_run_id)
            statuses[dagster_run_id] = record.status.value if record is not None else None
        return statuses[dagster_run_id]

    open_runs = [
        OpenRun(
            run_id=r.info.run_id,
            start_time=(r.info.start_time or 0) / 1000,
            dagster_run_id=r.data.tags.get(DAGSTER_RUN_TAG),
            dagster_status=status_of(r.data.tags.get(DAGSTER_RUN_TAG)),
            process_alive=_process_alive(r.data.tags),
        )
        for r in found
    ]
    verdicts = stale_runs(
        open_runs,
        now=time.time() if now is None else now,
        max_age_s=max_age_s,
        current_dagster_run_id=current_dagster_run_id,
    )
    for v in verdicts:
        client.set_tag(v.run_id, ENDED_BY_TAG, ENDED_BY)
        client.set_tag(v.run_id, REASON_TAG, v.reason)
        client.set_terminated(v.run_id, status=v.status)
    return verdicts


# (tracking URI, experiment id, Dagster run id) already swept in this process: the registry and tracking
# resources both sweep, and a run needs it once.
_SWEPT: set[tuple[str, str, str]] = set()


def sweep_for_run(context: Any, tracking_uri: str, experiment_id: Callable[[], str]) -> None:
    """Sweep once per Dagster run, from a resource's init; never fails the run, only logs what it did or could not.

    ``experiment_id`` is called inside the guard: an unreachable tracking server is the run's problem to report
    where it uses MLflow, not this housekeeping's.
    """
    run_id, log = (context.run.run_id if context.run else None), context.log
    if run_id is None:
        return
    try:
        key = (tracking_uri, experiment_id(), run_id)
        if key in _SWEPT:
            return
        _SWEPT.add(key)
        ended = end_stale_runs(tracking_uri, key[1], instance=context.instance, current_dagster_run_id=run_id)
    except Exception as exc:  # the sweep is housekeeping: a run must not fail because of it
        if log is not None:
            log.warning(f"could not end stale MLflow runs: {type(exc).__name__}: {exc}")
        return
    if ended and log is not None:
        log.info(f"ended {len(ended)} stale MLflow run(s): " + "; ".join(f"{v.run_id} ({v.reason})" for v in ended))
