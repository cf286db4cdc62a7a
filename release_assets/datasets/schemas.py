"""Per-row schemas: what every row of a dataset must look like before anything trains on it."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

# Each closed set once, as the field type; its values as a tuple for the code that lists them.
IrisSpecies = Literal["setosa", "versicolor", "virginica"]
Intent = Literal[
    "refund",
    "order_status",
    "cancel_order",
    "change_address",
    "product_question",
    "account_access",
    "complaint",
    "other",
]
EntityType = Literal["order_id", "email", "product", "amount", "date"]
IRIS_SPECIES: tuple[str, ...] = get_args(IrisSpecies)
INTENTS: tuple[str, ...] = get_args(Intent)
ENTITY_TYPES: tuple[str, ...] = get_args(EntityType)
# Attributes of a support message that slice accuracy and drift are reported by.
SLICE_FIELDS = ("channel", "register", "length")


class _Row(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class IrisRow(_Row):
    id: str
    features: list[float] = Field(min_length=4, max_length=4)
    label: IrisSpecies

    @model_validator(mode="after")
    def _plausible(self) -> IrisRow:
        # Measurements are centimetres of a flower: anything outside (0, 10] is a unit or entry error.
        for i, value in enumerate(self.features):
            if not 0 < value <= 10:
                raise ValueError(f"features[{i}]={value} outside the plausible range (0, 10] cm")
        return self


class DigitRow(_Row):
    id: str
    pixels: list[int] = Field(min_length=64, max_length=64)
    label: Literal["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]

    @model_validator(mode="after")
    def _intensity(self) -> DigitRow:
        bad = [i for i, v in enumerate(self.pixels) if not 0 <= v <= 16]
        if bad:
            raise ValueError(f"pixels {bad[:5]} outside 0..16")
        return self


class EntitySpan(_Row):
    type: EntityType
    start: int = Field(ge=0)
    end: int = Field(gt=0)
    value: str


class SupportMessage(_Row):
    id: str
    text: str = Field(min_length=1)
    intent: Intent
    secondary_intent: Intent | None = None
    paraphrase_group: str = Field(min_length=1)
    entities: list[EntitySpan] = Field(default_factory=list)
    channel: Literal["email", "chat"]
    # `register` would shadow BaseModel.register, so the attribute is `register_` and the field keeps its name.
    register_: Literal["formal", "informal"] = Field(alias="register")
    length: Literal["short", "medium", "long"]

    @model_validator(mode="after")
    def _spans_match_text(self) -> SupportMessage:
        for i, span in enumerate(self.entities):
            if self.text[span.start : span.end] != span.value:
                raise ValueError(
                    f"entities[{i}]: text[{span.start}:{span.end}] is "
                    f"{self.text[span.start : span.end]!r}, not {span.value!r}"
                )
        return self


SCHEMAS: dict[str, type[_Row]] = {"iris": IrisRow, "digits": DigitRow, "support_message": SupportMessage}


_JSON_TYPES = {"string": "str", "integer": "int", "number": "float", "boolean": "bool", "array": "list"}


def schema_columns(schema: str) -> dict[str, str]:
    """Each field of a row schema with its type (str, int, float, bool, list, object): what the dataset offers
    the models built from it (manifest/contracts.py). A closed set of strings (an intent) is a str."""
    out = {}
    for name, prop in SCHEMAS[schema].model_json_schema(by_alias=True)["properties"].items():
        typed = [p for p in prop.get("anyOf", [prop]) if p.get("type") != "null"]
        out[name] = _JSON_TYPES.get(typed[0].get("type", "") if typed else "", "object")
    return dict(sorted(out.items()))
