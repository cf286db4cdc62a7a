"""``release-assets triage RELEASE [--candidate V] [--baseline V]``: which member moved the chain's metrics.

Runs :func:`release_assets.evaluation.triage.triage` on two published versions (default: the ledger's candidate
against the champion) and prints its markdown table. Each side is scored on the golden suite its chain evaluation
carries, unless ``--golden`` (and ``--baseline-golden``) name files; a version published before evaluations carried
their suite is scored on the chain's ``golden`` in ``releases/<release>.yaml``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from release_assets.cli.common import manifest_golden, release_store


def cmd_triage(args: argparse.Namespace) -> int:
    from release_assets.core.settings import get_settings
    from release_assets.definitions import resources_for
    from release_assets.evaluation.triage import triage
    from release_assets.evaluation.triage_mix import TriageError
    from release_assets.serving.loader import resolve_version

    store = release_store()
    candidate = resolve_version(store, args.release, args.candidate, None if args.candidate else "candidate")
    baseline = resolve_version(store, args.release, args.baseline, None if args.baseline else "champion")
    golden = Path(args.golden) if args.golden else None
    baseline_golden = Path(args.baseline_golden) if args.baseline_golden else golden
    # LLM steps replay the answers the builds cached, so triaging an LLM chain does not pay for them again.
    llm_cache = resources_for(get_settings())["store"].local().root / "llm_cache"
    try:
        result = triage(
            store,
            args.release,
            candidate,
            baseline,
            golden,
            baseline_golden,
            llm_cache_dir=llm_cache if llm_cache.is_dir() else None,
            fallback_golden=manifest_golden(args.release),
        )
    except TriageError as exc:  # worded for people (names the version, member or file), like cli.py's user errors
        print(f"FAILED: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result.as_dict(), indent=1, sort_keys=True))
    else:
        print(result.markdown(), end="")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("triage", help="which member (model, chain, golden suite) moved a chain metric")
    p.add_argument("release")
    p.add_argument("--candidate", metavar="V", help="published version to explain (default: the ledger's candidate)")
    p.add_argument("--baseline", metavar="V", help="published version to compare with (default: the champion)")
    p.add_argument(
        "--golden",
        metavar="PATH",
        help="score the candidate (and, without --baseline-golden, the baseline) on this golden file instead of "
        "the suite each version's chain evaluation carries",
    )
    p.add_argument("--baseline-golden", metavar="PATH", help="the baseline's golden file (default: --golden)")
    p.add_argument("--json", action="store_true", help="print the result (with every mix's digests) as JSON")
    p.set_defaults(fn=cmd_triage)


def print_held_triage(manifests: list, summaries: list, run_job) -> None:
    """After ``release``: for each release its gates held on a model or its chain's evaluation, run its
    ``regression_triage`` asset (the failed chain gate usually computed it already: it is reused from the cache) and
    print which member moved the metrics, against the champion."""
    from release_assets import keys
    from release_assets.evaluation.triage_assets import triage_chain
    from release_assets.sensors import triaged_assets

    by_name = {m.name: m for m in manifests}
    for s in summaries:
        manifest = by_name.get(s.release)
        if not s.held_back or manifest is None or triage_chain(manifest) is None:
            continue
        watched = triaged_assets(manifest)
        if not any(f"{s.release}/{g.asset}" in watched for g in s.gates if not g.passed and g.severity == "ERROR"):
            continue  # held by a data gate: the golden suite never ran on this build
        result = run_job(keys.triage_job(s.release), {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}})
        meta = {}
        for event in result.get_asset_materialization_events():
            meta = {k: getattr(v, "value", v) for k, v in event.materialization.metadata.items()}
        if not result.success or not meta:
            from release_assets.release.summary import error_text

            errors = [e.step_failure_data.error for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
            why = "; ".join(error_text(e) for e in errors if e is not None) or f"see run {result.run_id}"
            print(f"   triage:  could not run: {why}")
        elif meta.get("status") != "triaged":
            print(f"   triage:  {meta.get('status')}")
        else:
            print(meta["triage"], end="")
