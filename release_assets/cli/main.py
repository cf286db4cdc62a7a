"""``release-assets``: run releases on the embedded defaults, verify bundles, validate manifests."""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import sys
from pathlib import Path

from release_assets.core.atomic import copy_atomic


def _instance(project_root: Path):
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


def _defs(manifests=None):
    from release_assets.core.settings import get_settings
    from release_assets.definitions import build_defs, resources_for
    from release_assets.manifest import load_each

    settings = get_settings()
    if manifests is None:  # promote/rollback: the jobs need definitions, and a broken manifest must not stop them
        manifests = load_each(settings.releases_path, settings.project_root)[0]
    return build_defs(manifests, settings.project_root, resources_for(settings))


def _run_job(job_name: str, run_config: dict | None = None, manifests=None, defs=None, progress: bool = False):
    """Execute a job in this process; ``progress`` shows each step (and training epochs) on standard error."""
    from contextlib import nullcontext

    from release_assets.cli.progress import showing
    from release_assets.core.settings import get_settings

    settings = get_settings()
    defs = defs or _defs(manifests)
    job = defs.resolve_job_def(job_name)
    if progress and run_config and "loggers" in run_config:  # loggers named in run config are the only ones built
        run_config = {**run_config, "loggers": {**run_config["loggers"], "progress": {}}}
    with _instance(settings.project_root) as instance, showing(job) if progress else nullcontext(job) as shown:
        return shown.execute_in_process(instance=instance, raise_on_error=False, run_config=run_config)


def _failure_messages(result) -> list[str]:
    from release_assets.release.summary import error_text
    from release_assets.resources.artifact_store import store_unavailable

    unusable = store_unavailable(result)
    return ([unusable] if unusable else []) + [
        error_text(e.step_failure_data.error) if e.step_failure_data.error else e.step_key
        for e in result.all_events
        if e.event_type_value == "STEP_FAILURE"
    ]


def _manifests(names: list[str] | None = None) -> tuple[list, bool]:
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


def _quiet(log_level: str = "CRITICAL") -> dict:
    # The refusal is printed once, cleanly, by the command; Dagster's step-failure traceback is noise here.
    return {"loggers": {"console": {"config": {"log_level": log_level}}}}


def _run_op(job: str, op: str, op_config: dict) -> bool:
    """Run a one-op job with typed config; print its refusal (if any) once, without Dagster's traceback."""
    result = _run_job(job, {**_quiet(), "ops": {op: {"config": op_config}}})
    for message in [] if result.success else _failure_messages(result):
        print(message, file=sys.stderr)
    return result.success


