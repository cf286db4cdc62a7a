"""Deterministic, verifiable release bundles.

The same member files always give the same ``bundle.tar.gz`` bytes: entries sorted, mtimes fixed, owners 0,
gzip header without a timestamp. Reading refuses anything that could escape the extraction folder and any file
whose digest differs from the manifest.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import zlib
from collections.abc import Callable, Collection
from pathlib import Path, PurePosixPath
from typing import Any

from release_assets.core.hashing import member_digest
from release_assets.keys import is_evidence

MANIFEST = "manifest.json"
FIXED_MTIME = 0
# zlib's default level: on the full helpdesk bundle (6 MB of tar, mostly model weights) level 9 took 0.46 s and
# level 6 0.12 s for a file 1.4% larger. Every publish pays it, a prompt-only change included. The level is part
# of the bytes: changing it changes every bundle's digest (not the release version, which hashes member files).
COMPRESS_LEVEL = 6


class BundleError(ValueError):
    """A bundle that must not be trusted; the message says which entry and why."""


# A file entry of manifest.json marked ``"stored": "reference"`` is part of its member (its digest counts towards
# the member's and so the version's) but not of the tarball: its bytes are in the release store's data/, under
# their sha256 (``uri``). The version is the same whichever way a file travels.
REFERENCE = "reference"


def is_referenced(entry: dict[str, Any]) -> bool:
    return entry.get("stored") == REFERENCE


def referenced_files(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The file entries the bundle holds by reference, in path order."""
    files = (f for m in manifest["members"].values() for f in m["files"] if is_referenced(f))
    return sorted(files, key=lambda f: f["path"])


def _info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, FIXED_MTIME, 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def write_bundle(entries: dict[str, Path], manifest: dict[str, Any], out: Path) -> None:
    """Write ``entries`` (name in bundle -> file) plus ``manifest.json`` as a reproducible tar.gz."""
    manifest_bytes = json.dumps(manifest, indent=1, sort_keys=True).encode()
    with (
        out.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=COMPRESS_LEVEL) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for name in sorted(entries):
            _check_name(name)
            path = entries[name]
            with path.open("rb") as fh:
                tar.addfile(_info(name, path.stat().st_size), fh)
        tar.addfile(_info(MANIFEST, len(manifest_bytes)), io.BytesIO(manifest_bytes))


def _check_name(name: str) -> None:
    p = PurePosixPath(name)
    if p.is_absolute() or ".." in p.parts or not p.parts:
        raise BundleError(f"entry {name!r} escapes the bundle folder")


def _read(tar: tarfile.TarFile, info: tarfile.TarInfo) -> bytes:
    """An entry's bytes; only a regular file has any (the writer adds nothing else, the verifier refuses the rest)."""
    f = tar.extractfile(info)
    if f is None:
        raise BundleError(f"entry {info.name!r} is not a regular file")
    return f.read()


def read_manifest(bundle: Path) -> dict[str, Any]:
    with tarfile.open(bundle, "r:gz") as tar:
        member = tar.getmember(MANIFEST)
        return json.loads(_read(tar, member))


def verify_bundle(bundle: Path) -> dict[str, Any]:
    """Re-hash every entry against ``manifest.json``; return the manifest or raise :class:`BundleError`."""
    try:
        return _verify(bundle)
    except (tarfile.TarError, zlib.error, EOFError, OSError, json.JSONDecodeError) as exc:
        # Flipped bits in the compressed stream surface as decompression errors, not as a digest mismatch.
        raise BundleError(f"{bundle}: corrupt bundle ({type(exc).__name__}: {exc})") from None


