"""``release-assets canary start|status|abort|resume|tick|wait``: the canary from a terminal.

``start`` and ``abort`` run the same Dagster jobs as the launchpad (so the run, its config and the observation on
``<release>/rollout`` are in the UI); ``tick`` runs one monitor analysis without the daemon, exactly what the
``canary_monitor`` sensor does each interval; ``resume`` lets a canary the monitor paused (undecided in time) go on;
``wait`` follows the ledger until a version's canary is decided (the deploy workflow's verdict). Every command takes
``--env NAME``: the canary of that environment of environments.yaml (default: the first).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from release_assets.cli.common import OK, REFUSED, UNREACHABLE, print_json, release_store, run_op


def _rollout(release: str, environment: str | None = None):
    from release_assets.core.settings import get_settings
    from release_assets.definitions import resources_for
    from release_assets.manifest import ManifestError, release_manifest
    from release_assets.rollout.canary import rollout_in

    settings = get_settings()
    manifest = release_manifest(settings.releases_path, release)
    if manifest.rollout is None:
        raise ManifestError(f"releases/{release}.yaml has no `rollout:` section: nothing says how to ramp a canary")
    store = release_store()
    registry = resources_for(settings)["registry"]
    return rollout_in(store, release, manifest.rollout, environment, registry.get)


def cmd_start(args: argparse.Namespace) -> int:
    config = {
        "release": args.release,
        "version": args.version,
        "approved_by": args.approved_by,
        "reason": args.reason,
        "override_weakened_gates": args.override_weakened_gates,
        "environment": args.env,
    }
    code = run_op("start_canary", "start_canary_op", config, args.release)
    if code != OK:
        return code
    return cmd_status(args)


def cmd_abort(args: argparse.Namespace) -> int:
    config = {"release": args.release, "requested_by": args.by, "reason": args.reason, "environment": args.env}
    code = run_op("abort_canary", "abort_canary_op", config, args.release)
    if code == OK:
        print(f"{args.release}: canary aborted; every request goes to the champion")
    return code


def cmd_resume(args: argparse.Namespace) -> int:
    from release_assets.rollout.canary import resume

    r = _rollout(args.release, args.env)
    resume(r, args.by or _actor(), args.reason)
    print(f"{args.release}: canary resumed; its step's bake time and deadline start again")
    return OK


def _actor() -> str:
    from release_assets.record.ledger import default_actor

    return default_actor()


def canary_status(release: str, environment: str | None = None) -> dict[str, Any]:
    """The running canary (None when there is none), the champion, and a live analysis of its step now (None when
    no baseline was recorded yet, or the metrics could not be read: ``analysis_error`` says why), in
    ``environment`` (default: the first)."""
    from dataclasses import asdict

    from release_assets.rollout.canary import analyse_step
    from release_assets.rollout.metrics_source import MetricsUnavailable, source_for

    r = _rollout(release, environment)
    state = r.state()
    c = state.canary
    where = r.environments.get(environment or r.environments.first.name)
    out: dict[str, Any] = {"release": release, "environment": where.name, "champion": state.champion, "canary": None}
    out.update(analysis=None, analysis_error=None)
    if c is None:
        return out
    canary = {k: v for k, v in asdict(c).items() if k != "baseline"}
    out["canary"] = {**canary, "percent": c.percent, "baseline_recorded": c.baseline is not None}
    if c.baseline is not None:
        try:
            out["analysis"] = analyse_step(r.spec, state, source_for(where).snapshot(release)).as_dict()
        except MetricsUnavailable as exc:
            out["analysis_error"] = str(exc)
    return out


def cmd_status(args: argparse.Namespace) -> int:
    status = canary_status(args.release, args.env)
    # The state is read from the ledger either way; a metrics source that does not answer is an unreachable service.
    code = UNREACHABLE if status["analysis_error"] else OK
    if getattr(args, "json", False):
        return print_json(status, code, status["analysis_error"])
    c, analysis = status["canary"], status["analysis"]
    where = f" in {status['environment']}"
    if c is None:
        print(f"{args.release}: no canary in progress{where}; champion {status['champion'] or 'none'}")
        return OK
    steps = " -> ".join(f"[{p}%]" if i == c["step"] else f"{p}%" for i, p in enumerate(c["steps"]))
    print(f"{args.release}: canary {c['version']} vs champion {c['champion']} at {c['percent']}%{where} ({steps})")
    print(f"  step since {c['step_started']}; failed analyses in a row: {c['breaches']}")
    if c["inconclusive"]:
        print(f"  inconclusive analyses at this step: {c['inconclusive']}")
    if c["paused"]:
        print(f"  PAUSED for a person: {c['paused']} (`canary resume` or `canary abort`)")
    print(f"  approved by {c['approval']['by']}: {c['approval']['reason']}")
    if not c["baseline_recorded"]:
        print("  no baseline yet (metrics unavailable at start): the next tick that reads metrics records it")
        return OK
    if analysis is None:
        print(f"  live analysis unavailable: {status['analysis_error']}")
        return code
    print(f"  now: {analysis['decision']}: {analysis['reason']}")
    for k in analysis["kpis"]:
        verdict = {True: "BREACH", False: "ok", None: "-"}[k["breached"]]
        canary, champion = _num(k["canary"]), _num(k["champion"])
        print(f"    {k['name']:<20} canary {canary:>10}  champion {champion:>10}  {k['budget']}  {verdict}")
    tests = analysis.get("judgement")
    if tests:
        score = "-" if tests["score"] is None else f"{tests['score']:g}"
        print(f"  statistical judgement: {tests['verdict']}, score {score} (α {tests['alpha_per_test']:.2g} a test)")
        for m in tests["metrics"]:
            print(f"    {m['name']:<20} {m['outcome'].upper():<6} {'critical ' if m['critical'] else ''}{m['reason']}")
    return OK


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.4g}"


def cmd_tick(args: argparse.Namespace) -> int:
    from release_assets.rollout.canary import tick
    from release_assets.rollout.metrics_source import source_for

    r = _rollout(args.release, args.env)
    t = tick(r, source_for(r.environments.get(args.env or r.environments.first.name)))
    if args.json:
        print(json.dumps({"action": t.action, "note": t.note, "events": t.events}, default=str, indent=1))
    else:
        print(f"{args.release}: {t.action}" + (f": {t.note}" if t.note else ""))
    # A move stands when MLflow's aliases could not follow it (the next registry sync points them); metrics that
    # could not be read hold the canary where it is. Either way a service did not answer.
    return UNREACHABLE if r.mirror_pending or t.action == "unavailable" else OK


def cmd_wait(args: argparse.Namespace) -> int:
    """Follow the ledger until ``args.version``'s canary in the environment is decided: 0 when the monitor promoted
    it, 1 when it was rolled back, aborted or paused for a person, or no verdict came within ``--timeout``."""
    import time

    from release_assets.rollout.canary import outcome

    if args.timeout <= 0 or args.interval <= 0:
        raise ValueError(f"--timeout ({args.timeout:g}) and --interval ({args.interval:g}) must be positive")
    r = _rollout(args.release, args.env)
    where = f"{args.release} {args.version} in {r.environments.get(args.env or r.environments.first.name).name}"
    deadline = time.monotonic() + args.timeout
    while True:
        status, e = outcome(r, args.version)
        if status == "none":
            print(f"{where}: no canary of it was started there", file=sys.stderr)
            return REFUSED
        if status == "promoted":
            print(f"{where}: canary passed every step; champion now ({e['time'] if e else ''})")
            return OK
        if status != "running":
            why = e["reason"] if e else ""
            print(f"{where}: canary {status.replace('_', ' ')}: {why}", file=sys.stderr)
            return REFUSED
        if time.monotonic() >= deadline:
            print(f"{where}: no verdict within {args.timeout:g} s; the canary is still running", file=sys.stderr)
            return REFUSED
        time.sleep(min(args.interval, max(0.0, deadline - time.monotonic())))


def add_parser(sub) -> None:
    canary = sub.add_parser("canary", help="start, watch, tick, resume or abort a release's canary rollout")
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
    p.add_argument("--json", action="store_true", help="print the canary, the champion and the analysis as JSON")
    p.set_defaults(fn=cmd_status)
    p = commands.add_parser("abort", help="stop the canary: every request back to the champion")
    p.add_argument("release")
    p.add_argument("--by", default=None, help="who stops it (default: $RELEASE_ASSETS_ACTOR or the OS user)")
    p.add_argument("--reason", required=True)
    p.set_defaults(fn=cmd_abort)
    p = commands.add_parser("resume", help="let a canary the monitor paused (undecided in time) go on at its step")
    p.add_argument("release")
    p.add_argument("--by", default=None, help="who lets it go on (default: $RELEASE_ASSETS_ACTOR or the OS user)")
    p.add_argument("--reason", required=True)
    p.set_defaults(fn=cmd_resume)
    p = commands.add_parser("tick", help="one canary_monitor analysis, acted on (without the Dagster daemon)")
    p.add_argument("release")
    p.add_argument("--json", action="store_true", help="print the decision and ledger events as JSON")
    p.set_defaults(fn=cmd_tick)
    p = commands.add_parser("wait", help="follow the ledger until a version's canary is promoted or stopped")
    p.add_argument("release")
    p.add_argument("version")
    p.add_argument("--timeout", type=float, default=3600, help="seconds to wait for a verdict (default 3600)")
    p.add_argument("--interval", type=float, default=10, help="seconds between reads of the ledger (default 10)")
    p.set_defaults(fn=cmd_wait)
    for command in commands.choices.values():  # every command acts on one environment's canary
        command.add_argument(
            "--env", default=None, metavar="NAME", help="the environment of environments.yaml (default: the first)"
        )
