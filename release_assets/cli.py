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


def cmd_release(args: argparse.Namespace) -> int:
    from release_assets.definitions import build_defs
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
    defs = build_defs(manifests, settings.project_root, settings.store_path)
    job = defs.resolve_job_def("release_all")
    start = time.perf_counter()
    with _instance(settings.project_root) as instance:
        result = job.execute_in_process(
            instance=instance,
            raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": args.log_level}}}},
        )
    elapsed = time.perf_counter() - start
    summaries = summarise_run(result, [m.name for m in manifests], settings.store_path)
    for s in summaries:
        print(s.render())
    print(f"run {result.run_id} finished in {elapsed:.1f} s")
    return 0 if all(s.published_ok for s in summaries) else 1


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
    p.add_argument("--log-level", default="WARNING", help="Dagster console log level (default: WARNING)")
    p.set_defaults(fn=cmd_release)
    p = sub.add_parser("verify", help="re-hash a release bundle against its manifest")
    p.add_argument("path", help="bundle.tar.gz or its release folder")
    p.set_defaults(fn=cmd_verify)
    p = sub.add_parser("validate", help="validate every release manifest")
    p.set_defaults(fn=cmd_validate)
    args = parser.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
