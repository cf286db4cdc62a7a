"""``release-assets promote`` and ``rollback``: the approval gate and its undo, through ``release_assets.api`` (which
runs the same Dagster jobs as the launchpad, so each move is a run with its config, and an observation on the
release unit)."""

from __future__ import annotations

import argparse
import sys

from release_assets.cli.common import OK, REFUSED, UNREACHABLE, print_json


def cmd_promote(args: argparse.Namespace) -> int:
    from release_assets import api
    from release_assets.record.ledger import PromotionError

    if not args.to and not (args.approved_by and args.reason):  # the API says it too, in its own words
        raise api.UsageError("promote needs --approved-by and --reason (or --to ENV)")
    try:
        move = api.promote(
            args.release,
            args.version,
            approved_by=args.approved_by or "",
            reason=args.reason or "",
            environment=args.to,
            override_weakened_gates=args.override_weakened_gates,
        )
    except (PromotionError, api.RunFailed) as exc:
        return _refused(args, exc)
    if args.json:
        return _moved_json(move)
    if move.mlflow_pending:  # the move stands; only MLflow's aliases wait for the next registry sync
        print(move.mlflow_pending, file=sys.stderr)
        return UNREACHABLE
    override = " OVER WEAKENED GATES" if args.override_weakened_gates else ""
    if args.to:
        print(
            f"{args.release}: {move.champion} is now champion of {args.to} (regions: {', '.join(move.regions)}; "
            f"by {move.actor}){override}"
        )
        return OK
    print(f"{args.release}: {args.version} is now champion{override} (approved by {args.approved_by})")
    return OK


def cmd_rollback(args: argparse.Namespace) -> int:
    from release_assets import api
    from release_assets.record.ledger import PromotionError

    try:
        move = api.rollback(args.release, reason=args.reason, by=args.by)
    except (PromotionError, api.RunFailed) as exc:
        return _refused(args, exc)
    if args.json:
        return _moved_json(move)
    if move.mlflow_pending:
        print(move.mlflow_pending, file=sys.stderr)
        return UNREACHABLE
    print(f"{args.release}: rolled back; champion is now {move.champion}")
    return OK


def _refused(args: argparse.Namespace, exc: Exception) -> int:
    """The job's own line ("promotion refused: ..."), as the launchpad shows it: no FAILED prefix, no traceback."""
    if args.json:
        return print_json({}, REFUSED, str(exc))
    print(exc, file=sys.stderr)
    return REFUSED


def _moved_json(move) -> int:
    code = UNREACHABLE if move.mlflow_pending else OK
    return print_json(move.as_dict(), code, move.mlflow_pending)


def add_parser(sub) -> None:
    p = sub.add_parser("promote", help="approve a published version and make it champion")
    p.add_argument("release")
    p.add_argument("version")
    p.add_argument("--to", metavar="ENV", help="into this environment of environments.yaml, from the one before")
    p.add_argument("--approved-by", help="who approves (recorded; required unless --to an env without approval)")
    p.add_argument("--reason", help="why (recorded in the ledger; required with --approved-by)")
    p.add_argument(
        "--override-weakened-gates",
        action="store_true",
        help="promote a version built with gates loosened from the committed manifest (recorded in the ledger)",
    )
    p.add_argument("--json", action="store_true", help="print the move (or the refusal) as one JSON object")
    p.set_defaults(fn=cmd_promote)
    p = sub.add_parser("rollback", help="move champion back to the previous champion")
    p.add_argument("release")
    p.add_argument("--by", default=None, help="who rolls back (default: $RELEASE_ASSETS_ACTOR or the OS user)")
    p.add_argument("--reason", required=True)
    p.add_argument("--json", action="store_true", help="print the move (or the refusal) as one JSON object")
    p.set_defaults(fn=cmd_rollback)
