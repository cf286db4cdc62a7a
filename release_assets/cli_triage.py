"""``release-assets triage RELEASE [--candidate V] [--baseline V]``: which member moved the chain's metrics.

Runs :func:`release_assets.evaluation.triage.triage` on two published versions (default: the ledger's candidate
against the champion) and prints its markdown table. The golden suite is not bundled, so each side is scored on a
golden file given here (default: the chain's ``golden`` in ``releases/<release>.yaml``, for both sides).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _default_golden(release: str) -> Path:
    from release_assets.evaluation.triage_mix import TriageError
    from release_assets.manifest import load_manifest
    from release_assets.settings import get_settings

    settings = get_settings()
    path = settings.releases_path / f"{release}.yaml"
    if not path.is_file():
        raise TriageError(f"{path}: no such manifest to read the golden suite from; pass --golden")
    chains = load_manifest(path).members_of("prompt_chain")
    if not chains:
        raise TriageError(f"{path}: members: no prompt_chain member, so no golden suite to triage with")
    return settings.project_root / chains[sorted(chains)[0]].golden


def cmd_triage(args: argparse.Namespace) -> int:
    from release_assets.cli_inspect import release_store
    from release_assets.definitions import resources_for
    from release_assets.evaluation.triage import triage
    from release_assets.evaluation.triage_mix import TriageError
    from release_assets.serving.loader import resolve_version
    from release_assets.settings import get_settings

    store = release_store()
    candidate = resolve_version(store, args.release, args.candidate, None if args.candidate else "candidate")
    baseline = resolve_version(store, args.release, args.baseline, None if args.baseline else "champion")
    golden = Path(args.golden) if args.golden else _default_golden(args.release)
    # LLM steps replay the answers the builds cached, so triaging an LLM chain does not pay for them again.
    llm_cache = resources_for(get_settings())["store"].local().root / "llm_cache"
    try:
        result = triage(
            store,
            args.release,
            candidate,
            baseline,
            golden,
            Path(args.baseline_golden) if args.baseline_golden else None,
            llm_cache_dir=llm_cache if llm_cache.is_dir() else None,
        )
    except TriageError as exc:  # worded for people (names the version, member or file), like cli.py's user errors
        print(f"FAILED: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(_as_json(result), indent=1, sort_keys=True))
    else:
        print(result.markdown(), end="")
    return 0


def _as_json(result) -> dict:
    return {
        "release": result.release,
        "candidate": result.candidate,
        "baseline": result.baseline,
        "factors": result.factors,
        "changed": result.changed,
        "not_evaluated": result.not_evaluated,
        "method": result.method,
        "metrics": [
            {"metric": m.metric, "baseline": m.baseline, "candidate": m.candidate, "change": m.change}
            | {"shares": m.shares, "interaction": m.interaction}
            for m in result.metrics
        ],
        "flipped": result.flipped,
        "mixes": result.mixes,
        "notes": result.notes,
        "seconds": result.seconds,
    }


def add_parser(sub) -> None:
    p = sub.add_parser("triage", help="which member (model, chain, golden suite) moved a chain metric")
    p.add_argument("release")
    p.add_argument("--candidate", metavar="V", help="published version to explain (default: the ledger's candidate)")
    p.add_argument("--baseline", metavar="V", help="published version to compare with (default: the champion)")
    p.add_argument(
        "--golden",
        metavar="PATH",
        help="the candidate's golden file (default: the chain's `golden` in releases/<release>.yaml)",
    )
    p.add_argument("--baseline-golden", metavar="PATH", help="the baseline's golden file (default: --golden)")
    p.add_argument("--json", action="store_true", help="print the result (with every mix's digests) as JSON")
    p.set_defaults(fn=cmd_triage)
