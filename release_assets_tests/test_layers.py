"""The package's import structure, read from source: no import cycle, every module in a layer of the import-linter
contract (pyproject.toml; `lint-imports` checks the contract itself), and imports inside functions only for the
heavy libraries and modules named in release_assets/core/lazy_imports.py."""

import ast
import subprocess
import sys
import tomllib
from functools import cache
from pathlib import Path

import release_assets
from release_assets.core.lazy_imports import DEFERRED, HEAVY, NOT_CHECKED

PACKAGE = Path(release_assets.__file__).parent
REPO = PACKAGE.parent
FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)


def _name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if "__pycache__" not in p.parts}


def _imported(module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """Dotted names an import statement reaches: a project module where it names one, else the name as written."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = node.module or ""
    if node.level:
        package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
        parts = package.split(".")
        base = ".".join(parts[: len(parts) - (node.level - 1)] + ([base] if base else []))
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]


def _project(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


@cache
def _imports(module: str) -> tuple[tuple[str, bool, int], ...]:
    """(name reached, inside a function, line) for every import statement of ``module``."""
    found: list[tuple[str, bool, int]] = []

    def visit(node: ast.AST, inside: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                found.extend((name, inside, child.lineno) for name in _imported(module, child))
            visit(child, inside or isinstance(child, FUNCTIONS))

    visit(ast.parse(MODULES[module].read_text(encoding="utf-8")), False)
    return tuple(found)


def _checked(module: str) -> bool:
    return not any(module == p or module.startswith(p + ".") for p in NOT_CHECKED)


@cache
def _loads(module: str) -> frozenset[str]:
    """Top-level names of every third-party package importing ``module`` loads (module-level imports, followed
    through project modules and the packages whose __init__ runs first)."""
    seen, todo, out = set(), [module], set()
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        if "." in current:
            todo.append(current.rpartition(".")[0])
        for name, inside, _ in _imports(current):
            if inside:
                continue
            target = _project(name)
            if target is not None:
                todo.append(target)
            elif name.split(".")[0] not in sys.stdlib_module_names:
                out.add(name.split(".")[0])
    return frozenset(out)


def test_no_import_cycles():
    """Tarjan over every import, those inside functions too; a package's own submodules importing the package are
    its __init__ running first, not a cycle."""
    graph = {
        m: {t for name, _, _ in _imports(m) if (t := _project(name)) and t != m and not m.startswith(t + ".")}
        for m in MODULES
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    cycles: list[list[str]] = []
    # Deep enough for the import graph's longest path; restored after, so later tests run at the default.
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(10_000)

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while (w := stack.pop()) != v:
                on.discard(w)
                group.append(w)
            on.discard(v)
            if group:
                cycles.append(sorted([v, *group]))

    try:
        for v in graph:
            if v not in index:
                visit(v)
    finally:
        sys.setrecursionlimit(limit)
    assert cycles == []


def test_imports_inside_functions_only_defer_heavy_libraries():
    """A function imports a HEAVY library, or a DEFERRED project module; anything else goes at the top."""
    wrong = [
        f"{MODULES[m].relative_to(REPO)}:{line}: {name}"
        for m in MODULES
        if _checked(m)
        for name, inside, line in _imports(m)
        if inside and (name.split(".")[0] not in HEAVY if _project(name) is None else _project(name) not in DEFERRED)
    ]
    assert wrong == [], "import at module level, or name the library in core/lazy_imports.py:\n" + "\n".join(wrong)


def test_the_lazy_import_lists_are_current():
    deferred_loads = {m: _loads(m) for m in DEFERRED}
    for module, loads in deferred_loads.items():
        assert module in MODULES, f"DEFERRED names {module}, which does not exist"
        assert loads & set(HEAVY), f"{module} loads no HEAVY library at import ({sorted(loads)}): import it anywhere"
    used = {name.split(".")[0] for m in MODULES if _checked(m) for name, inside, _ in _imports(m) if inside}
    used |= set().union(*deferred_loads.values())
    assert set(HEAVY) <= used, f"HEAVY names libraries nothing defers: {sorted(set(HEAVY) - used)}"


def test_loading_the_definitions_loads_no_heavy_library():
    """What the lists are for: the code location loads without them (Dagster itself aside: it is the location)."""
    code = "import sys; import release_assets.definitions; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    loaded = set(out.stdout.split())
    assert {m.split(".")[0] for m in loaded} & (set(HEAVY) - {"dagster"}) == set()
    assert loaded & set(DEFERRED) == set()


def test_every_module_is_in_a_layer_of_the_contract():
    """The layers contract names packages and modules; a module outside all of them would be checked by nothing."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    contract = next(c for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "layers")
    entries = {part.strip() for layer in contract["layers"] for part in layer.replace("|", ":").split(":")}
    # The root package holds every layer; a package listed module by module (release/) has an __init__ in none of
    # them, which must stay free of imports.
    empty_packages = {m for m in MODULES if MODULES[m].name == "__init__.py" and not _imports(m)}
    listed = [m for m in MODULES if m != "release_assets" and m not in empty_packages]
    outside = [m for m in listed if not any(m == e or m.startswith(e + ".") for e in entries)]
    assert outside == [], f"add these to a layer in [tool.importlinter]: {outside}"
