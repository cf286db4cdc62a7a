"""Proof that a release has nothing to do, without loading Dagster: its inputs as of the last run that published it.

After a run publishes a release (or finds it already published), ``record`` writes ``stamps/<release>.json`` into
the local store: the sha256 of every file an asset of the release reads or is built by (data, prompts, golden
suite, the manifest, and every module of this package, not only the ones the code versions hash, so a change to a
gate's logic is a change too), the manifest as loaded, the installed versions of the libraries that train and
score, the promotion ledger (a new champion changes what regression gates compare with) and the MLflow tracking
URI. ``unchanged`` recomputes all of it, which costs milliseconds, and answers with the published version when every
digest is equal and the version is still in the store: ``release-assets release`` then says ``unchanged`` and
launches no run. Anything it cannot prove (no stamp, a missing file, another store) means a normal run.
"""

from __future__ import annotations

import json
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from release_assets.core.atomic import write_atomic
from release_assets.core.hashing import sha256_file, sha256_json

STAMPS = "stamps"
# The libraries whose version can change what a build produces; a stamp names the versions it was made with.
LIBRARIES = ("dagster", "numpy", "scikit-learn", "scipy", "torch", "tokenizers", "transformers", "onnx", "onnxruntime")


def package_files() -> list[Path]:
    """Every module of this package: the code of any asset, check or gate."""
    root = Path(__file__).resolve().parent.parent
    return sorted(root.rglob("*.py"))


def _libraries() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def _fingerprint(manifest: Any, files: list[Path], store_root: Path, tracking_uri: str) -> dict[str, Any]:
    ledger = store_root / "ledger" / f"{manifest.name}.jsonl"
    return {
        "manifest": sha256_json(manifest.model_dump(mode="json")),
        "files": {str(p): sha256_file(p) if p.is_file() else None for p in sorted(set(files))},
        "libraries": _libraries(),
        "ledger": sha256_file(ledger) if ledger.is_file() else None,
        "tracking_uri": tracking_uri,
    }


def stamp_path(store_root: Path, release: str) -> Path:
    return store_root / STAMPS / f"{release}.json"


def record(store_root: Path, manifest: Any, version: str, files: list[Path], tracking_uri: str) -> None:
    """Remember that ``manifest``'s inputs, as they are now, publish ``version``."""

    stamp = {"version": version, **_fingerprint(manifest, [*files, *package_files()], store_root, tracking_uri)}
    target = stamp_path(store_root, manifest.name)
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(target, json.dumps(stamp, indent=1, sort_keys=True).encode())


def _remote(path: Any) -> bool:
    return isinstance(path, str) and path.startswith(("s3://", "models:/", "runs:/"))


def unchanged(store_root: Path, manifest: Any, tracking_uri: str) -> str | None:
    """The published version if nothing ``manifest``'s release reads has changed since it was stamped, else None."""
    outside = [m for m in manifest.members.values() if getattr(m, "asset", None) or _remote(getattr(m, "path", None))]
    if outside:
        return None  # a Dagster asset's value, an s3:// table, an MLflow model: no local file proves them unchanged
    path = stamp_path(store_root, manifest.name)
    try:
        stamp = json.loads(path.read_text())
        version = stamp["version"]
        files = [Path(p) for p in stamp["files"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None  # no stamp, or one this code cannot read: run
    if not (store_root / "releases" / manifest.name / str(version) / "manifest.json").is_file():
        return None  # the version was removed from the store: rebuild it
    # The package's modules are listed again: a module added since the stamp is a change too.
    now = {"version": version, **_fingerprint(manifest, [*files, *package_files()], store_root, tracking_uri)}
    return version if now == stamp else None
