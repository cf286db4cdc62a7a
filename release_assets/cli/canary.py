"""``release-assets canary start|status|abort|tick``: the canary from a terminal.

``start`` and ``abort`` run the same Dagster jobs as the launchpad (so the run, its config and the observation on
``<release>/rollout`` are in the UI); ``tick`` runs one monitor analysis without the daemon, exactly what the
``canary_monitor`` sensor does each interval.
"""

from __future__ import annotations

import argparse
import json

from release_assets.cli.common import release_store, run_op


def _rollout(release: str):
    from release_assets.core.settings import get_settings
    from release_assets.definitions import resources_for
    from release_assets.manifest import release_manifest
    from release_assets.record.ledger import PromotionError
    from release_assets.rollout.canary import Rollout
    from release_assets.serving.flags import store_flags_dir

    settings = get_settings()
    manifest = release_manifest(settings.releases_path, release)
    if manifest.rollout is None:
        raise PromotionError(f"releases/{release}.yaml has no `rollout:` section: nothing says how to ramp a canary")
    store = release_store()
    registry = resources_for(settings)["registry"]
    return Rollout(store, release, manifest.rollout, store_flags_dir(store), registry.get)


def cmd_start(args: argparse.Namespace) -> int:

    config = {
        "release": args.release,
        "version": args.version,
        "approved_by": args.approved_by,
        "reason": args.reason,
        "override_weakened_gates": args.override_weakened_gates,
    }
    if not run_op("start_canary", "start_canary_op", config):
        return 1
    return cmd_status(args)


def cmd_abort(args: argparse.Namespace) -> int:

    if not run_op(
        "abort_canary", "abort_canary_op", {"release": args.release, "requested_by": args.by, "reason": args.reason}
    ):
        return 1
    print(f"{args.release}: canary aborted; every request goes to the champion")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from release_assets.record.ledger import replay
    from release_assets.rollout.canary import analyse_step
    from release_assets.rollout.metrics_source import MetricsUnavailable, source_from_env

    r = _rollout(args.release)
    state = replay(r.store.events(args.release))
    c = state.canary
    if c is None:
        print(f"{args.release}: no canary in progress; champion {state.champion or 'none'}")
        return 0
    steps = " -> ".join(f"[{p}%]" if i == c.step else f"{p}%" for i, p in enumerate(c.steps))
    print(f"{args.release}: canary {c.version} vs champion {c.champion} at {c.percent}% ({steps})")
    print(f"  step since {c.step_started}; failed analyses in a row: {c.breaches}")
    print(f"  approved by {c.approval['by']}: {c.approval['reason']}")
    if c.baseline is None:
        print("  no baseline yet (metrics unavailable at start): the next tick that reads metrics records it")
        return 0
    try:
        analysis = analyse_step(r.spec, state, source_from_env().snapshot(args.release))
    except MetricsUnavailable as exc:
        print(f"  live analysis unavailable: {exc}")
        return 0
    print(f"  now: {analysis.decision}: {analysis.reason}")
    for k in analysis.kpis:
        verdict = {True: "BREACH", False: "ok", None: "-"}[k.breached]
        print(f"    {k.name:<20} canary {_num(k.canary):>10}  champion {_num(k.champion):>10}  {k.budget}  {verdict}")
    return 0


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.4g}"


def cmd_tick(args: argparse.Namespace) -> int:
    from release_assets.rollout.canary import tick
    from release_assets.rollout.metrics_source import source_from_env

    r = _rollout(args.release)
    t = tick(r, source_from_env())
    if args.json:
        print(json.dumps({"action": t.action, "note": t.note, "events": t.events}, default=str, indent=1))
    else:
        print(f"{args.release}: {t.action}" + (f": {t.note}" if t.note else ""))
    return 1 if r.mirror_pending else 0  # the move stands; MLflow's aliases wait for the next registry sync


def add_parser(sub) -> None:
    canary = sub.add_parser("canary", help="start, watch, tick or abort a release's canary rollout")
    commands = canary.add_subparsers(dest="canary_command", required=True)
    p = commands.add_parser("start", help="send the rollout's first step of traffic to a published version")
    p.add_argument("release")
    p.add_argument("version")
    p.add_argument("--approved-by", required=True, help="who approves (recorded; carried into the promotion)")
    p.add_argument("--reason", required=True, help="why (recorded in the ledger)")
    p.add_argument("--override-weakened-gates", action="store_true", help="a version built with weakened gates")
    p.set_defaults(fn=cmd_start)
    p = commands.add_parser("status", help="the running canary: step, approval, and a live analysis now")
    p.add_argument("release")
    p.set_defaults(fn=cmd_status)
    p = commands.add_parser("abort", help="stop the canary: every request back to the champion")
    p.add_argument("release")
    p.add_argument("--by", default=None, help="who stops it (default: $RELEASE_ASSETS_ACTOR or the OS user)")
    p.add_argument("--reason", required=True)
    p.set_defaults(fn=cmd_abort)
    p = commands.add_parser("tick", help="one canary_monitor analysis, acted on (without the Dagster daemon)")
    p.add_argument("release")
    p.add_argument("--json", action="store_true", help="print the decision and ledger events as JSON")
    p.set_defaults(fn=cmd_tick)
