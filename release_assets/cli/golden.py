"""``release-assets golden add --from-trace REQUEST_ID [--release R] [--golden FILE] [--traces FILE]``: a served
request's trace as a golden case, appended to the release's golden suite for a person to review
(release_assets/evaluation/golden_from_trace.py)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from release_assets.cli.common import manifest_golden


def _redactor():
    """The span file's redaction, to find an id the file holds redacted; None when tracing is not installed."""
    try:
        from release_assets.serving.trace_export import Redactor
    except ImportError:  # the [serve] extra (OpenTelemetry) is missing: no span file was written by this install
        return None
    return Redactor.from_env().text


def cmd_golden_add(args: argparse.Namespace) -> int:
    from release_assets.core.settings import get_settings
    from release_assets.evaluation.golden_from_trace import (
        TraceNotUsable,
        answered_by,
        append_case,
        find_request,
        golden_case,
    )

    traces = Path(args.traces) if args.traces else get_settings().store_path / "traces" / "serve.jsonl"
    span = find_request(traces, args.from_trace, _redactor())
    source = answered_by(span)
    release = args.release or source.get("release")
    if args.release and source.get("release") not in (None, args.release):
        raise TraceNotUsable(f"request {args.from_trace} was answered by {source['release']}, not {args.release}")
    golden = Path(args.golden) if args.golden else (manifest_golden(release) if release else None)
    if golden is None:
        raise TraceNotUsable(f"{release or 'the release'} has no chain with a `golden` suite: name one with --golden")
    case = golden_case(span, args.from_trace)
    line = append_case(golden, case)
    print(json.dumps(case, ensure_ascii=False, indent=1))
    print(
        f"appended to {golden}:{line} from {source.get('release')} {source.get('version')} ({source.get('variant')}):"
        " the expectations are the live answer; review and edit them before the next release"
    )
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("golden", help="the golden suites: add a case from a served request's trace")
    golden_sub = p.add_subparsers(dest="golden_command", required=True)
    add = golden_sub.add_parser("add", help="append a served request (its message, its answer as expectations)")
    add.add_argument("--from-trace", required=True, metavar="REQUEST_ID", help="the request_id the answer carried")
    add.add_argument("--release", help="the release it was served by (default: the trace's)")
    add.add_argument("--golden", metavar="FILE", help="the suite to append to (default: the release's chain `golden`)")
    add.add_argument("--traces", metavar="FILE", help="the span file serve wrote (default: <store>/traces/serve.jsonl)")
    add.set_defaults(fn=cmd_golden_add)
