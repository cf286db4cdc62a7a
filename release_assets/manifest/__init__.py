"""The declarative release manifest (``releases/<name>.yaml``) and its validation.

A manifest names a release's members, what kind each is, what it is built from, and the gates it must pass.
The asset factory turns it into assets and checks, so adding a release is adding a file. Every error names the
file and the field, because the person reading it is editing YAML, not Python.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from release_assets.manifest.errors import ManifestError
from release_assets.manifest.gates import check_thresholds
from release_assets.manifest.kinds import DATASET_KINDS, MODEL_KINDS
from release_assets.manifest.kinds import family as family
from release_assets.manifest.params import MODEL_PARAMS
from release_assets.manifest.rollout import RolloutSpec

NAME = r"^[a-z][a-z0-9_]*$"


def validation_problems(exc: ValidationError, prefix: str = "", path=None) -> str:
    """pydantic's errors as one line, each as ``field.path: message``: the short error text of every schema
    (manifests, chain files, step outputs), so a person reads field names, not pydantic's report layout."""
    where = path or (lambda loc: ".".join(str(p) for p in loc))
    return "; ".join(f"{prefix}{where(e['loc'])}: {e['msg']}" for e in exc.errors())


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


def _field_path(loc: tuple[Any, ...]) -> str:
    # pydantic puts the discriminator value into the location; people think in YAML paths.
    kinds = {"sklearn_dataset", "jsonl_dataset", *MODEL_KINDS, "prompt_chain"}
    return ".".join(str(p) for p in loc if p not in kinds) or "<top level>"


def _check_references(manifest: ReleaseManifest, where: str) -> None:
    for name, member in manifest.members.items():
        field = "data" if hasattr(member, "data") else "uses"
        for dep in member.upstream:
            if dep not in manifest.members:
                raise ManifestError(
                    f"{where}: members.{name}.{field}: '{dep}' is not a declared member "
                    f"(declared: {', '.join(sorted(manifest.members))})"
                )
        if member.kind in MODEL_KINDS and manifest.members[member.upstream[0]].kind not in DATASET_KINDS:
            raise ManifestError(f"{where}: members.{name}.data: '{member.upstream[0]}' is not a dataset")
    for name, member in manifest.members_of(*MODEL_KINDS).items():
        _check_params(name, member, where)
    for name, gates in manifest.gates.items():
        if name not in manifest.members:
            raise ManifestError(f"{where}: gates.{name}: no member named '{name}'")
        check_thresholds(name, manifest.members[name].kind, gates, where, manifest.members[name])
    try:
        manifest.topological_order()
    except ManifestError as exc:
        raise ManifestError(f"{where}: {exc}") from None


def _check_params(name: str, member: Any, where: str) -> None:
    """Hyperparameters are validated here, against the trainer's own schema (``params.py``), so a typo fails before
    training."""
    try:
        MODEL_PARAMS[member.kind].model_validate(member.params)
    except ValidationError as exc:
        raise ManifestError(f"{where}: {validation_problems(exc, f'members.{name}.params.')}") from None


# A Dagster project declares a release as a ReleaseComponent: the manifest is the `attributes` of its defs.yaml.
DEFS_FILES = ("defs.yaml", "defs.yml")


def is_defs_file(path: Path) -> bool:
    return path.name in DEFS_FILES


def parse_manifest(data: Any, where: str) -> ReleaseManifest:
    if isinstance(data, dict) and "type" in data and "attributes" in data:
        data = data["attributes"]  # a component's defs.yaml (read by the sensor and the weakened-gate check)
    if not isinstance(data, dict):
        raise ManifestError(f"{where}: expected a mapping at the top level, found {type(data).__name__}")
    try:
        manifest = ReleaseManifest.model_validate(data)
    except ValidationError as exc:
        raise ManifestError(f"{where}: {validation_problems(exc, path=_field_path)}") from None
    _check_references(manifest, where)
    return manifest


def release_manifest(releases_dir: Path, release: str) -> ReleaseManifest:
    """The manifest of the release a person named: a name that is not a release name (``../../x``) is refused
    before any path is built from it, so no command reads a file outside ``releases/``."""
    if not re.match(NAME, release):
        raise ManifestError(f"{release!r} is not a release name (lower-case letters, digits and _, e.g. `helpdesk`)")
    return load_manifest(Path(releases_dir) / f"{release}.yaml")


def load_manifest(path: Path) -> ReleaseManifest:
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ManifestError(f"{path}: file not found") from None
    except yaml.YAMLError as exc:
        raise ManifestError(f"{path}: not valid YAML: {exc}") from None
    manifest = parse_manifest(data, str(path))
    if manifest.name != path.stem and not is_defs_file(path):
        raise ManifestError(f"{path}: name: '{manifest.name}' must match the file name '{path.stem}'")
    return manifest.model_copy(update={"source": path})


def _manifest_paths(releases_dir: Path) -> list[Path]:
    from release_assets.manifest.defs_files import release_files  # also a dg project's ReleaseComponent defs.yaml files

    paths = release_files(releases_dir)
    if not paths:
        raise ManifestError(f"{releases_dir}: no release manifests (*.yaml) found")
    return paths


def _load_checked(path: Path, root: Path) -> ReleaseManifest:
    from release_assets.manifest.paths import check_paths

    try:
        return check_paths(load_manifest(path), root)
    except ManifestError as exc:
        if not is_defs_file(path):
            raise
        from release_assets.manifest.defs_lines import locate  # a component's defs.yaml: file:line, as dg reports

        raise ManifestError(locate(str(exc), str(path), path)) from None


def load_manifests(releases_dir: Path, project_root: Path | None = None) -> list[ReleaseManifest]:
    """Every manifest, each checked against the files it names; the first error stops (for definitions)."""
    root = project_root or releases_dir.parent
    return [_load_checked(p, root) for p in _manifest_paths(releases_dir)]


def load_each(releases_dir: Path, project_root: Path | None = None) -> tuple[list[ReleaseManifest], list[str]]:
    """Every manifest that loads, and one error line per manifest that does not: a broken release must not stop
    the CLI from running, listing or promoting the others."""
    root = project_root or releases_dir.parent
    loaded, errors = [], []
    for path in _manifest_paths(releases_dir):
        try:
            loaded.append(_load_checked(path, root))
        except ManifestError as exc:
            errors.append(str(exc))
    return loaded, errors


def member_section(manifest: ReleaseManifest, member: str) -> dict[str, Any]:
    """What a member's code version hashes: its own manifest entry and its gates."""
    return {
        "member": manifest.members[member].model_dump(mode="json", by_alias=True),
        "gates": {k: v.model_dump(mode="json") for k, v in manifest.gates.get(member, {}).items()},
    }
