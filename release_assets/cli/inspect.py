"""The read-only ``release-assets`` commands: ``list``, ``history``, ``verify`` and ``validate``.

They read the manifests and the release store, never run a job; ``cli/main.py`` parses the arguments and reports
errors written for people on one line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from release_assets.cli.common import manifests_named, release_store


def _environments():
    from release_assets.rollout.environments import project_environments

    return project_environments()


def promoted_to(release: str, version: str, environment: str) -> str:
    """What `promote --to` prints once the job succeeded: the environment's champion and the regions it is in."""
    from release_assets.rollout.environment_promotion import champions

    events = release_store().events(release)
    moved = next(e for e in reversed(events) if e.get("environment") == environment and e["action"] == "promoted")
    champion = champions(_environments(), events)[environment]
    return (
        f"{release}: {champion} is now champion of {environment} (regions: {', '.join(moved['regions'])}; "
        f"by {moved['actor']})"
    )


def _note(e: dict) -> str:
    """What a history row must not hide: a promotion over weakened gates or a dirty or off-branch build (the
    override), a release built with weakened gates."""
    from release_assets.record.servable import override_text

    override = e.get("override")
    if isinstance(override, dict) and override_text(override):
        return f" [OVERRIDE of {override_text(override)}]"
    if e.get("weakened_gates"):
        return f" [built with weakened gates: {'; '.join(e['weakened_gates'])}]"
    return ""


def _provenance_marks(git: dict | None) -> list[str]:
    """What `list` shows of where a version was built, when promoting it will need an override."""
    git = git or {}
    marks = ["DIRTY tree"] if git.get("dirty") else []
    if git.get("on_default_branch") is False:
        marks.append(f"OFF {git.get('base_ref') or 'the default branch'}")
    return marks


def cmd_history(args: argparse.Namespace) -> int:
    from release_assets.evaluation.report import plain_table
    from release_assets.rollout.environment_promotion import environment_of

    events = release_store().events(args.release)
    if not events:
        print(f"{args.release}: no ledger events yet")
        return 0
    envs = _environments()
    rows = [
        [
            e["time"][:19].replace("T", " "),
            environment_of(envs, e),
            e["action"],
            e["actor"],
            e.get("run_by", "-"),
            e["from_version"] or "-",
            e["to_version"] or "-",
            e["reason"] + _note(e),
        ]
        for e in events
    ]
    print(plain_table(["time (UTC)", "environment", "action", "actor", "run by", "from", "to", "reason"], rows))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from release_assets.evaluation.report import plain_table
    from release_assets.record.ledger import replay
    from release_assets.release.store import StoreError
    from release_assets.rollout.environment_promotion import champions

    store = release_store()
    names = args.release or [m.name for m in manifests_named()[0]]
    envs = _environments()
    rows, problems = [], 0
    for name in names:
        events = store.events(name)
        state = replay(events)
        runs = champions(envs, events)  # environment -> its champion
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
            marks += _provenance_marks((m.get("lineage") or {}).get("git"))
            champion_of = ", ".join(env for env, v in runs.items() if v == version) or "-"
            created = m.get("created_at", "")[:19]
            rows.append([name, version, created, f"{passed}/{len(gates)} passed", ", ".join(marks), champion_of])
    rows.sort(key=lambda r: (r[0], r[2]))
    header = ["release", "version", "created (UTC)", "gates", "aliases", "champion of"]
    print(plain_table(header, rows) if rows else "nothing published")
    return 1 if problems else 0


def cmd_verify(args: argparse.Namespace) -> int:
    if args.ledger is not None:
        return _verify_ledgers(args.ledger)
    if not args.path:
        print("FAILED: verify needs a bundle (or its folder), or --ledger", file=sys.stderr)
        return 2
    from release_assets.record.verified import check_agreement
    from release_assets.release.bundle import BundleError, referenced_files, verify_bundle

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
    held = referenced_files(manifest)
    note = ""
    if held and not args.bundle_only:
        missing = _missing_data(held)
        if missing:
            for line in missing:
                print(f"FAILED: {line}", file=sys.stderr)
            return 1
        note = f" ({len(held)} held by reference, in the release store)"
    elif held:
        note = f" ({len(held)} held by reference, not checked: --bundle-only)"
    print(
        f"OK: {manifest['release']} {manifest['version']}: {len(manifest['members'])} members, {files} files "
        f"verified{note}"
    )
    return 0


def _missing_data(held: list[dict]) -> list[str]:
    """Each file held by reference that the release store does not have, or has with other bytes."""
    import tempfile

    from release_assets.core.hashing import sha256_file
    from release_assets.release.store import StoreError

    store = release_store()
    out = []
    with tempfile.TemporaryDirectory(prefix="verify-data-") as tmp:
        for entry in held:
            try:
                store.fetch_data(entry["sha256"], Path(tmp) / entry["sha256"])
            except StoreError as exc:
                # Another environment's store holds a copy of the bundle but not the data (regions get none): the
                # copy the unit names (its `uri`) answers when it is a file this machine can read.
                recorded = Path(entry.get("uri", ""))
                if not (recorded.is_absolute() and recorded.is_file() and sha256_file(recorded) == entry["sha256"]):
                    out.append(f"{entry['path']} is held by reference (sha256 {entry['sha256'][:16]}...): {exc}")
            finally:
                (Path(tmp) / entry["sha256"]).unlink(missing_ok=True)
    return out


def _verify_ledgers(names: list[str]) -> int:
    from release_assets.record.ledger import verify_ledger

    store = release_store()
    for name in names or [m.name for m in manifests_named()[0]]:
        summary = verify_ledger(store, name)  # LedgerError names the line; main() prints it
        legacy = f", {summary['legacy']} written before chaining" if summary["legacy"] else ""
        print(f"OK: ledger {name}: {summary['events']} events, hash chain intact{legacy}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from release_assets.core.settings import get_settings
    from release_assets.manifest import load_each

    settings = get_settings()
    manifests, errors = load_each(settings.releases_path, settings.project_root)
    for m in manifests:
        broken = _chain_errors(m, settings.project_root)
        if broken:
            errors += broken
            continue
        print(f"OK: {m.name}: {len(m.members)} members, {sum(len(g) for g in m.gates.values())} gates")
    for error in errors:
        print(f"FAILED: {error}", file=sys.stderr)
    return 1 if errors else 0


def _chain_errors(manifest, project_root: Path) -> list[str]:
    """Each chain file the manifest names, loaded and checked as its build step will (templates, bindings, output
    schemas), with the label sets its models will learn read from their datasets: a chain.yaml that does not parse
    is found here, not minutes into a release."""
    from release_assets.chains.spec import ChainSpecError, load_chain
    from release_assets.datasets.build import DataFileError, load_member, normalise
    from release_assets.manifest import family
    from release_assets.manifest.paths import manifest_root

    root = manifest_root(manifest, project_root)
    errors, labels = [], {}
    for name, member in manifest.members.items():
        if member.kind != "prompt_chain":
            continue
        try:
            for used in member.uses:
                if used not in labels and family(manifest.members[used].kind) == "model":
                    data = manifest.members[manifest.members[used].upstream[0]]
                    rows = normalise(load_member(data, root).rows, data)
                    labels[used] = sorted({str(r["label"]) for r in rows})
            load_chain(root / member.path, {u: labels[u] for u in member.uses if u in labels}, member.chain_file)
        except (ChainSpecError, DataFileError, OSError) as exc:
            errors.append(f"{manifest.source or manifest.name}: members.{name}: {exc}")
    return errors
