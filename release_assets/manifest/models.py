"""The release manifest's models (``releases/<name>.yaml``): members by kind, gates, the rollout section.

Plain pydantic, imported by the modules of the package (paths, gates) and re-exported by it: loading
and cross-field validation are in the package's ``__init__``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from release_assets.manifest.errors import ManifestError
from release_assets.manifest.rollout import RolloutSpec

NAME = r"^[a-z][a-z0-9_]*$"
_RELEASE_NAME = re.compile(NAME)


def release_name_problem(name: object) -> str | None:
    """Why ``name`` is not a release name, or None. Release names become paths and keys (the store, flag files,
    shadow logs, manifests): one rule, one wording, whatever error type each caller raises."""
    if isinstance(name, str) and _RELEASE_NAME.match(name):
        return None
    return f"{name!r} is not a release name (lower-case letters, digits and underscores, e.g. `helpdesk`)"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SplitSpec(_Strict):
    test: float = Field(gt=0, lt=1)
    val: float = Field(default=0.0, ge=0, lt=1)
    seed: int = 0


class SklearnDataset(_Strict):
    kind: Literal["sklearn_dataset"]
    name: Literal["iris", "digits"]
    split: SplitSpec

    @property
    def upstream(self) -> tuple[str, ...]:
        return ()


class JsonlDataset(_Strict):
    kind: Literal["jsonl_dataset"]
    path: str
    schema_: Literal["support_message"] = Field(alias="schema")
    split: SplitSpec
    stratify: str = "intent"
    group_by: str = "paraphrase_group"

    @property
    def upstream(self) -> tuple[str, ...]:
        return ()


class _Model(_Strict):
    data: str
    params: dict[str, Any] = Field(default_factory=dict)

    @property
    def upstream(self) -> tuple[str, ...]:
        return (self.data,)


class TabularClassifier(_Model):
    kind: Literal["tabular_classifier"]


class MftCase(_Strict):
    text: str
    expected: str


class TextClassifier(_Model):
    kind: Literal["text_classifier"]
    # Minimum-functionality cases: sentences any acceptable intent model must get right.
    mft_cases: list[MftCase] = Field(default_factory=list)


class ImageClassifier(_Model):
    kind: Literal["image_classifier"]


class PromptChain(_Strict):
    kind: Literal["prompt_chain"]
    path: str
    chain_file: str = "chain.yaml"  # e.g. chain.llm.yaml: switch steps to LLM bindings with one manifest edit
    uses: list[str]
    golden: str
    knowledge_base: str | None = None
    traffic: str | None = None
    # Runs of the golden suite; above 1, cases whose outcome changes between runs are reported (flaky_rate gate).
    repeats: int = Field(default=1, ge=1, le=20)

    @property
    def upstream(self) -> tuple[str, ...]:
        return tuple(self.uses)


Member = Annotated[
    SklearnDataset | JsonlDataset | TabularClassifier | TextClassifier | ImageClassifier | PromptChain,
    Field(discriminator="kind"),
]
# The members of one family (see ``family``), for code that only ever handles that family.
DatasetMember = SklearnDataset | JsonlDataset
ModelMember = TabularClassifier | TextClassifier | ImageClassifier


class Threshold(_Strict):
    """One gate: an observed metric must stay within ``min``/``max``; ``warn`` gates never hold a release."""

    min: float | None = None
    max: float | None = None
    severity: Literal["block", "warn"] = "block"
    # When a gate cannot decide (no champion yet, too little data): hold the release, or pass with a warning.
    on_inconclusive: Literal["hold", "warn"] = "hold"
    params: dict[str, float] = Field(default_factory=dict)  # test settings, e.g. drift {alpha: 0.01}

    @model_validator(mode="after")
    def _has_bound(self) -> Threshold:
        if self.min is None and self.max is None:
            raise ValueError("a gate needs `min` or `max`")
        return self


class ReleaseManifest(_Strict):
    name: Annotated[str, Field(pattern=NAME)]
    description: str = ""
    owners: list[str] = Field(default_factory=list)
    members: dict[Annotated[str, Field(pattern=NAME)], Member]
    gates: dict[str, dict[str, Threshold]] = Field(default_factory=dict)
    rollout: RolloutSpec | None = None  # how a published version reaches users (manifest/rollout.py)
    source: Path | None = Field(default=None, exclude=True)

    def members_of(self, *kinds: str) -> dict[str, Member]:
        return {name: m for name, m in self.members.items() if m.kind in kinds}

    def topological_order(self) -> list[str]:
        return _toposort({name: m.upstream for name, m in self.members.items()})

    # Typed access to a member whose family the caller already knows (its assets are only built for that family),
    # so the fields of that family can be read without a cast; another kind is a bug, not a manifest error.
    def dataset(self, name: str) -> DatasetMember:
        member = self.members[name]
        if not isinstance(member, SklearnDataset | JsonlDataset):
            raise TypeError(f"member {name!r} is a {member.kind}, not a dataset")
        return member

    def model(self, name: str) -> ModelMember:
        member = self.members[name]
        if not isinstance(member, TabularClassifier | TextClassifier | ImageClassifier):
            raise TypeError(f"member {name!r} is a {member.kind}, not a model")
        return member

    def chain(self, name: str) -> PromptChain:
        member = self.members[name]
        if not isinstance(member, PromptChain):
            raise TypeError(f"member {name!r} is a {member.kind}, not a prompt chain")
        return member


def _toposort(edges: dict[str, tuple[str, ...]]) -> list[str]:
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> None:
        if state.get(node) == "done":
            return
        if state.get(node) == "visiting":
            cycle = " -> ".join([*path[path.index(node) :], node])
            raise ManifestError(f"members form a cycle: {cycle}")
        state[node] = "visiting"
        for dep in edges[node]:
            visit(dep, [*path, node])
        state[node] = "done"
        order.append(node)

    for node in sorted(edges):
        visit(node, [])
    return order
