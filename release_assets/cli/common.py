"""What every ``release-assets`` command shares: the Dagster instance, the definitions, running a job in this
process, the manifests a person named, and the release store. The command modules import from here; ``main.py``
imports them, so nothing here imports a command module."""

from __future__ import annotations

import fcntl
import os
import sys
from pathlib import Path

from release_assets.core.atomic import copy_atomic


def dagster_instance(project_root: Path):
    """The Dagster instance under ``$DAGSTER_HOME`` (default ``.dagster/``, seeded from the top dagster.yaml)."""
    import dagster as dg

    home = Path(os.environ.setdefault("DAGSTER_HOME", str(project_root / ".dagster")))
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    # Concurrent first runs (two CI jobs on a fresh clone) would each create the sqlite schemas and stamp their
    # alembic revision, leaving tables with two heads that no later run can open: one process at a time opens it.
    with open(home / ".instance.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not config.exists() and (project_root / "dagster.yaml").exists():
                copy_atomic(project_root / "dagster.yaml", config)
            return dg.DagsterInstance.get()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def definitions(manifests=None):
    from release_assets.core.settings import get_settings
    from release_assets.definitions import build_defs, project_definitions, resources_for
    from release_assets.manifest import load_each

    settings = get_settings()
    if manifests is None:  # promote/rollback: the jobs need definitions, and a broken manifest must not stop them
        manifests = load_each(settings.releases_path, settings.project_root)[0]
    return build_defs(manifests, settings.project_root, resources_for(settings), project_definitions(settings))


def run_job(job_name: str, run_config: dict | None = None, manifests=None, defs=None, progress: bool = False):
    """Execute a job in this process; ``progress`` shows each step (and training epochs) on standard error."""
    from contextlib import nullcontext

    from release_assets.cli.progress import showing
    from release_assets.core.settings import get_settings

    settings = get_settings()
    defs = defs or definitions(manifests)
    job = defs.resolve_job_def(job_name)
    if progress and run_config and "loggers" in run_config:  # loggers named in run config are the only ones built
        run_config = {**run_config, "loggers": {**run_config["loggers"], "progress": {}}}
    with dagster_instance(settings.project_root) as instance, showing(job) if progress else nullcontext(job) as shown:
        return shown.execute_in_process(instance=instance, raise_on_error=False, run_config=run_config)


def failure_messages(result) -> list[str]:
    from release_assets.release.summary import error_text
    from release_assets.resources.artifact_store import store_unavailable

    unusable = store_unavailable(result)
    return ([unusable] if unusable else []) + [
        error_text(e.step_failure_data.error) if e.step_failure_data.error else e.step_key
        for e in result.all_events
        if e.event_type_value == "STEP_FAILURE"
    ]


def manifests_named(names: list[str] | None = None) -> tuple[list, bool]:
    """The manifests asked for (default: all that load), and whether any failed to load. A broken manifest is
    reported on one line and does not stop the others; asking for it by name is an error."""
    from release_assets.core.settings import get_settings
    from release_assets.manifest import ManifestError, load_each

    settings = get_settings()
    manifests, errors = load_each(settings.releases_path, settings.project_root)
    for error in errors:
        print(f"FAILED: {error}", file=sys.stderr)
    if not names:
        return manifests, bool(errors)
    known = {m.name: m for m in manifests}
    missing = [n for n in names if n not in known]
    if missing:
        broken = {Path(e.split(":", 1)[0]).stem for e in errors}
        why = "cannot be loaded (see above)" if set(missing) <= broken else f"not found; known: {sorted(known)}"
        raise ManifestError(f"release(s) {', '.join(missing)} {why}")
    return [known[n] for n in names], False


def quiet_run_config(log_level: str = "CRITICAL") -> dict:
    # The refusal is printed once, cleanly, by the command; Dagster's step-failure traceback is noise here.
    return {"loggers": {"console": {"config": {"log_level": log_level}}}}


def run_op(job: str, op: str, op_config: dict) -> bool:
    """Run a one-op job with typed config; print its refusal (if any) once, without Dagster's traceback."""
    result = run_job(job, {**quiet_run_config(), "ops": {op: {"config": op_config}}})
    for message in [] if result.success else failure_messages(result):
        print(message, file=sys.stderr)
    return result.success


def release_store():
    from release_assets.core.settings import get_settings
    from release_assets.definitions import resources_for

    store = resources_for(get_settings())["store"]
    store.preflight()  # an unreachable store is one line naming the endpoint, not a botocore traceback
    return store.releases()
