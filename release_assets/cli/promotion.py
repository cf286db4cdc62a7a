"""``release-assets promote`` and ``rollback``: the approval gate and its undo, through the same Dagster jobs as the
launchpad (so each move is a run with its config, and an observation on the release unit)."""

from __future__ import annotations

import argparse
import sys

from release_assets.cli.common import release_store, run_op


def cmd_promote(args: argparse.Namespace) -> int:
    if not args.to and not (args.approved_by and args.reason):  # an environment says itself whether it needs them
        print("FAILED: promote needs --approved-by and --reason (or --to ENV)", file=sys.stderr)
        return 2
    config = {
        "release": args.release,
        "version": args.version,
        "approved_by": args.approved_by or "",
        "reason": args.reason or "",
        "override_weakened_gates": args.override_weakened_gates,
        "environment": args.to,
    }
    if not run_op("promote_release", "promote", config):
        return 1
    override = " OVER WEAKENED GATES" if args.override_weakened_gates else ""
    if args.to:
        from release_assets.cli.inspect import promoted_to

        print(promoted_to(args.release, args.version, args.to) + override)
        return 0
    print(f"{args.release}: {args.version} is now champion{override} (approved by {args.approved_by})")
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    config = {"release": args.release, "requested_by": args.by, "reason": args.reason}
    if not run_op("rollback_release", "rollback", config):
        return 1
    from release_assets.record.ledger import replay

    champion = replay(release_store().events(args.release)).champion
    print(f"{args.release}: rolled back; champion is now {champion}")
    return 0


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
    p.set_defaults(fn=cmd_promote)
    p = sub.add_parser("rollback", help="move champion back to the previous champion")
    p.add_argument("release")
    p.add_argument("--by", default=None, help="who rolls back (default: $RELEASE_ASSETS_ACTOR or the OS user)")
    p.add_argument("--reason", required=True)
    p.set_defaults(fn=cmd_rollback)
