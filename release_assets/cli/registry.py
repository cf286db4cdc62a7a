"""``release-assets registry sync``: bring MLflow to what the release ledgers say, through the ``registry_sync`` job
(so the sync is a run, and each registration an observation on the release unit's asset page)."""

from __future__ import annotations

import argparse
import sys
import time

from release_assets.cli.common import failure_messages, manifests_named, quiet_run_config, run_job


def cmd_registry_sync(args: argparse.Namespace) -> int:
    from release_assets.core.settings import get_settings
    from release_assets.definitions import resources_for
    from release_assets.resources.registry import RegistryUnavailable

    start = time.perf_counter()
    manifests, broken = manifests_named(args.release)
    if not manifests:
        return 2
    try:  # before any work: an unreachable tracking server is one line naming it, in seconds
        resources_for(get_settings())["registry"].preflight()
    except RegistryUnavailable as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 2
    names = [m.name for m in manifests]
    result = run_job("registry_sync", {**quiet_run_config(), "ops": {"sync_registry": {"config": {"releases": names}}}})
    if not result.success:
        for message in failure_messages(result):
            print(f"FAILED: {message}", file=sys.stderr)
        return 1
    observations = [e for e in result.all_events if e.event_type_value == "ASSET_OBSERVATION"]
    for event in observations:
        meta = {k: v.value for k, v in event.event_specific_data.asset_observation.metadata.items()}
        release = event.asset_key.path[0]
        print(
            f"{release} {meta['version']}: registered in MLflow "
            f"(run {meta['mlflow_run_id']}; model versions: {meta['model_versions']})"
        )
    print(
        f"registry: {len(observations)} version(s) newly registered; MLflow aliases mirror the ledgers of "
        f"{', '.join(names)} ({time.perf_counter() - start:.1f} s)"
    )
    return 1 if broken else 0


def add_parser(sub) -> None:
    p = sub.add_parser("registry", help="MLflow follows the release ledgers: `registry sync`")
    actions = p.add_subparsers(dest="action", required=True)
    s = actions.add_parser(
        "sync",
        help="register every published version not in MLflow yet (with its model members) and mirror the aliases",
    )
    s.add_argument("release", nargs="*", help="release names (default: every releases/*.yaml)")
    s.set_defaults(fn=cmd_registry_sync)
