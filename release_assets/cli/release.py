"""``release-assets release``: materialize, gate and publish releases through ``release_assets.api.release``, or
say in well under a second that there is nothing to do (``release/input_stamp.py``); print each release's gates,
and a triage when gates hold one."""

from __future__ import annotations

import argparse
import sys
import time

from release_assets.cli.common import OK, REFUSED, print_json, run_job
from release_assets.core.extras import not_installed


def _nothing_to_run(args: argparse.Namespace) -> dict[str, str] | None:
    """Release name -> published version when every release asked for is unchanged since the run that published
    it: the answer ``api.release`` gives, proven here without importing Dagster (the API loads it), so nothing to
    do costs a tenth of a second. None whenever anything else could happen (an option that forces a run, a
    manifest that does not load, another store, a base ref that does not resolve): the API then decides."""
    from release_assets.core.git_base import BaseRefError, configured_base_ref, resolve_base
    from release_assets.core.settings import get_settings
    from release_assets.manifest import load_each
    from release_assets.release.input_stamp import unchanged

    settings = get_settings()
    if args.force or args.set or args.summary or args.no_publish or args.json:
        return None
    if not settings.publish or settings.store_backend != "local":
        return None
    manifests, errors = load_each(settings.releases_path, settings.project_root)
    known = {m.name: m for m in manifests}
    if errors or not manifests or any(name not in known for name in args.release):
        return None
    try:
        resolve_base(settings.project_root, configured_base_ref())
    except BaseRefError:
        return None
    done = {}
    for manifest in [known[name] for name in args.release] if args.release else manifests:
        version = unchanged(settings.store_path, manifest, settings.tracking_uri)
        if version is None:
            return None
        done[manifest.name] = version
    return done


def _print_unchanged(done: dict[str, str]) -> None:
    for name, version in done.items():
        print(f"== {name}: unchanged (inputs identical to the run that published it; nothing to run)")
        print(f"   version: {version}")


def cmd_release(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    done = _nothing_to_run(args)
    if done is not None:
        _print_unchanged(done)
        print(f"nothing to run ({time.perf_counter() - start:.2f} s; --force runs anyway)")
        return OK
    from release_assets import api
    from release_assets.cli.progress import showing

    run = api.release(
        args.release or None,
        overrides=args.set,
        publish=False if args.no_publish else None,
        # Overrides, the markdown summary and an evaluation always run: they are about this build.
        force=args.force or bool(args.summary),
        log_level=args.log_level,
        display=None if args.quiet else showing,
    )
    code = OK if run.ok else REFUSED
    if args.json:
        problems = [f"{s.release}: {api.release_status(s)}" for s in run.releases if not s.published_ok]
        return print_json(run.as_dict(), code, "; ".join(problems + run.manifest_errors))
    for error in run.manifest_errors:
        print(f"FAILED: {error}", file=sys.stderr)
    _print_unchanged(run.unchanged)
    if not run.releases:
        print(f"nothing to run ({run.seconds:.2f} s; --force runs anyway)")
        return code
    for s in run.releases:
        print(s.render())
    print(f"run {run.run_id} finished in {run.seconds:.1f} s")
    if not run.publish:
        why = "--no-publish" if args.no_publish else "RELEASE_ASSETS_PUBLISH=false"
        print(f"evaluated only ({why}): nothing was published and no ledger event was written")
    if any(s.published_ok and s.published for s in run.releases) and not_installed("mlflow") is None:
        # A new version, which MLflow does not have yet (without the mlflow extra there is no registry to tell of).
        # Off the release's critical path (importing MLflow and opening its database cost seconds).
        print("MLflow registration follows: `release-assets registry sync`, or the registry_sync_sensor")
    if run.held_back:
        from release_assets.cli.triage import print_held_triage

        print_held_triage(run.manifests, run.releases, lambda job, config: run_job(job, config, defs=run.definitions))
    if args.summary == "markdown":
        from release_assets.release.markdown import write_summary

        evaluations = run.result.get_asset_check_evaluations()
        write_summary(run.releases, evaluations, api.release_store(), args.summary_file)
    return code


def add_parser(sub) -> None:
    p = sub.add_parser("release", help="materialize, gate and publish releases (default: all)")
    p.add_argument("release", nargs="*", help="release names (default: every releases/*.yaml)")
    # The summary below reports every gate and step failure; Dagster's own tracebacks are opt-in.
    p.add_argument("--log-level", default="CRITICAL", help="Dagster console log level (default: CRITICAL)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="RELEASE:PATH=VALUE",
        help="override a manifest field for this run, e.g. iris:members.classifier.params.C=0.0001",
    )
    p.add_argument(
        "--summary",
        choices=["markdown"],
        help="also write the gate table (candidate against champion) as GitHub markdown: to --summary-file, else "
        "appended to $GITHUB_STEP_SUMMARY, else printed; with $GITHUB_OUTPUT set, <release>_version outputs too",
    )
    p.add_argument("--summary-file", metavar="PATH", help="where --summary writes the table")
    p.add_argument("--quiet", action="store_true", help="no progress lines on standard error (steps, epochs)")
    p.add_argument(
        "--no-publish",
        action="store_true",
        help="gate and report only (a pull request's build): publish nothing, write no ledger event; also "
        "RELEASE_ASSETS_PUBLISH=false",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="run even when every input equals the run that published the release (default: say `unchanged`)",
    )
    p.add_argument("--json", action="store_true", help="print each release's outcome and gates as one JSON object")
    p.set_defaults(fn=cmd_release)
