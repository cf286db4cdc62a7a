"""``release-assets``: run releases on the embedded defaults, verify bundles, validate manifests."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path


def _instance(project_root: Path):
    """The Dagster instance under ``$DAGSTER_HOME`` (default ``.dagster/``, seeded from the top dagster.yaml)."""
    import dagster as dg

    home = Path(os.environ.setdefault("DAGSTER_HOME", str(project_root / ".dagster")))
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists() and (project_root / "dagster.yaml").exists():
        shutil.copyfile(project_root / "dagster.yaml", config)
    return dg.DagsterInstance.get()


def _end_mlflow_run() -> None:
    """dagster-mlflow leaves its run active for later steps; a finished Dagster run should not leave it open."""
    if "mlflow" in sys.modules:
        sys.modules["mlflow"].end_run()


def _run_job(job_name: str, run_config: dict | None = None, manifests=None):
    from release_assets.definitions import build_defs, resources_for
    from release_assets.manifest import load_manifests
    from release_assets.settings import get_settings

    settings = get_settings()
    manifests = manifests if manifests is not None else load_manifests(settings.releases_path)
    defs = build_defs(manifests, settings.project_root, resources_for(settings))
    with _instance(settings.project_root) as instance:
        try:
            return defs.resolve_job_def(job_name).execute_in_process(
                instance=instance, raise_on_error=False, run_config=run_config
            )
        finally:
            _end_mlflow_run()


def _failure_messages(result) -> list[str]:
    return [
        e.step_failure_data.error.message.strip() if e.step_failure_data.error else e.step_key
        for e in result.all_events
        if e.event_type_value == "STEP_FAILURE"
    ]


def _with_overrides(manifests: list, overrides: list[str]) -> list:
    """Apply ``RELEASE:PATH=VALUE`` overrides to the named releases."""
    from release_assets.manifest import ManifestError, apply_overrides

    by_release: dict[str, list[str]] = {}
    for item in overrides:
        release, sep, edit = item.partition(":")
        if not sep:
            raise ManifestError(f"--set {item!r}: expected RELEASE:PATH=VALUE")
        by_release.setdefault(release, []).append(edit)
    unknown = set(by_release) - {m.name for m in manifests}
    if unknown:
        raise ManifestError(f"--set names release(s) not being run: {sorted(unknown)}")
    return [apply_overrides(m, by_release[m.name]) if m.name in by_release else m for m in manifests]


def cmd_release(args: argparse.Namespace) -> int:
    from release_assets.manifest import load_manifests
    from release_assets.release_summary import summarise_run
    from release_assets.settings import get_settings

    settings = get_settings()
    manifests = load_manifests(settings.releases_path)
    if args.release:
        unknown = set(args.release) - {m.name for m in manifests}
        if unknown:
            print(
                f"unknown release(s): {sorted(unknown)}; known: {[m.name for m in manifests]}",
                file=sys.stderr,
            )
            return 2
        manifests = [m for m in manifests if m.name in args.release]
    if args.set:
        from release_assets.manifest import ManifestError

        try:
            manifests = _with_overrides(manifests, args.set)
        except ManifestError as exc:
            print(f"FAILED: {exc}", file=sys.stderr)
            return 2
    start = time.perf_counter()
    result = _run_job(
        "release_all", {"loggers": {"console": {"config": {"log_level": args.log_level}}}}, manifests=manifests
    )
    elapsed = time.perf_counter() - start
    summaries = summarise_run(result, [m.name for m in manifests])
    for s in summaries:
        print(s.render())
    print(f"run {result.run_id} finished in {elapsed:.1f} s")
    return 0 if all(s.published_ok for s in summaries) else 1


def _quiet(log_level: str = "CRITICAL") -> dict:
    # The refusal is printed once, cleanly, by the command; Dagster's step-failure traceback is noise here.
    return {"loggers": {"console": {"config": {"log_level": log_level}}}}


def _run_op(job: str, op: str, op_config: dict) -> bool:
    """Run a one-op job with typed config; print its refusal (if any) once, without Dagster's traceback."""
    result = _run_job(job, {**_quiet(), "ops": {op: {"config": op_config}}})
    for message in [] if result.success else _failure_messages(result):
        print(message, file=sys.stderr)
    return result.success


def cmd_promote(args: argparse.Namespace) -> int:
    config = {"release": args.release, "version": args.version, "approved_by": args.approved_by, "reason": args.reason}
    if not _run_op("promote_release", "promote", config):
        return 1
    print(f"{args.release}: {args.version} is now champion (approved by {args.approved_by})")
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    config = {"release": args.release, "requested_by": args.by, "reason": args.reason}
    if not _run_op("rollback_release", "rollback", config):
        return 1
    from release_assets.rollout.ledger import replay

    champion = replay(_release_store().events(args.release)).champion
    print(f"{args.release}: rolled back; champion is now {champion}")
    return 0


