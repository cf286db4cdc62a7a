"""Content hashes: of files, of folders, of JSON-able values, and of the source code a builder runs."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_json(value: Any) -> str:
    """Hash of a canonical JSON rendering, so dict order and whitespace never change a version."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def module_source_path(module: str) -> Path:
    """The file behind a module name, found without importing it (no torch at definition time)."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(f"cannot locate source of module {module!r}")
    return Path(spec.origin)


def code_version(modules: Iterable[str], files: Iterable[Path] = (), config: Any = None) -> str:
    """A short version over the builder's source modules, the data/prompt files it reads, and its config."""
    parts = {
        "modules": {m: sha256_file(module_source_path(m)) for m in sorted(set(modules))},
        "files": {str(p): sha256_file(p) for p in sorted(set(files))},
        "config": config,
    }
    return sha256_json(parts)[:16]


def files_digest(paths: Iterable[Path]) -> dict[str, str]:
    """Hashes of the files a build reads, taken at build time: an edit made after definitions loaded still
    changes the build's fingerprint, so a long-running UI never serves a stale cached artifact."""
    return {str(p): sha256_file(p) for p in sorted(set(paths))}


class CodeInputs:
    """What an asset depends on beyond its upstream assets: its builder's source modules, the data and prompt
    files it reads, and its manifest section. The code version hashes them; the change sensor watches them."""

    def __init__(self, modules: Iterable[str], files: Iterable[Path] = (), config: Any = None) -> None:
        self.modules = tuple(sorted(set(modules)))
        self.files = tuple(sorted({Path(f) for f in files}))
        self.config = config

    def version(self) -> str:
        return code_version(self.modules, self.files, self.config)

    def watched(self) -> list[str]:
        """Absolute paths of every file whose content enters the version."""
        return sorted({str(module_source_path(m)) for m in self.modules} | {str(f.resolve()) for f in self.files})

    def metadata(self) -> dict[str, Any]:
        return {"code_inputs": {"files": self.watched(), "config_digest": sha256_json(self.config)[:16]}}
