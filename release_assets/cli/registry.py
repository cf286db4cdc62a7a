"""``release-assets registry sync``: bring MLflow to what the release ledgers say, through the ``registry_sync`` job
(so the sync is a run, and each registration an observation on the release unit's asset page)."""

from __future__ import annotations

import argparse
import sys
import time

from release_assets.cli.common import (
    OK,
    REFUSED,
    UNREACHABLE,
    USAGE,
    failure_messages,
    manifests_named,
    quiet_run_config,
    run_job,
)


def cmd_registry_sync(args: argparse.Namespace) -> int:
    from release_assets.core.settings import get_settings
    from release_assets.definitions import resources_for
    from release_assets.release.tracking_server import unreachable_line

    start = time.perf_counter()
    manifests, broken = manifests_named(args.release)
    if not manifests:
        return USAGE
    registry = resources_for(get_settings())["registry"]
    # Before any work: an unreachable tracking server is one line naming it, in seconds (RegistryUnavailable,
    # which main() reports with its exit code).
    registry.preflight()
    names = [m.name for m in manifests]
    result = run_job("registry_sync", {**quiet_run_config(), "ops": {"sync_registry": {"config": {"releases": names}}}})
    if not result.success:
        messages = failure_messages(result)
        for message in messages:
            print(f"FAILED: {message}", file=sys.stderr)
        # The server passed the check, then stopped answering: the step failed with the same line as the check's.
        gone = unreachable_line(registry.tracking_uri, "").partition(" unreachable: ")[0] + " unreachable: "
        return UNREACHABLE if any(m.startswith(gone) for m in messages) else REFUSED
    observations = [e for e in result.all_events if e.event_type_value == "ASSET_OBSERVATION"]
    for event in observations:
        meta = {k: v.value for k, v in event.event_specific_data.asset_observation.metadata.items()}
        release = event.asset_key.path[0]
        print(
            f"{release} {meta['version']}: registered in MLflow "
            f"(run {meta['mlflow_run_id']}; model versions: {meta['model_versions']}; "
            f"prompt versions: {meta.get('prompt_versions', 'none new')})"
        )
    print(
        f"registry: {len(observations)} version(s) newly registered; MLflow aliases mirror the ledgers of "
        f"{', '.join(names)} ({time.perf_counter() - start:.1f} s)"
    )
    return REFUSED if broken else OK


def add_parser(sub) -> None:
    p = sub.add_parser("registry", help="MLflow follows the release ledgers: `registry sync`")
    actions = p.add_subparsers(dest="action", required=True)
    s = actions.add_parser(
        "sync",
        help="register every published version not in MLflow yet (with its model members) and mirror the aliases",
    )
    s.add_argument("release", nargs="*", help="release names (default: every releases/*.yaml)")
    s.set_defaults(fn=cmd_registry_sync)
