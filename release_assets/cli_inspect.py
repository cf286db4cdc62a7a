"""The read-only ``release-assets`` commands: ``list``, ``history``, ``verify``, ``validate`` and ``predict``.

They read the manifests and the release store, never run a job; ``cli.py`` parses the arguments and reports
errors written for people on one line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _manifests(names=None):
    from release_assets.cli import _manifests as load

    return load(names)


def release_store():
    from release_assets.definitions import resources_for
    from release_assets.settings import get_settings

    store = resources_for(get_settings())["store"]
    store.preflight()  # an unreachable store is one line naming the endpoint, not a botocore traceback
    return store.releases()


def _note(e: dict) -> str:
    """What a history row must not hide: a promotion over weakened gates, a release built with them."""
    if e.get("override", {}).get("weakened_gates"):
        return f" [OVERRIDE of weakened gates: {'; '.join(e['override']['weakened_gates'])}]"
    if e.get("weakened_gates"):
        return f" [built with weakened gates: {'; '.join(e['weakened_gates'])}]"
    return ""


def cmd_history(args: argparse.Namespace) -> int:
    from release_assets.evaluation.report import plain_table

    events = release_store().events(args.release)
    if not events:
        print(f"{args.release}: no ledger events yet")
        return 0
    rows = [
        [
            e["time"][:19].replace("T", " "),
            e["action"],
            e["actor"],
            e.get("run_by", "-"),
            e["from_version"] or "-",
            e["to_version"] or "-",
            e["reason"] + _note(e),
        ]
        for e in events
    ]
    print(plain_table(["time (UTC)", "action", "actor", "run by", "from", "to", "reason"], rows))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from release_assets.evaluation.report import plain_table
    from release_assets.release.store import StoreError
    from release_assets.rollout.ledger import replay

    store = release_store()
    names = args.release or [m.name for m in _manifests()[0]]
    rows, problems = [], 0
    for name in names:
        state = replay(store.events(name))
        for version in store.versions(name):
            try:
                m = store.manifest(name, version) or {}
            except StoreError as exc:  # one unreadable manifest must not hide the other versions
                print(f"FAILED: {exc}", file=sys.stderr)
                problems += 1
                continue
            gates = m.get("gates", [])
            passed = sum(g["status"] == "passed" for g in gates)
            marks = [a for a, v in (("champion", state.champion), ("candidate", state.candidate)) if v == version]
            if m.get("weakened_gates"):
                marks.append(f"WEAKENED gates ({len(m['weakened_gates'])})")
            rows.append(
                [name, version, m.get("created_at", "")[:19], f"{passed}/{len(gates)} passed", ", ".join(marks)]
            )
    rows.sort(key=lambda r: (r[0], r[2]))
    print(
        plain_table(["release", "version", "created (UTC)", "gates", "aliases"], rows) if rows else "nothing published"
    )
    return 1 if problems else 0


def cmd_verify(args: argparse.Namespace) -> int:
    if args.ledger is not None:
        return _verify_ledgers(args.ledger)
    if not args.path:
        print("FAILED: verify needs a bundle (or its folder), or --ledger", file=sys.stderr)
        return 2
    from release_assets.release.bundle import BundleError, verify_bundle
    from release_assets.rollout.verified import check_agreement

    path = Path(args.path)
    if path.is_dir():
        path = path / "bundle.tar.gz"
    try:
        manifest = verify_bundle(path)
        beside = path.parent / "manifest.json"
        if beside.exists():  # a store folder: its loose manifest must say what the bundle says
            import json

            check_agreement(json.loads(beside.read_text()), manifest, str(beside))
    except (BundleError, ValueError) as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    files = sum(len(m["files"]) for m in manifest["members"].values())
    print(
        f"OK: {manifest['release']} {manifest['version']}: {len(manifest['members'])} members, {files} files verified"
    )
    return 0


def _verify_ledgers(names: list[str]) -> int:
    from release_assets.rollout.ledger import verify_ledger

    store = release_store()
    for name in names or [m.name for m in _manifests()[0]]:
        summary = verify_ledger(store, name)  # LedgerError names the line; main() prints it
        legacy = f", {summary['legacy']} written before chaining" if summary["legacy"] else ""
        print(f"OK: ledger {name}: {summary['events']} events, hash chain intact{legacy}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from release_assets.manifest import load_each
    from release_assets.settings import get_settings

    settings = get_settings()
    manifests, errors = load_each(settings.releases_path, settings.project_root)
    for m in manifests:
        print(f"OK: {m.name}: {len(m.members)} members, {sum(len(g) for g in m.gates.values())} gates")
    for error in errors:
        print(f"FAILED: {error}", file=sys.stderr)
    return 1 if errors else 0


def serving_cache() -> Path:
    """Extracted, verified release versions for serving: beside the store's build cache, reused across runs."""
    from release_assets.settings import get_settings

    return get_settings().store_path / "serving"


def cmd_predict(args: argparse.Namespace) -> int:
    """One request through a published release, printed as JSON (what ``serve`` would answer)."""
    import base64
    import json

    from release_assets.serving.loader import load_release

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
    loaded = load_release(release_store(), args.release, args.version, args.alias, cache_dir=serving_cache())
    print(json.dumps(loaded.predict(request), indent=1, sort_keys=True))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the champions of the named releases (default: every manifest) on 127.0.0.1 until interrupted."""
    import os

    import uvicorn

    from release_assets.release.store import LocalReleaseStore
    from release_assets.serving.flags import store_flags_dir
    from release_assets.serving.server import build_server
    from release_assets.settings import get_settings

    store = release_store()
    releases = args.release or [m.name for m in _manifests()[0]]
    # Flags are files flagd watches: a local store has them beside its releases; with S3 there is no routing.
    flags_dir = store_flags_dir(store) if isinstance(store, LocalReleaseStore) else None
    trace_path = Path(args.traces) if args.traces else get_settings().store_path / "traces" / "serve.jsonl"
    server = build_server(
        store,
        releases,
        cache_dir=serving_cache(),
        flags_dir=flags_dir,
        trace_path=trace_path,
        token=os.environ.get("RELEASE_ASSETS_SERVE_TOKEN") or None,
        max_body=args.max_body,
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