def main(argv: list[str] | None = None) -> int:
    import warnings

    from release_assets.cli.canary import add_parser as add_canary_parser
    from release_assets.cli.inspect import cmd_history, cmd_list, cmd_validate, cmd_verify
    from release_assets.cli.promotion import add_parser as add_promotion_parser
    from release_assets.cli.registry import add_parser as add_registry_parser
    from release_assets.cli.release import add_parser as add_release_parser
    from release_assets.cli.serving import cmd_flags, cmd_predict, cmd_serve
    from release_assets.cli.triage import add_parser as add_triage_parser
    from release_assets.cli.watch import add_parser as add_watch_parser

    # Dagster flags data versions as beta; the flag is noise for people running a release.
    warnings.filterwarnings("ignore", message=".*is currently in beta.*")
    parser = argparse.ArgumentParser(prog="release-assets", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    add_release_parser(sub)
    p = sub.add_parser("verify", help="re-hash a release bundle against its manifest, or check ledgers")
    p.add_argument("path", nargs="?", help="bundle.tar.gz or its release folder (whose manifest.json must agree)")
    p.add_argument(
        "--ledger",
        nargs="*",
        metavar="RELEASE",
        help="verify the promotion ledgers' hash chains instead (default: every release)",
    )
    p.set_defaults(fn=cmd_verify)
    p = sub.add_parser("validate", help="validate every release manifest")
    p.set_defaults(fn=cmd_validate)
    add_promotion_parser(sub)
    p = sub.add_parser("history", help="the promotion ledger of a release, as a table")
    p.add_argument("release")
    p.set_defaults(fn=cmd_history)
    p = sub.add_parser("list", help="published versions with their gate verdicts and aliases")
    p.add_argument("release", nargs="*")
    p.set_defaults(fn=cmd_list)
    p = sub.add_parser("predict", help="answer one request with a published release, as JSON")
    p.add_argument("release")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--version", help="a published version (default: the champion)")
    which.add_argument("--alias", choices=["champion", "candidate", "canary"])
    body = p.add_mutually_exclusive_group()
    body.add_argument("--message", help="the customer's message (chains)")
    body.add_argument("--json", metavar="FILE", help="the request as a JSON file, or - for standard input")
    p.add_argument("--image", metavar="PATH", help="a PNG or JPEG photo of a handwritten number to attach")
    p.set_defaults(fn=cmd_predict)
    p = sub.add_parser("serve", help="serve the releases' champions over HTTP (predict, healthz, readyz, metrics)")
    p.add_argument("release", nargs="*", help="release names (default: every releases/*.yaml)")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--traces", metavar="PATH", help="span file (default: <store>/traces/serve.jsonl)")
    p.add_argument("--max-body", type=int, default=64 * 1024, help="largest request body in bytes (default 64 KiB)")
    p.add_argument("--log-level", default="warning", help="uvicorn log level")
    p.set_defaults(fn=cmd_serve)
    p = sub.add_parser("flags", help="route a share of a release's traffic to a canary, or shadow it (flag file)")
    p.add_argument("release")
    p.add_argument("--canary", metavar="VERSION", help="published version to serve to --canary-percent of keys")
    p.add_argument("--canary-percent", type=int, default=0)
    p.add_argument("--shadow", metavar="VERSION", help="published version to mirror --shadow-percent of requests to")
    p.add_argument("--shadow-percent", type=int, default=0)
    p.add_argument("--approved-by", help="who sends users to the canary (required with --canary-percent > 0)")
    p.add_argument("--reason", help="why (recorded in the ledger)")
    p.add_argument("--override-weakened-gates", action="store_true", help="a canary built with weakened gates")
    p.set_defaults(fn=cmd_flags)
    add_canary_parser(sub)
    add_triage_parser(sub)
    add_registry_parser(sub)
    add_watch_parser(sub)
    args = parser.parse_args(argv)
    try:
        if getattr(args, "by", "") is None:
            from release_assets.record.ledger import default_actor

            args.by = default_actor()
        return args.fn(args)
    except _user_errors() as exc:
        # Errors written for people (they name the file, field, line or endpoint): one line, no traceback.
        print(f"FAILED: {exc}", file=sys.stderr)
        return 2
    except (OSError, UnicodeDecodeError, KeyError) as exc:
        # A file named on the command line that is missing or unreadable, a nameless container user: the message
        # names it; a traceback would not help the person who typed the command.
        print(f"FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2


def _user_errors() -> tuple[type[Exception], ...]:
    from pydantic import ValidationError  # an invalid RELEASE_ASSETS_* setting: pydantic names the variable

    from release_assets.chains.spec import ChainSpecError
    from release_assets.datasets.build import DataFileError
    from release_assets.evaluation.golden_inputs import GoldenSuiteError
    from release_assets.manifest import ManifestError
    from release_assets.record.ledger import PromotionError
    from release_assets.release.bundle import BundleError
    from release_assets.release.store import LedgerError, StoreError
    from release_assets.rollout.environments import EnvironmentsError
    from release_assets.serving.flags import FlagError
    from release_assets.serving.loader import StepFailed
    from release_assets.serving.requests import RequestError

    return (
        ValidationError,
        RequestError,
        StepFailed,
        FlagError,
        json.JSONDecodeError,
        ManifestError,
        StoreError,
        LedgerError,
        BundleError,
        PromotionError,
        ChainSpecError,
        GoldenSuiteError,
        DataFileError,
        EnvironmentsError,
    )


if __name__ == "__main__":
    sys.exit(main())
