"""``release-assets release``: materialize, gate and publish releases, or say in well under a second that there is
nothing to do (``release/input_stamp.py``); print each release's gates, and a triage when gates hold one."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from release_assets.cli.common import definitions, manifests_named, run_job
from release_assets.core.extras import not_installed


def _unchanged(manifests: list, settings) -> dict[str, str]:
    """Release name -> published version, for each release whose inputs equal those of the run that published it
    (``release/input_stamp.py``): proven without loading Dagster or MLflow, so nothing to do costs well under a
    second. Only the local store keeps stamps."""
    from release_assets.release.input_stamp import unchanged

    if settings.store_backend != "local":
        return {}
    found = {m.name: unchanged(settings.store_path, m, settings.tracking_uri) for m in manifests}
    return {name: version for name, version in found.items() if version}


def stamp_published(defs, summaries: list, manifests: list, settings) -> None:
    """After a run: remember the inputs of every release it published (or found published), for ``_unchanged``."""
    from release_assets.release.input_stamp import record

    if settings.store_backend != "local":
        return
    files: dict[str, set[Path]] = {}
    for spec in defs.resolve_all_asset_specs():
        watched = (spec.metadata.get("code_inputs") or {}).get("files", [])
        files.setdefault(spec.key.path[0], set()).update(Path(f) for f in watched)
    by_name = {m.name: m for m in manifests}
    for s in summaries:
        # A build evaluated without publishing left nothing to be "unchanged" from: the next run must publish.
        if s.published_ok and not s.evaluated_only and s.release in by_name:
            record(
                settings.store_path,
                by_name[s.release],
                s.version,
                sorted(files.get(s.release, ())),
                settings.tracking_uri,
            )


def cmd_release(args: argparse.Namespace) -> int:
    from release_assets.core.settings import get_settings

    start = time.perf_counter()
    manifests, broken = manifests_named(args.release)
    if args.set:
        from release_assets.manifest.overrides import apply_release_overrides

        manifests = apply_release_overrides(manifests, args.set)
    if not manifests:
        return 2
    settings = get_settings()
    from release_assets.core.git_base import BaseRefError, configured_base_ref, resolve_base

    try:  # before any work: a base ref that does not resolve would only fail the release units after training
        resolve_base(settings.project_root, configured_base_ref())
    except BaseRefError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 2
    # Pull requests gate and report, never publish: the flag, or RELEASE_ASSETS_PUBLISH=false in the environment.
    publish = settings.publish and not args.no_publish
    # Overrides, the markdown summary and an evaluation always run: they are about this build, not the stored one.
    fresh = args.force or args.set or args.summary or not publish
    done = {} if fresh else _unchanged(manifests, settings)
    for name, version in done.items():
        print(f"== {name}: unchanged (inputs identical to the run that published it; nothing to run)")
        print(f"   version: {version}")
    todo = [m for m in manifests if m.name not in done]
    if not todo:
        print(f"nothing to run ({time.perf_counter() - start:.2f} s; --force runs anyway)")
        return 1 if broken else 0
    from release_assets.definitions import resources_for
    from release_assets.release.summary import summarise_run
    from release_assets.resources.artifact_store import store_unavailable

    # Before any work: an unreachable store is one line naming the endpoint, not a failure after training.
    resources_for(settings)["store"].preflight()
    defs = definitions(todo)
    config: dict = {"loggers": {"console": {"config": {"log_level": args.log_level}}}}
    if not publish:  # in the run's own config, so the Dagster run records that it was an evaluation
        config["ops"] = {f"{m.name}__release_unit": {"config": {"publish": False}} for m in todo}
    result = run_job("release_all", config, defs=defs, progress=not args.quiet)
    elapsed = time.perf_counter() - start
    unusable = store_unavailable(result)
    if unusable:  # the store went away between the preflight and the run
        print(f"FAILED: {unusable}", file=sys.stderr)
        return 2
    summaries = summarise_run(result, [m.name for m in todo])
    for s in summaries:
        print(s.render())
    print(f"run {result.run_id} finished in {elapsed:.1f} s")
    if not publish:
        why = "--no-publish" if args.no_publish else "RELEASE_ASSETS_PUBLISH=false"
        print(f"evaluated only ({why}): nothing was published and no ledger event was written")
    if any(s.published_ok and s.published for s in summaries) and not_installed("mlflow") is None:
        # A new version, which MLflow does not have yet (without the mlflow extra there is no registry to tell of).
        # Off the release's critical path (importing MLflow and opening its database cost seconds).
        print("MLflow registration follows: `release-assets registry sync`, or the registry_sync_sensor")
    if not args.set:  # a build with overrides is not what the manifest on disk builds
        stamp_published(defs, summaries, todo, settings)
    if any(s.held_back for s in summaries):
        from release_assets.cli.triage import print_held_triage

        print_held_triage(todo, summaries, lambda job, config: run_job(job, config, defs=defs))
    if args.summary == "markdown":
        from release_assets.release.markdown import write_summary

        store = resources_for(settings)["store"].releases()
        write_summary(summaries, result.get_asset_check_evaluations(), store, args.summary_file)
    return 0 if all(s.published_ok for s in summaries) and not broken else 1


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
    p.set_defaults(fn=cmd_release)
