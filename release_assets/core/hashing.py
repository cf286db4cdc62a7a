"""Content hashes: of files, of folders, of JSON-able values, and of the source code a builder runs."""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

CHUNK = 1 << 20
# Only the project's own modules enter a code version: third-party versions are pinned by the dependency lock.
PROJECT = __name__.partition(".")[0]
# Lines that start an import statement, at any indent: this code base imports lazily inside functions.
_IMPORT_LINE = re.compile(rb"^[ \t]*(?:from|import)[ \t]", re.MULTILINE)
# Never part of a closure: the settings. What a build takes from them are values read from the environment, which
# no code version covers; their source is field declarations and descriptions, and adding a setting must not
# rebuild every model whose code reads one (the model runtime, the LLM cache, the trace redaction rules).
NOT_BUILD_CODE = frozenset({f"{PROJECT}.core.settings"})


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_json(value: Any) -> str:
    """Hash of a canonical JSON rendering, so dict order and whitespace never change a version."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def member_digest(files: dict[str, str]) -> str:
    """A built artifact's (or bundle member's) content digest from its files' sha256: the data version downstream
    assets and releases key on (``ArtifactRef.digest``, the bundle manifest's member ``digest``)."""
    return sha256_json(dict(sorted(files.items())))


@functools.cache
def module_file(module: str) -> Path | None:
    """The source file of a module, or None, found without importing it or its packages (no torch at definition
    time): a top-level name is located by Python's finders, a submodule in its package's folder."""
    if not all(part.isidentifier() for part in module.split(".")):
        return None  # e.g. a string constant that only looks like a module name
    parent, _, name = module.rpartition(".")
    if not parent:
        try:
            spec = importlib.util.find_spec(module)  # a top-level name is located, never imported
        except (ImportError, ValueError):
            return None
        return Path(spec.origin) if spec is not None and spec.has_location and spec.origin else None
    package = module_file(parent)
    if package is None or package.name != "__init__.py":
        return None  # only a package has submodules: `from a.b import name` names no module unless a.b is one
    for candidate in (package.with_name(f"{name}.py"), package.with_name(name) / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def module_source_path(module: str) -> Path:
    """The file behind a module name, found without importing it."""
    path = module_file(module)
    if path is None:
        raise ModuleNotFoundError(f"cannot locate source of module {module!r}")
    return path


@functools.cache
def module_source(module: str) -> bytes:
    """A module's source, read once per process: the closure parses it and the code version hashes it."""
    return module_source_path(module).read_bytes()


def _import_statements(source: bytes) -> Iterator[ast.stmt]:
    """The import statements of a module, wherever they sit (top level or inside functions).

    Only the lines that start an import are parsed, not the whole file: parsing every module of the package
    with ``ast`` costs well over 100 ms at definitions load, these statements alone a few ms.
    """
    for match in _IMPORT_LINE.finditer(source):
        end = source.find(b"\n", match.end())
        end = len(source) if end < 0 else end
        if b"(" in source[match.start() : end]:  # a parenthesised name list spans lines up to its ")"
            end = max(end, source.find(b")", match.start()) + 1)
        while source[end - 1 : end] == b"\\":  # backslash continuations
            nxt = source.find(b"\n", end + 1)
            end = len(source) if nxt < 0 else nxt
        try:
            yield from ast.parse(source[match.start() : end].strip()).body
        except SyntaxError:
            continue  # prose in a docstring that happens to start with "from" or "import"


def _absolute(module: str | None, level: int, package: str) -> str | None:
    """The absolute name of ``from <level dots><module> import ...`` written in ``package``."""
    if level == 0:
        return module
    parts = package.split(".")
    if level - 1 >= len(parts):
        return None  # beyond the top package: Python would refuse it too
    base = ".".join(parts[: len(parts) - (level - 1)])
    return f"{base}.{module}" if module else base


@functools.cache
def _string_names(prefix: str) -> re.Pattern[bytes]:
    """Quoted dotted names under ``prefix``, like the module names in the model registry's ``MODEL_KINDS``. Comments
    and docstrings that quote one count too: a harmless extra, never a miss."""
    return re.compile(rb"""["'](%s(?:\.\w+)*)["']""" % re.escape(prefix.encode()))


@functools.cache
def imported_modules(module: str, prefix: str = PROJECT) -> frozenset[str]:
    """Modules under ``prefix`` that running ``module`` may load: its imports (a name in ``from a.b import c``
    counts when it is itself a module), string constants naming a module (loaded later by name, as the model
    registry does), and its own package, whose ``__init__`` Python runs first."""
    source = module_source(module)
    # Relative imports resolve against the module's package: itself for a package's __init__.
    here = module if module_source_path(module).name == "__init__.py" else module.rpartition(".")[0]
    # Its own package (empty for a top-level name); followed hop by hop this also covers `import a.b.c` running
    # the __init__ of a and of a.b.
    candidates = {module.rpartition(".")[0]}
    for node in _import_statements(source):
        if isinstance(node, ast.Import):
            candidates.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node.module, node.level, here)
            if base:
                candidates.add(base)
                candidates.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    candidates.update(m.decode() for m in _string_names(prefix).findall(source))
    in_project = {c for c in candidates if (c == prefix or c.startswith(prefix + ".")) and c != module}
    return frozenset(c for c in in_project if module_file(c) is not None)


@functools.cache
def _closure_of(module: str, prefix: str) -> frozenset[str]:
    seen: set[str] = set()
    todo = [module]
    while todo:
        current = todo.pop()
        if current not in seen:  # the seen set ends import cycles
            seen.add(current)
            todo.extend(m for m in imported_modules(current, prefix) if m not in NOT_BUILD_CODE)
    return frozenset(seen)


def module_closure(modules: Iterable[str], prefix: str = PROJECT) -> tuple[str, ...]:
    """``modules`` and every module under ``prefix`` they import, directly or not, found by reading source
    (nothing is imported). Cached per module for the process: a module's file is read and parsed once.

    A module outside ``prefix`` (a team's own training code, a plugin's kind) brings the closure within its own
    top-level package: editing any module of that package that the function's module imports changes the
    version, while third-party libraries stay out, as they do for this package's own modules."""
    return tuple(
        sorted(
            set().union(
                *(
                    _closure_of(m, prefix if m.startswith(prefix + ".") or m == prefix else m.partition(".")[0])
                    for m in modules
                )
            )
        )
    )


def code_version(modules: Iterable[str], files: Iterable[Path] = (), config: Any = None) -> str:
    """A short version over the builder's source modules and every project module they import, the data/prompt
    files it reads, and its config."""
    parts = {
        "modules": {m: hashlib.sha256(module_source(m)).hexdigest() for m in module_closure(modules)},
        "files": {str(p): sha256_file(p) for p in sorted(set(files))},
        "config": config,
    }
    return sha256_json(parts)[:16]


def files_digest(paths: Iterable[Path]) -> dict[str, str]:
    """Hashes of the files a build reads, taken at build time: an edit made after definitions loaded still
    changes the build's fingerprint, so a long-running UI never serves a stale cached artifact."""
    return {str(p): sha256_file(p) for p in sorted(set(paths))}


class CodeInputs:
    """What an asset depends on beyond its upstream assets: its builder's source modules with every project module
    they import (``modules`` are the entry points), the data and prompt files it reads, and its manifest section.
    The code version hashes them; the change sensor watches them."""

    def __init__(self, modules: Iterable[str], files: Iterable[Path] = (), config: Any = None) -> None:
        self.modules = module_closure(modules)
        self.files = tuple(sorted({Path(f) for f in files}))
        self.config = config

    def version(self) -> str:
        return code_version(self.modules, self.files, self.config)

    def watched(self) -> list[str]:
        """Absolute paths of every file whose content enters the version."""
        return sorted({str(module_source_path(m)) for m in self.modules} | {str(f.resolve()) for f in self.files})

    def metadata(self) -> dict[str, Any]:
        return {"code_inputs": {"files": self.watched(), "config_digest": sha256_json(self.config)[:16]}}
