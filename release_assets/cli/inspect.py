"""The read-only ``release-assets`` commands: ``list``, ``history``, ``verify`` and ``validate``, as text or JSON.

They read the manifests and the release store, never run a job; ``list`` and ``history`` print what
``release_assets.api`` returns. ``cli/main.py`` parses the arguments and reports errors written for people on one
line (or as JSON).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from release_assets.cli.common import OK, REFUSED, manifests_named, print_json, release_store


def cmd_history(args: argparse.Namespace) -> int:
    from release_assets import api
    from release_assets.evaluation.report import plain_table

    found = api.history(args.release)
    if args.json:
        return print_json(found.as_dict())
    if not found.events:
        print(f"{args.release}: no ledger events yet")
        return OK
    rows = [
        [
            e.time[:19].replace("T", " "),
            e.environment,
            e.action,
            e.actor,
            e.run_by or "-",
            e.from_version or "-",
            e.to_version or "-",
            e.reason + api.override_note(e),
        ]
        for e in found.events
    ]
    print(plain_table(["time (UTC)", "environment", "action", "actor", "run by", "from", "to", "reason"], rows))
    return OK


def cmd_list(args: argparse.Namespace) -> int:
    from release_assets import api
    from release_assets.evaluation.report import plain_table

    names = args.release
    manifest_errors: list[str] = []
    if not names:  # every manifest that loads; one that does not is named and does not hide the others
        manifests, manifest_errors = api.load_manifests()
        names = [m.name for m in manifests]
    found = api.versions(names) if names else []
    problems = [error for r in found for error in r.errors]
    if args.json:
        listed = {"releases": [r.as_dict() for r in found], "manifest_errors": manifest_errors}
        return print_json(listed, REFUSED if problems else OK, "; ".join(problems))
    for problem in manifest_errors + problems:  # one unreadable manifest does not hide the other versions
        print(f"FAILED: {problem}", file=sys.stderr)
    rows = []
    for r in found:
        for v in r.versions:
            marks = list(v.aliases)
            if v.weakened_gates:
                marks.append(f"WEAKENED gates ({len(v.weakened_gates)})")
            marks += v.provenance
            gates = f"{v.gates_passed}/{v.gates_total} passed"
            champion_of = ", ".join(v.champion_of) or "-"
            rows.append([r.release, v.version, v.created_at[:19], gates, ", ".join(marks), champion_of])
    rows.sort(key=lambda row: (row[0], row[2]))
    header = ["release", "version", "created (UTC)", "gates", "aliases", "champion of"]
    print(plain_table(header, rows) if rows else "nothing published")
    return REFUSED if problems else OK


def cmd_verify(args: argparse.Namespace) -> int:
    if args.ledger is not None:
        return _verify_ledgers(args.ledger, args.json)
    if not args.path:
        raise _usage("verify needs a bundle (or its folder), or --ledger")
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
        signature = _signature(path, args.trusted_key)
    except (BundleError, ValueError) as exc:
        return _not_verified(args, {"path": str(path), "ok": False}, [str(exc)])
    files = sum(len(m["files"]) for m in manifest["members"].values())
    held = referenced_files(manifest)
    checked = bool(held) and not args.bundle_only
    result: dict[str, Any] = {
        "path": str(path),
        "ok": True,
        "release": manifest["release"],
        "version": manifest["version"],
        "members": len(manifest["members"]),
        "files": files,
        "held_by_reference": len(held),
        "references_checked": checked,  # false with --bundle-only (or when the bundle holds none)
        "signature": signature,
    }
    if checked:
        missing = _missing_data(held)
        if missing:
            return _not_verified(args, {**result, "ok": False}, missing)
    if args.json:
        return print_json(result)
    note = ""
    if checked:
        note = f" ({len(held)} held by reference, in the release store)"
    elif held:
        note = f" ({len(held)} held by reference, not checked: --bundle-only)"
    print(
        f"OK: {manifest['release']} {manifest['version']}: {len(manifest['members'])} members, {files} files "
        f"verified{note}; {signature['text']}"
    )
    return OK


def _signature(bundle: Path, trusted_key: list[str] | None) -> dict[str, Any]:
    """The unit's signature checked against whom this machine trusts (``checking_trust``): a refusal raises
    ``SignatureError`` with the reason. With nobody to trust, what is beside the bundle is said, unchecked."""
    from release_assets.provenance.attest import check_unit
    from release_assets.provenance.keys import short
    from release_assets.provenance.signing import SIGNATURE, signer_of
    from release_assets.rollout.environments import checking_trust

    def beside(name: str) -> bytes | None:
        path = bundle.parent / name
        return path.read_bytes() if path.is_file() else None

    trust = checking_trust(trusted_key)
    if trust is not None:
        check = check_unit(bundle, beside, trust, str(bundle))
        return {"signed": True, "verified": True, "key_id": check.key_id, "text": check.summary()}
    raw = beside(SIGNATURE)
    if raw is None:
        text = "unsigned (no signing key configured, no trusted key: nothing to check)"
        return {"signed": False, "verified": False, "text": text}
    made_by = signer_of(raw, str(bundle.parent / SIGNATURE))
    who = f"key {short(made_by['key_id'])}" if "key_id" in made_by else "a Sigstore certificate (keyless)"
    text = f"signed by {who}, not checked (no trusted key: --trusted-key, environments.yaml trusted_keys)"
    return {"signed": True, "verified": False, **made_by, "text": text}


def _not_verified(args: argparse.Namespace, result: dict[str, Any], problems: list[str]) -> int:
    if args.json:
        return print_json({**result, "problems": problems}, REFUSED, "; ".join(problems))
    for line in problems:
        print(f"FAILED: {line}", file=sys.stderr)
    return REFUSED


def _usage(message: str) -> Exception:
    from release_assets.api import UsageError

    return UsageError(message)


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


def _verify_ledgers(names: list[str], as_json: bool) -> int:
    """Every ledger asked for (default: every release's), each checked even when another does not verify."""
    from release_assets.record.ledger import verify_ledger
    from release_assets.release.store import LedgerError, check_release_name

    for name in names:
        check_release_name(name)  # a name that is not one is a usage error, not a ledger that fails to verify
    store = release_store()
    results, problems = [], []
    for name in names or [m.name for m in manifests_named()[0]]:
        try:
            summary = verify_ledger(store, name)
        except LedgerError as exc:
            results.append({"release": name, "ok": False, "problem": str(exc)})
            problems.append(str(exc))
            continue
        results.append({"release": name, "ok": True, "events": summary["events"], "legacy": summary["legacy"]})
    code = REFUSED if problems else OK
    if as_json:
        return print_json({"ledgers": results}, code, "; ".join(problems))
    for r in results:
        if r["ok"]:
            legacy = f", {r['legacy']} written before chaining" if r["legacy"] else ""
            print(f"OK: ledger {r['release']}: {r['events']} events, hash chain intact{legacy}")
        else:
            print(f"FAILED: {r['problem']}", file=sys.stderr)
    return code


def cmd_validate(args: argparse.Namespace) -> int:
    from release_assets.core.settings import get_settings
    from release_assets.manifest import load_each

    settings = get_settings()
    manifests, errors = load_each(settings.releases_path, settings.project_root)
    valid = []
    for m in manifests:
        broken = _chain_errors(m, settings.project_root)
        if broken:
            errors += broken
            continue
        gates = sum(len(g) for g in m.gates.values())
        valid.append({"release": m.name, "source": str(m.source or ""), "members": len(m.members), "gates": gates})
    code = REFUSED if errors else OK
    if args.json:
        return print_json({"valid": valid, "errors": errors}, code, "; ".join(errors))
    for v in valid:
        print(f"OK: {v['release']}: {v['members']} members, {v['gates']} gates")
    for error in errors:
        print(f"FAILED: {error}", file=sys.stderr)
    return code


def _chain_errors(manifest, project_root: Path) -> list[str]:
    """Each chain file the manifest names, loaded and checked as its build step will (templates, bindings, output
    schemas), with the label sets its models will learn read from their datasets: a chain.yaml that does not parse
    is found here, not minutes into a release."""
    from release_assets.chains.spec import ChainSpecError, load_chain
    from release_assets.datasets.build import DataFileError, load_member, normalise
    from release_assets.manifest import family
    from release_assets.manifest.paths import manifest_root

    root = manifest_root(manifest, project_root)
    errors: list[str] = []
    labels: dict[str, list[str]] = {}
    for name, member in manifest.members.items():
        if member.kind != "prompt_chain":
            continue
        try:
            for used in member.uses:
                if used not in labels and family(manifest.members[used].kind) == "model":
                    if not manifest.members[used].upstream:  # pre-trained embeddings: no labels to branch on
                        labels[used] = []
                        continue
                    data = manifest.members[manifest.members[used].upstream[0]]
                    rows = normalise(load_member(data, root).rows, data)
                    labels[used] = sorted({str(r["label"]) for r in rows})
            load_chain(root / member.path, {u: labels[u] for u in member.uses if u in labels}, member.chain_file)
        except (ChainSpecError, DataFileError, OSError) as exc:
            errors.append(f"{manifest.source or manifest.name}: members.{name}: {exc}")
    return errors