def _verify(bundle: Path) -> dict[str, Any]:
    if not bundle.exists():
        raise BundleError(f"{bundle}: no such bundle")
    try:
        tar = tarfile.open(bundle, "r:gz")  # noqa: SIM115 - opened here to word the error, closed by `with tar` below
    except (tarfile.TarError, OSError) as exc:
        raise BundleError(f"{bundle}: not a readable tar.gz ({exc})") from None
    with tar:
        try:
            manifest = json.loads(_read(tar, tar.getmember(MANIFEST)))
        except KeyError:
            raise BundleError(f"{bundle}: has no {MANIFEST}") from None
        expected = {f["path"]: f for m in manifest["members"].values() for f in m["files"] if not is_referenced(f)}
        seen = set()
        for info in tar.getmembers():
            if info.name == MANIFEST:
                continue
            _check_name(info.name)
            if not info.isfile():
                raise BundleError(f"{bundle}: entry {info.name!r} is a link or special file; refused")
            if info.name not in expected:
                raise BundleError(f"{bundle}: entry {info.name!r} is not listed in {MANIFEST}")
            digest = hashlib.sha256(_read(tar, info)).hexdigest()
            if digest != expected[info.name]["sha256"]:
                raise BundleError(
                    f"{bundle}: {info.name}: sha256 {digest[:16]}... does not match the manifest's "
                    f"{expected[info.name]['sha256'][:16]}..."
                )
            seen.add(info.name)
        missing = sorted(set(expected) - seen)
        if missing:
            raise BundleError(f"{bundle}: listed in {MANIFEST} but missing from the bundle: {missing[:5]}")
    # Tie the version to the bytes: each member's digest is recomputed from its files, and which members count
    # towards the version follows from their names, not from what the manifest claims.
    for name, member in manifest["members"].items():
        digest = member_digest({f["path"].split("/", 1)[1]: f["sha256"] for f in member["files"]})
        if digest != member["digest"]:
            raise BundleError(f"{bundle}: member {name}: digest {member['digest'][:12]} does not match its files")
    recomputed = {
        n: {**m, "role": "evidence" if is_evidence(n) else "artifact"} for n, m in manifest["members"].items()
    }
    version = release_version(recomputed)
    if version != manifest["version"]:
        raise BundleError(f"{bundle}: version {manifest['version']} does not match its members' digest {version}")
    return manifest


def release_version(members: dict[str, dict[str, Any]]) -> str:
    """The release's version: a digest over the digests of the members that define it (data, models, chain).

    Unchanged content keeps its version; evaluation reports (``role: evidence``) are bundled and verified but
    left out, so re-measuring latency on the same models does not mint a new version.
    """
    joined = "\n".join(
        f"{name}:{m['digest']}" for name, m in sorted(members.items()) if m.get("role", "artifact") == "artifact"
    )
    return hashlib.sha256(joined.encode()).hexdigest()[:16]


def extract_bundle(
    bundle: Path,
    target: Path,
    members: Collection[str] | None = None,
    fetch_data: Callable[[str, Path], Path] | None = None,
) -> dict[str, Any]:
    """Verify, then extract regular files only, each inside ``target``.

    ``members``: only these members' files (a server needs its models and chain, not the training data);
    ``fetch_data(sha256, dest)``: also write the files held by reference, from where the store keeps them, each
    checked against its digest (without it they are left out: only a rebuild or a triage needs them).
    """
    manifest = verify_bundle(bundle)
    target = target.resolve()

    def destination(name: str) -> Path | None:
        if members is not None and name.split("/", 1)[0] not in members:
            return None
        dest = (target / name).resolve()
        if not dest.is_relative_to(target):
            raise BundleError(f"{bundle}: entry {name!r} escapes {target}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        return dest

    with tarfile.open(bundle, "r:gz") as tar:
        for info in tar.getmembers():
            dest = target / MANIFEST if info.name == MANIFEST else destination(info.name)
            if dest is not None:
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(_read(tar, info))
    if fetch_data is not None:
        for entry in referenced_files(manifest):
            dest = destination(entry["path"])
            if dest is not None:
                fetch_data(entry["sha256"], dest)
                if hashlib.sha256(dest.read_bytes()).hexdigest() != entry["sha256"]:
                    raise BundleError(f"{bundle}: {entry['path']} (held by reference) does not match its sha256")
    return manifest
