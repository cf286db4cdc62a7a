"""The serving ``release-assets`` commands: ``predict`` one request, ``serve`` over HTTP, set ``flags``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from release_assets.cli.common import manifests_named, release_store


def serving_cache() -> Path:
    """Extracted, verified release versions for serving: beside the store's build cache, reused across runs."""
    from release_assets.api import serving_cache

    return serving_cache()


def cmd_predict(args: argparse.Namespace) -> int:
    """One request through a published release, printed as JSON (what ``serve`` would answer)."""
    import base64
    import json

    from release_assets.api import load_release

    if args.json == "-" or (args.json is None and args.message is None):
        request = json.loads(sys.stdin.read())
    elif args.json is not None:
        request = json.loads(Path(args.json).read_text(encoding="utf-8"))
    else:
        request = {"message": args.message}
    if args.image:
        if not isinstance(request, dict):
            raise ValueError("--image needs a JSON object request")
        request["attachment"] = {"image_b64": base64.b64encode(Path(args.image).read_bytes()).decode()}
    loaded = load_release(args.release, args.version, args.alias)
    print(json.dumps(loaded.predict(request), indent=1, sort_keys=True))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the champions of the named releases (default: every manifest) on 127.0.0.1 until interrupted."""
    import uvicorn

    from release_assets.core.settings import get_settings
    from release_assets.release.store import LocalReleaseStore
    from release_assets.serving.flags import store_flags_dir
    from release_assets.serving.server import build_server

    trust = _serving_trust(args.signed_only, args.trusted_key)
    store = release_store()
    manifests = manifests_named()[0]  # every manifest that loads: a served release's breaker policy is in its own
    releases = args.release or [m.name for m in manifests]
    # Flags are files flagd watches: a local store has them beside its releases; with S3 there is no routing.
    flags_dir = store_flags_dir(store) if isinstance(store, LocalReleaseStore) else None
    trace_path = Path(args.traces) if args.traces else get_settings().store_path / "traces" / "serve.jsonl"
    server = build_server(
        store,
        releases,
        cache_dir=serving_cache(),
        flags_dir=flags_dir,
        trace_path=trace_path,
        token=get_settings().serve_token,  # unset or empty: no token
        max_body=args.max_body,
        shadow_log_dir=get_settings().store_path / "shadow",  # live pairs for the shadow_report asset
        breaker_policies=_breaker_policies([m for m in manifests if m.name in releases]),
        trust=trust,
    )
    for release, problem in server.problems.items():
        print(f"NOT READY: {release}: {problem}", file=sys.stderr)
    for release, loaded in server.loaded.items():
        if loaded is not None:
            print(f"serving {release} {loaded.version} at http://{args.host}:{args.port}/v1/{release}/predict")
    try:
        uvicorn.run(server.app, host=args.host, port=args.port, log_level=args.log_level, access_log=False)
    finally:
        server.close()
    return 0


def _serving_trust(signed_only: bool, trusted_key: list[str] | None):
    """With ``signed_only`` (``--signed-only``), whose signatures the server accepts (``checking_trust``); a usage
    error when there is nobody to trust, and for ``--trusted-key`` without it."""
    from release_assets.api import UsageError

    if not signed_only:
        if trusted_key:
            raise UsageError("--trusted-key is for --signed-only")
        return None
    from release_assets.rollout.environments import checking_trust

    trust = checking_trust(trusted_key)
    if trust is None:
        raise UsageError(
            "--signed-only needs a key to trust: --trusted-key PEM, trusted_keys in environments.yaml, or "
            "RELEASE_ASSETS_SIGNING_KEY(_FILE)"
        )
    return trust


def _breaker_policies(manifests: list) -> dict:
    """release -> BreakerPolicy from each manifest's ``rollout.circuit_breaker`` (validated when the manifest
    loaded); a release without one has no breaker."""
    from release_assets.serving.breaker import BreakerPolicy

    return {
        m.name: BreakerPolicy(**m.rollout.circuit_breaker.model_dump())
        for m in manifests
        if m.rollout is not None and m.rollout.circuit_breaker is not None
    }


def cmd_flags(args: argparse.Namespace) -> int:
    """Write a release's flag file (champion from the ledger, optional canary and shadow shares); a running
    ``serve`` picks it up without a restart. Routing never changes over HTTP: only through this file."""
    from release_assets.record.ledger import check_servable, record_routing
    from release_assets.serving.flags import flag_document, flags_path, store_flags_dir, write_flags
    from release_assets.serving.loader import resolve_version

    store = release_store()
    champion = resolve_version(store, args.release, None, "champion")
    document = flag_document(args.release, champion, args.canary, args.canary_percent, args.shadow, args.shadow_percent)
    if args.canary and args.canary_percent > 0:
        if not (args.approved_by and args.reason):  # a usage error, before anything is checked or written
            from release_assets.api import UsageError

            raise UsageError("sending traffic to a canary needs both --approved-by and --reason")
        # Users will get this version's answers: the same checks as promotion, and a ledger record of who and why.
        check_servable(store, args.release, args.canary, args.override_weakened_gates)
        routing = {"canary": args.canary, "canary_percent": args.canary_percent}
        record_routing(store, args.release, routing, args.approved_by or "", args.reason or "")
    path = flags_path(store_flags_dir(store), args.release)
    write_flags(path, document)
    print(
        f"{args.release}: champion {champion}"
        + (f", canary {args.canary} {args.canary_percent}%" if args.canary else "")
        + (f", shadow {args.shadow} {args.shadow_percent}%" if args.shadow else "")
        + f" -> {path}"
    )
    return 0
