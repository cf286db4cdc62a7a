"""The ``table`` dataset kind's manifest entry: a file of rows, its declared schema, the target and the split.

The schema is the contract a team writes down for its data (pandera checks it, ``datasets/table.py``): a row that
breaks it is listed by column and row, never trained on. Cross-field rules (the target is a declared column, a
time split names a datetime column) are checked here, when the manifest loads, so they fail before any run.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from release_assets.manifest.kinds import Task
from release_assets.manifest.models import DatasetConfig

Dtype = Literal["int", "float", "str", "bool", "datetime"]
FORMATS = ("csv", "parquet", "jsonl")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ColumnSpec(_Strict):
    dtype: Dtype
    nullable: bool = False
    # A closed set of values (a category), or a numeric range: what a plausible row holds.
    allowed: list[str | int | float | bool] | None = None
    min: float | None = None
    max: float | None = None
    unique: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> ColumnSpec:
        if (self.min is not None or self.max is not None) and self.dtype not in ("int", "float"):
            raise ValueError(f"`min`/`max` need a numeric dtype (int or float), not {self.dtype}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min:g} is above max {self.max:g}")
        if self.allowed is not None and not self.allowed:
            raise ValueError("`allowed` is empty: no value could pass")
        return self


class TableSplit(_Strict):
    """How rows are divided: ``random``, ``stratified`` (by the target's classes), ``group`` (rows sharing the
    ``by`` column stay on one side) or ``time`` (ordered by the ``by`` column: train on the past, test on the
    future). The default is stratified for classification and random for regression."""

    strategy: Literal["random", "stratified", "group", "time"] | None = None
    test: float = Field(gt=0, lt=1)
    val: float = Field(default=0.0, ge=0, lt=1)
    seed: int = 0
    by: str | None = None  # the group or time column

    @model_validator(mode="after")
    def _by_matches_strategy(self) -> TableSplit:
        if self.strategy in ("group", "time") and self.by is None:
            raise ValueError(f"a {self.strategy} split needs `by:` (the column to split by)")
        if self.strategy not in ("group", "time") and self.by is not None:
            raise ValueError("`by:` is only read by the group and time strategies")
        if self.test + self.val >= 1:
            raise ValueError(f"test + val must stay below 1 (got {self.test:g} + {self.val:g})")
        return self


ASSET_KEY = r"^[A-Za-z0-9_][A-Za-z0-9_\-]*(/[A-Za-z0-9_][A-Za-z0-9_\-]*)*$"


class TableDataset(DatasetConfig):
    kind: Literal["table"]
    path: str | None = None  # a file, relative to the project root, or an s3://bucket/key URI
    # Or an asset of the team's own Dagster project (its key, parts joined by "/"): its value (a DataFrame, or
    # anything with `to_pandas()`) is loaded through that asset's IO manager, and the asset is upstream in the UI.
    asset: Annotated[str, Field(pattern=ASSET_KEY)] | None = None
    format: Literal["csv", "parquet", "jsonl"] | None = None  # from the file's suffix when not given
    columns: dict[str, ColumnSpec] = Field(min_length=2)
    target: str
    task: Task
    id: str | None = None  # a column naming each row (row numbers otherwise)
    split: TableSplit
    slices: list[str] = Field(default_factory=list)  # categorical columns the model is also scored per value of
    # The columns a model reads (default: every declared column but the target, the id and the split column);
    # a declared column left out is still checked against the schema, never handed to the model.
    feature_columns: list[str] | None = Field(default=None, alias="features", min_length=1)
    # A binary task's positive class (what ROC AUC, PR AUC and calibration score): default the second of the
    # sorted class names.
    positive: str | int | bool | None = None

    @model_validator(mode="after")
    def _columns_exist(self) -> TableDataset:
        if (self.path is None) == (self.asset is None):
            raise ValueError("give the table's `path:` (a file) or its `asset:` (a Dagster asset key), one of them")
        if self.asset is not None and self.format is not None:
            raise ValueError("`format:` is a file's: an asset's value is a DataFrame")

        def need(field: str, column: str) -> None:
            if column not in self.columns:
                raise ValueError(f"{field}: {column!r} is not a declared column ({', '.join(self.columns)})")

        need("target", self.target)
        if self.id is not None:
            need("id", self.id)
        if self.split.by is not None:
            need("split.by", self.split.by)
        for i, column in enumerate(self.slices):
            need(f"slices[{i}]", column)
        for i, column in enumerate(self.feature_columns or []):
            need(f"features[{i}]", column)
            if column in {self.target, self.id}:
                raise ValueError(f"features[{i}]: {column!r} is the {'target' if column == self.target else 'id'}")
        if self.positive is not None:
            allowed = self.columns[self.target].allowed
            if self.task != "binary":
                raise ValueError("positive: only a binary task has a positive class")
            if allowed is not None and self.positive not in allowed:
                raise ValueError(f"positive: {self.positive!r} is not among the target's allowed values {allowed}")
        target = self.columns[self.target]
        if self.task == "regression" and target.dtype not in ("int", "float"):
            raise ValueError(f"target: a regression target must be int or float, {self.target!r} is {target.dtype}")
        if self.task == "binary" and target.allowed is not None and len(target.allowed) != 2:
            raise ValueError(f"target: a binary task has two classes, {self.target!r} allows {len(target.allowed)}")
        if self.strategy == "stratified" and self.task == "regression":
            raise ValueError("split.strategy: stratified needs classes; a regression target has none (use random)")
        if self.strategy == "time" and self.columns[self.split.by or ""].dtype not in ("datetime", "int", "float"):
            raise ValueError(f"split.by: a time split orders by a datetime or number, {self.split.by!r} is not one")
        if target.nullable:
            raise ValueError(f"columns.{self.target}.nullable: the target cannot be missing")
        return self

    @property
    def strategy(self) -> str:
        return self.split.strategy or ("random" if self.task == "regression" else "stratified")

    @property
    def features(self) -> list[str]:
        """The columns a model reads: ``features:`` as declared, else every declared column but the target, the
        id and the split column."""
        if self.feature_columns is not None:
            return list(self.feature_columns)
        excluded = {self.target, self.id, self.split.by}
        return [c for c in self.columns if c not in excluded]

    @property
    def source(self) -> str:
        """The table's origin as a person names it: its file, or ``asset <key>``."""
        return self.path if self.path is not None else f"asset {self.asset}"

    def file_format(self) -> str:
        if self.asset is not None:
            return "asset"
        if self.format:
            return self.format
        path = self.path or ""
        suffix = path.rsplit(".", 1)[-1].lower() if "." in path else ""
        return {"csv": "csv", "parquet": "parquet", "pq": "parquet", "jsonl": "jsonl", "ndjson": "jsonl"}.get(
            suffix, "csv"
        )

    def learning_task(self) -> Task:
        return self.task
