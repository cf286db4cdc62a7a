"""Member kinds are plugins: one registry, fed by the entry-point group ``release_assets.member_kinds``.

A kind is a :class:`MemberKind`: the pydantic model of its manifest entry, the family the pipeline builds it as
(dataset: raw rows and a split; model: a trained or imported artifact and its report; chain: a prompt chain and its
golden evaluation), the gates it supports and the metrics it reports beyond the shared gates, and where its
implementation lives (``runtime``: a ``module:attribute`` imported only when a member of the kind is built or
served, so loading a manifest imports no training code). The built-in kinds register through the same entry points
(``pyproject.toml``), so nothing is special about them: a third-party package adds a kind by declaring one entry
point, without touching this package.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import entry_points
from typing import Any, Literal

from pydantic import BaseModel

from release_assets.manifest.errors import ManifestError

GROUP = "release_assets.member_kinds"
Family = Literal["dataset", "model", "chain"]
FAMILIES: tuple[Family, ...] = ("dataset", "model", "chain")
# What a model predicts, from its dataset: the task picks the evaluation, the metrics and the gates that apply.
Task = Literal["multiclass", "binary", "regression"]
TASKS: tuple[Task, ...] = ("multiclass", "binary", "regression")


@dataclass(frozen=True)
class MemberKind:
    """One member kind, as a plugin declares it (the object its entry point names)."""

    name: str  # the manifest's `kind:` value
    family: Family
    # The pydantic model of the member's manifest entry: a subclass of its family's base in manifest/models.py
    # (DatasetConfig, ModelConfig, PromptChain), checked when a manifest names the kind.
    config: type[BaseModel]
    runtime: str  # "module:attribute" of the implementation the family's stage calls (see docs/architecture.md)
    description: str
    gates: frozenset[str] = frozenset()  # gate names of manifest/gates.py this kind supports
    # Metrics this kind reports beyond the shared gates, each gateable by name, with the range a bound may take.
    metrics: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    tags: frozenset[str] = frozenset()  # Dagster `kinds` shown on the member's assets
    tasks: frozenset[Task] = frozenset({"multiclass"})  # model kinds: the tasks it can learn or serve

    def load_runtime(self) -> Any:
        """The implementation object, imported now: a clear error naming the kind when its module is broken."""
        module, _, attr = self.runtime.partition(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise ManifestError(f"member kind {self.name!r}: runtime {self.runtime!r} does not load: {exc}") from None


@cache
def installed_kinds() -> dict[str, MemberKind]:
    """Every kind an installed package declares, by name; read once per process (entry points are fixed for it).

    A broken plugin (its object does not import, or is not a MemberKind) is an error naming its entry point, not
    a kind that silently disappears: a manifest using it would otherwise say "unknown kind".
    """
    found: dict[str, MemberKind] = {}
    for ep in entry_points(group=GROUP):
        if ep.name in found:  # the same distribution seen twice on the path (an editable and a wheel install)
            continue
        try:
            kind = ep.load()
        except Exception as exc:  # a plugin's import error, whatever it raises
            raise ManifestError(f"member kind plugin {ep.name} = {ep.value!r} does not load: {exc}") from None
        if not isinstance(kind, MemberKind) or kind.name != ep.name:
            raise ManifestError(
                f"member kind plugin {ep.name} = {ep.value!r}: expected a release_assets MemberKind named "
                f"{ep.name!r}, got {kind!r}"
            )
        if kind.family not in FAMILIES:
            raise ManifestError(f"member kind plugin {ep.name}: family {kind.family!r} is not one of {FAMILIES}")
        found[ep.name] = kind
    if "sklearn_dataset" not in found:
        # The built-ins come from this package's own entry points: without them the install is stale or partial.
        raise ManifestError(
            f"no built-in member kinds in the entry-point group {GROUP!r}: release_assets is not installed "
            "(or its install predates its entry points); run `pip install -e .` or `make setup`"
        )
    return dict(sorted(found.items()))


def member_kind(name: str, where: str = "") -> MemberKind:
    """The kind called ``name``; an unknown one is an error listing the installed kinds."""
    kinds = installed_kinds()
    if name not in kinds:
        at = f"{where}: " if where else ""
        raise ManifestError(f"{at}unknown kind {name!r} (installed kinds: {', '.join(kinds)})")
    return kinds[name]


def kind_names(family: Family) -> tuple[str, ...]:
    return tuple(name for name, kind in installed_kinds().items() if kind.family == family)


def family(kind: str) -> Family:
    """The one mapping from member kind to what the pipeline does with it (its assets, bundle entries, gates)."""
    return member_kind(kind).family
