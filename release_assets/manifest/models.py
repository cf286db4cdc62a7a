"""The release manifest's models (``releases/<name>.yaml``): members by kind, gates, the rollout section.

Plain pydantic, imported by the modules of the package (paths, gates) and re-exported by it: loading
and cross-field validation are in the package's ``__init__``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializeAsAny,
    ValidationError,
    WithJsonSchema,
    model_validator,
)

from release_assets.manifest.contracts import ExpectSpec
from release_assets.manifest.errors import ManifestError, validation_problems
from release_assets.manifest.kinds import Family, Task, member_kind
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


class MemberConfig(_Strict):
    """A member's manifest entry: every kind's config model derives from the base of its family (below)."""

    kind: str
    # What this member needs of the members it is built from, beyond what its kind derives (manifest/contracts.py):
    # checked by its `contract` gate. Left out of the dump when empty, so members that state nothing keep the code
    # version (and so the release version) they had before the field existed.
    expects: dict[str, ExpectSpec] = Field(default_factory=dict, exclude_if=lambda v: not v)

    @property
    def upstream(self) -> tuple[str, ...]:
        """The members this one is built from."""
        return ()


class DatasetConfig(MemberConfig):
    """A dataset kind: raw rows, then a split (its runtime builds both)."""

    def learning_task(self) -> Task:
        """What a model trained on it predicts: the built-in datasets are all multiclass."""
        return "multiclass"


class ModelConfig(MemberConfig):
    """A model kind: built from the split of its ``data`` member, with ``params`` for its trainer; or, for a kind
    that comes whole from elsewhere (``from_data`` false: pre-trained weights), from no member at all."""

    # Whether a member of the kind is built from a dataset's split (and so has `data` and an evaluation report).
    from_data: ClassVar[bool] = True
    data: str | None = None  # required when from_data: the manifest's loader says which member lacks it
    params: dict[str, Any] = Field(default_factory=dict)

    @property
    def upstream(self) -> tuple[str, ...]:
        return (self.data,) if self.data is not None else ()


FAMILY_BASES: dict[Family, type[MemberConfig]] = {}  # filled below, once the chain's base is defined


class SplitSpec(_Strict):
    test: float = Field(gt=0, lt=1)
    val: float = Field(default=0.0, ge=0, lt=1)
    seed: int = 0


class SklearnDataset(DatasetConfig):
    kind: Literal["sklearn_dataset"]
    name: Literal["iris", "digits"]
    split: SplitSpec


class JsonlDataset(DatasetConfig):
    kind: Literal["jsonl_dataset"]
    path: str
    schema_: Literal["support_message"] = Field(alias="schema")
    split: SplitSpec
    stratify: str = "intent"
    group_by: str = "paraphrase_group"


class TabularClassifier(ModelConfig):
    kind: Literal["tabular_classifier"]


class MftCase(_Strict):
    text: str
    expected: str


class TextClassifier(ModelConfig):
    kind: Literal["text_classifier"]
    # Minimum-functionality cases: sentences any acceptable intent model must get right.
    mft_cases: list[MftCase] = Field(default_factory=list)


class ImageClassifier(ModelConfig):
    kind: Literal["image_classifier"]


class SentenceEmbedder(ModelConfig):
    """Pre-trained sentence embeddings (models/embedding.py): weights from an installed package's folder or a
    project folder, pinned by sha256; trained from nothing, so it names no `data` and has no evaluation report."""

    from_data: ClassVar[bool] = False
    kind: Literal["sentence_embedder"]
    package: str | None = None  # an installed package that ships the weights (its import name)
    package_folder: str = "model"  # the weights' folder inside that package
    path: str | None = None  # or a folder of the project: config.json, model.safetensors, tokenizer.json
    weights_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    max_length: int = Field(default=128, ge=8, le=512)  # tokens per sentence; longer ones are cut

    @model_validator(mode="after")
    def _one_source(self) -> SentenceEmbedder:
        if (self.package is None) == (self.path is None):
            raise ValueError("name exactly one of `package` (an installed package shipping the weights) or `path`")
        if self.data is not None:
            raise ValueError("data: an embedding model is not trained from a dataset; remove `data`")
        return self


class BreakerSpec(_Strict):
    """When the golden run stops: above ``max_failure_rate`` of cases failing validation, once ``min_cases`` ran
    (looked at every ``batch`` cases); the cases not run are not paid for."""

    max_failure_rate: float = Field(ge=0, lt=1)
    min_cases: int = Field(default=20, ge=1)
    batch: int = Field(default=10, ge=1)


class PromptChain(MemberConfig):
    kind: Literal["prompt_chain"]
    path: str
    chain_file: str = "chain.yaml"  # e.g. chain.llm.yaml: switch steps to LLM bindings with one manifest edit
    uses: list[str]
    golden: str
    knowledge_base: str | None = None
    traffic: str | None = None
    # Runs of the golden suite; above 1, cases whose outcome changes between runs are reported (flaky_rate gate).
    repeats: int = Field(default=1, ge=1, le=20)
    # The labelled set the chain's judge (chain.yaml `judge:`) is calibrated on: judge_agreement, judge_kappa.
    # (Both left out of the dump when unset, so chains that set neither keep their code version.)
    judge_labels: str | None = Field(default=None, exclude_if=lambda v: v is None)
    # Stop the golden run early when validation failures pass a rate (evaluation/breaker.py): stopped_early gate.
    breaker: BreakerSpec | None = Field(default=None, exclude_if=lambda v: v is None)

    @property
    def upstream(self) -> tuple[str, ...]:
        return tuple(self.uses)


FAMILY_BASES.update({"dataset": DatasetConfig, "model": ModelConfig, "chain": PromptChain})
# A member as the manifest holds it: the instance of its kind's own config model, dumped with all of its fields.
# Its JSON schema (what `dg check yaml` applies) asks only for a `kind`: the fields are those of whichever kind is
# installed, and validation (``parse_member``) names the wrong one exactly.
Member = Annotated[
    SerializeAsAny[MemberConfig],
    WithJsonSchema(
        {
            "type": "object",
            "properties": {"kind": {"type": "string", "description": "an installed member kind"}},
            "required": ["kind"],
            "additionalProperties": True,
        }
    ),
]


def parse_member(name: str, raw: Any) -> MemberConfig:
    """``raw`` (one entry under ``members:``) validated by the config model of the kind it names.

    Raises :class:`ManifestError` naming ``members.<name>.<field>``: an unknown kind lists the installed ones.
    """
    where = f"members.{name}"
    if isinstance(raw, MemberConfig):
        return raw
    if not isinstance(raw, dict):
        raise ManifestError(f"{where}: expected a mapping with a `kind:`, found {type(raw).__name__}")
    if "kind" not in raw:
        raise ManifestError(f"{where}.kind: missing (every member names its kind)")
    kind = member_kind(str(raw["kind"]), f"{where}.kind")
    base = FAMILY_BASES[kind.family]
    if not (isinstance(kind.config, type) and issubclass(kind.config, base)):
        raise ManifestError(
            f"{where}.kind: the {kind.name!r} plugin's config model {kind.config!r} does not derive from "
            f"release_assets' {base.__name__} (every {kind.family} kind's does)"
        )
    try:
        return kind.config.model_validate(raw)
    except ValidationError as exc:
        # A rule across fields (the target is a declared column) is the entry's own: named by the member alone.
        def field(loc: tuple[Any, ...]) -> str:
            return ".".join([where, *map(str, loc)])

        raise ManifestError(validation_problems(exc, path=field).replace(": Value error, ", ": ")) from None


def _members_by_kind(raw: Any) -> Any:
    # Each entry is validated by its own kind's model (a plugin's, or a built-in's) before pydantic sees the
    # mapping, which then keeps the instances as they are. ``parse_manifest`` does this first, to prefix the
    # error with the file; here it covers every other way of building a manifest (the Dagster component's YAML).
    if not isinstance(raw, dict):
        return raw
    try:
        return {name: parse_member(str(name), entry) for name, entry in raw.items()}
    except ManifestError as exc:
        raise ValueError(str(exc)) from None


# The `members:` mapping of a manifest, or of a ReleaseComponent's attributes: name -> the kind's own config.
Members = Annotated[dict[Annotated[str, Field(pattern=NAME)], Member], BeforeValidator(_members_by_kind)]


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
    members: Members
    gates: dict[str, dict[str, Threshold]] = Field(default_factory=dict)
    rollout: RolloutSpec | None = None  # how a published version reaches users (manifest/rollout.py)
    source: Path | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _default_gates(self) -> ReleaseManifest:
        """Gates a member has unless its manifest entry says otherwise: ``contract`` (no unmet expectation) on
        every member that expects anything of another (a chain that uses models, any member with ``expects:``),
        whatever its kind, since a broken contract is never a trade-off to weigh. ``contract: {max: 0,
        severity: warn}`` reports without holding."""
        added = {}
        for name, member in self.members.items():
            consumes = bool(member.expects) or (isinstance(member, FAMILY_BASES["chain"]) and bool(member.upstream))
            gates = self.gates.get(name, {})
            if consumes and "contract" in member_kind(member.kind).gates and "contract" not in gates:
                added[name] = {**gates, "contract": Threshold(max=0)}
        if added:
            # A frozen model: the defaults join the gates once, while the manifest is being built.
            self.__dict__["gates"] = {**self.gates, **added}
        return self

    def members_of(self, *kinds: str) -> dict[str, MemberConfig]:
        return {name: m for name, m in self.members.items() if m.kind in kinds}

    def members_of_family(self, family: Family) -> dict[str, MemberConfig]:
        return {name: m for name, m in self.members.items() if isinstance(m, FAMILY_BASES[family])}

    def topological_order(self) -> list[str]:
        return _toposort({name: m.upstream for name, m in self.members.items()})

    # Typed access to a member whose family the caller already knows (its assets are only built for that family),
    # so the fields of that family can be read without a cast; another kind is a bug, not a manifest error.
    def dataset(self, name: str) -> DatasetConfig:
        member = self.members[name]
        if not isinstance(member, DatasetConfig):
            raise TypeError(f"member {name!r} is a {member.kind}, not a dataset")
        return member

    def model(self, name: str) -> ModelConfig:
        member = self.members[name]
        if not isinstance(member, ModelConfig):
            raise TypeError(f"member {name!r} is a {member.kind}, not a model")
        return member

    def task_of(self, name: str) -> Task | None:
        """What a model member learns (its dataset's task); None for members that are not models."""
        member = self.members[name]
        if not isinstance(member, ModelConfig) or member.data is None:
            return None
        data = self.members.get(member.data)
        return data.learning_task() if isinstance(data, DatasetConfig) else None

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
