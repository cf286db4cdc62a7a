"""``release-assets ci ...``: what a CI job asks of the runner's context. ``ci approver``: the reviewer who approved
this run's deployment to an environment (GitHub's approvals API), printed for the promotion's ``--approved-by``."""

from __future__ import annotations

import argparse
import os
import sys

from release_assets.cli.common import OK, REFUSED


def cmd_approver(args: argparse.Namespace) -> int:
    from release_assets.provenance.approvals import ApprovalError, approver

    missing = [n for n in ("GITHUB_REPOSITORY", "GITHUB_RUN_ID") if not os.environ.get(n)]
    if missing:
        print(f"FAILED: {', '.join(missing)} not set: `ci approver` runs inside a GitHub Actions job", file=sys.stderr)
        return REFUSED
    try:
        found = approver(
            os.environ.get("GITHUB_API_URL", "https://api.github.com"),
            os.environ["GITHUB_REPOSITORY"],
            os.environ["GITHUB_RUN_ID"],
            args.environment,
            os.environ.get("GITHUB_TOKEN", ""),
        )
    except ApprovalError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return REFUSED
    print(found.login)
    return OK


def add_parser(sub) -> None:
    p = sub.add_parser("ci", help="what a CI job asks of its run (GitHub Actions)")
    ci = p.add_subparsers(dest="ci_command", required=True)
    a = ci.add_parser("approver", help="print the reviewer who approved this run's deployment to an environment")
    a.add_argument("--environment", default="production", help="the GitHub environment (default: production)")
    a.set_defaults(fn=cmd_approver)