def _release_store():
    from release_assets.definitions import resources_for
    from release_assets.settings import get_settings

    return resources_for(get_settings())["store"].releases()


def cmd_history(args: argparse.Namespace) -> int:
    from release_assets.evaluation.report import plain_table

    events = _release_store().events(args.release)
    if not events:
        print(f"{args.release}: no ledger events yet")
        return 0
    rows = [
        [
            e["time"][:19].replace("T", " "),
            e["action"],
            e["actor"],
            e["from_version"] or "-",
            e["to_version"] or "-",
            e["reason"],
        ]
        for e in events
    ]
    print(plain_table(["time (UTC)", "action", "actor", "from", "to", "reason"], rows))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from release_assets.evaluation.report import plain_table
    from release_assets.manifest import load_manifests
    from release_assets.rollout.ledger import replay
    from release_assets.settings import get_settings

    store = _release_store()
    names = args.release or [m.name for m in load_manifests(get_settings().releases_path)]
    rows = []
    for name in names:
        state = replay(store.events(name))
        for version in store.versions(name):
            m = store.manifest(name, version) or {}
            gates = m.get("gates", [])
            passed = sum(g["status"] == "passed" for g in gates)
            marks = [a for a, v in (("champion", state.champion), ("candidate", state.candidate)) if v == version]
            rows.append(
                [name, version, m.get("created_at", "")[:19], f"{passed}/{len(gates)} passed", ", ".join(marks)]
            )
    rows.sort(key=lambda r: (r[0], r[2]))
    print(
        plain_table(["release", "version", "created (UTC)", "gates", "aliases"], rows) if rows else "nothing published"
    )
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from release_assets.release.bundle import BundleError, verify_bundle

    path = Path(args.path)
    if path.is_dir():
        path = path / "bundle.tar.gz"
    try:
        manifest = verify_bundle(path)
    except BundleError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    files = sum(len(m["files"]) for m in manifest["members"].values())
    print(
        f"OK: {manifest['release']} {manifest['version']}: {len(manifest['members'])} members, {files} files verified"
    )
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from release_assets.manifest import ManifestError, load_manifests
    from release_assets.settings import get_settings

    try:
        manifests = load_manifests(get_settings().releases_path)
    except ManifestError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    for m in manifests:
        print(f"OK: {m.name}: {len(m.members)} members, {sum(len(g) for g in m.gates.values())} gates")
    return 0


def main(argv: list[str] | None = None) -> int:
    import warnings

    # Dagster flags data versions as beta; the flag is noise for people running a release.
    warnings.filterwarnings("ignore", message=".*is currently in beta.*")
    parser = argparse.ArgumentParser(prog="release-assets", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("release", help="materialize, gate and publish releases (default: all)")
    p.add_argument("release", nargs="*", help="release names (default: every releases/*.yaml)")
    # The summary below reports every gate and step failure; Dagster's own tracebacks are opt-in.
    p.add_argument("--log-level", default="CRITICAL", help="Dagster console log level (default: CRITICAL)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="RELEASE:PATH=VALUE",
        help="override a manifest field for this run, e.g. iris:members.classifier.params.C=0.0001",
    )
    p.set_defaults(fn=cmd_release)
    p = sub.add_parser("verify", help="re-hash a release bundle against its manifest")
    p.add_argument("path", help="bundle.tar.gz or its release folder")
    p.set_defaults(fn=cmd_verify)
    p = sub.add_parser("validate", help="validate every release manifest")
    p.set_defaults(fn=cmd_validate)
    p = sub.add_parser("promote", help="approve a published version and make it champion")
    p.add_argument("release")
    p.add_argument("version")
    p.add_argument("--approved-by", required=True, help="who approves (recorded in the ledger)")
    p.add_argument("--reason", required=True, help="why (recorded in the ledger)")
    p.set_defaults(fn=cmd_promote)
    p = sub.add_parser("rollback", help="move champion back to the previous champion")
    p.add_argument("release")
    p.add_argument("--by", default=None, help="who rolls back (default: $RELEASE_ASSETS_ACTOR or the OS user)")
    p.add_argument("--reason", required=True)
    p.set_defaults(fn=cmd_rollback)
    p = sub.add_parser("history", help="the promotion ledger of a release, as a table")
    p.add_argument("release")
    p.set_defaults(fn=cmd_history)
    p = sub.add_parser("list", help="published versions with their gate verdicts and aliases")
    p.add_argument("release", nargs="*")
    p.set_defaults(fn=cmd_list)
    args = parser.parse_args(argv)
    if getattr(args, "by", "") is None:
        from release_assets.rollout.ledger import default_actor

        args.by = default_actor()
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
