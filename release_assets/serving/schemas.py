"""The bodies ``serve`` reads and writes, as pydantic models: one definition validates a request and describes it in
``/openapi.json`` (serving/openapi.py), so the document cannot drift from what the server accepts.

What a release accepts depends on what it is, so each loaded release carries a :class:`Signature`: its kind, its
request and answer models, and what the Open Inference Protocol's metadata needs (serving/oip.py). A chain takes
:class:`ChainPredictRequest`; a classifier on features (iris) a ``features`` list of exactly its feature count
(:func:`features_request`); a table model one field per feature column, typed by the column's declared dtype, range
and allowed values (:func:`table_request`). Models are strict (no string-to-number coercion, no unknown fields) and
their messages are worded by ``serving/requests.py``, which turns a validation error into a 422 naming the field.

Answers (:class:`ChainAnswer`, :class:`ClassAnswer`, :class:`ValueAnswer`) describe what ``LoadedRelease.predict``
returns; they are the documented contract, checked against live answers by the tests (schemathesis), not on every
request. Below them, the bodies of KServe's predict protocol v2 (Triton, MLServer); each release's inference
request is built from its tensors in serving/oip.py.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    StringConstraints,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

MAX_MESSAGE_CHARS = 4000
MAX_USER_ID_CHARS = 200
MAX_DIGITS = 16  # an order number is a handful of digits; more is not a photo of one
MAX_FEATURE = 1e6  # far beyond any measurement in centimetres, far below overflow
DIGIT_SIDE = 8  # scikit-learn's digits: 8x8 pixels, intensity 0..16, ink bright on a dark ground
CHAIN, CLASSIFIER, TABLE = "chain", "classifier", "table"  # what a release answers: a chain, features, a table row
ISO_DATE = r"^\d{4}-\d{2}-\d{2}"  # what every ISO 8601 date or date-time starts with (fromisoformat checks the rest)
ATTACHMENT_SHAPE = 'expected {"image_b64": str} or {"digits": [[64 ints], ...]}'


class _Body(BaseModel):
    """A request body: strict types (``"5"`` is not a number, ``1`` is not ``true``) and no unknown field."""

    model_config = ConfigDict(extra="forbid", strict=True)


def _refuse(kind: str, message: str) -> PydanticCustomError:
    """A validation error worded in full here (no context: the message is never a template of what was sent)."""
    return PydanticCustomError(kind, message)


# Strings: a lone surrogate ("\\ud800", which JSON may carry and no tokenizer or trace file can encode) is refused
# by pydantic's own str validation (string_unicode). `\S`: at least one character that is not white space, so
# "   " is as empty as "" (a JSON Schema pattern searches, as pydantic's does).
Message = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_MESSAGE_CHARS, pattern=r"\S"),
    Field(description="The customer's message."),
]
UserId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_USER_ID_CHARS),
    Field(description="Who asks: the same user always lands on the same variant (champion or canary)."),
]


def _whole(value: Any) -> Any:
    """An int field takes 34.0 as 34 (JSON Schema's integer does too); 34.5 stays a float and is refused."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return value


Pixel = Annotated[int, Field(ge=0, le=16), BeforeValidator(_whole)]
DigitImage = Annotated[list[Pixel], Field(min_length=DIGIT_SIDE * DIGIT_SIDE, max_length=DIGIT_SIDE * DIGIT_SIDE)]


def _one_property(schema: dict[str, Any]) -> None:
    """Attachment's JSON schema: exactly one of its properties, neither of them null."""
    schema.update(minProperties=1, maxProperties=1)
    for prop in schema["properties"].values():
        prop.pop("default", None)
        options = prop.pop("anyOf", [])
        prop.update(next((o for o in options if o.get("type") != "null"), {}))


class Attachment(_Body):
    """A photo of a handwritten number, or its digits already as scikit-learn's 8x8 images: exactly one of them."""

    model_config = ConfigDict(json_schema_extra=_one_property)
    # None only stands for the one not given (an explicit null is refused by _not_null, and left out of the schema).
    image_b64: str | None = Field(None, description="A PNG or JPEG photo, base64-encoded.")
    digits: Annotated[list[DigitImage], Field(min_length=1, max_length=MAX_DIGITS)] | None = Field(
        None, description="One flat 8x8 image (64 ints, 0..16) per digit of the number."
    )

    @model_validator(mode="before")
    @classmethod
    def _exactly_one(cls, value: Any) -> Any:
        if not isinstance(value, dict) or len(value) != 1 or not ({"image_b64", "digits"} & set(value)):
            raise _refuse("attachment", ATTACHMENT_SHAPE)
        return value

    @field_validator("image_b64", "digits", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise _refuse("null", "must not be null")
        return value


class ChainPredictRequest(_Body):
    """What a prompt chain answers: a message, who sends it, and optionally a photo of a number."""

    message: Message
    user_id: UserId | None = None
    attachment: Attachment | None = None


Feature = Annotated[float, Field(ge=-MAX_FEATURE, le=MAX_FEATURE, allow_inf_nan=False)]


@functools.cache
def features_request(n_features: int) -> type[BaseModel]:
    """``{"features": [n finite numbers], "user_id"?}``: a classifier on ``n_features`` numeric features (iris)."""
    features = Annotated[
        list[Feature],
        Field(min_length=n_features, max_length=n_features, description=f"The {n_features} feature values, in order."),
    ]
    return create_model(
        f"Features{n_features}Request",
        __base__=_Body,
        __doc__=f"A classifier's {n_features} features.",
        features=(features, ...),
        user_id=(UserId | None, None),
    )


def _iso(value: str) -> str:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        raise _refuse("datetime", f"{value!r} is not an ISO 8601 date or time") from None
    return value


def _one_of(allowed: list[Any]) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        # bool is an int: True must not pass for 1, nor 1 for True.
        if not any(value == a and isinstance(value, bool) == isinstance(a, bool) for a in allowed):
            raise _refuse("allowed", f"{value!r} is not one of {allowed}")
        return value

    return check


def _annotated(base: Any, *metadata: Any) -> Any:
    return Annotated[(base, *metadata)] if metadata else base


def _column_type(spec: Mapping[str, Any]) -> Any:
    """The pydantic type of one feature column, from its declared dtype, range and allowed values."""
    dtype, low, high, allowed = spec.get("dtype"), spec.get("min"), spec.get("max"), spec.get("allowed")
    extra: list[Any] = []
    if allowed is not None:
        extra = [AfterValidator(_one_of(list(allowed))), Field(json_schema_extra={"enum": list(allowed)})]
    if dtype == "int":
        return _annotated(int, Field(ge=low, le=high), BeforeValidator(_whole), *extra)
    if dtype == "float":
        return _annotated(float, Field(ge=low, le=high, allow_inf_nan=False), *extra)
    if dtype == "bool":
        return _annotated(bool, *extra)
    if dtype == "datetime":
        iso = Field(pattern=ISO_DATE, description="An ISO 8601 date, or date and time.")
        return _annotated(str, iso, AfterValidator(_iso), *extra)
    return _annotated(str, *extra)


@functools.cache
def _table_request(columns_json: str, title: str) -> type[BaseModel]:
    columns: dict[str, dict[str, Any]] = json.loads(columns_json)
    fields: dict[str, Any] = {}
    for i, (name, spec) in enumerate(columns.items()):
        # Python names c0, c1, ... with the column as alias: a column may be called "json" or "model_config".
        if spec.get("nullable"):
            fields[f"c{i}"] = (_column_type(spec) | None, Field(None, alias=name))
        else:
            fields[f"c{i}"] = (_column_type(spec), Field(alias=name))
    row = create_model(f"{title}Features", __base__=_Body, __doc__="One value per feature column.", **fields)
    return create_model(
        f"{title}Request",
        __base__=_Body,
        __doc__="A table model's row: its feature columns by name.",
        features=(row, ...),
        user_id=(UserId | None, None),
    )


def table_request(columns: Mapping[str, Mapping[str, Any]], title: str = "Table") -> type[BaseModel]:
    """``{"features": {column: value}, "user_id"?}`` for a table model's feature columns (its signature: dtype,
    ``nullable``, ``min``/``max``, ``allowed``); built once per column set. ``title`` names it in /openapi.json."""
    return _table_request(json.dumps(columns, sort_keys=False, default=str), title)


def column_values(row: BaseModel) -> dict[str, Any]:
    """A validated table row as ``{column: value}`` (the models name fields c0, c1, ... with the columns as aliases)."""
    return row.model_dump(by_alias=True)


# Answers: what LoadedRelease.predict returns, field for field.


class _Answer(BaseModel):
    model_config = ConfigDict(strict=True)
    release: str
    version: str
    variant: str = Field(description="champion, canary or shadow: which side of the split answered.")
    request_id: str


class ChainAnswer(_Answer):
    """A chain's answer; a field the chain's evaluation mapping does not name is null."""

    intent: str | None
    confidence: float | None
    entities: dict[str, Any]
    reply: str | None
    escalate: bool
    abstained: bool
    latency_ms: dict[str, float] = Field(description="Milliseconds per step, and the total.")


class ClassAnswer(_Answer):
    """A classifier's answer: the most probable label and every label's probability."""

    label: str
    probabilities: dict[str, float]


class ValueAnswer(_Answer):
    """A regression model's answer."""

    prediction: float


FEEDBACK_TEXT_MAX = 2000  # characters of free text a feedback may carry (it is redacted, then logged)


class FeedbackRequest(_Body):
    """What a user reports about one answer, named by the ``request_id`` the answer carried. At least one outcome."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={"anyOf": [{"required": [name]} for name in ("resolved", "thumbs", "escalation", "text")]},
    )

    request_id: str = Field(pattern=r"^[A-Za-z0-9._-]{1,64}$", description="The answer's request_id.")
    resolved: bool | None = Field(None, description="Did the answer resolve the user's issue?")
    thumbs: Literal["up", "down"] | None = None
    escalation: Literal["needed", "not_needed"] | None = Field(
        None, description="Was a hand-over to a person needed (whatever the answer's escalate said)?"
    )
    text: str | None = Field(None, max_length=FEEDBACK_TEXT_MAX, description="Free text; redacted like traces.")

    @model_validator(mode="after")
    def _says_something(self) -> FeedbackRequest:
        if self.resolved is None and self.thumbs is None and self.escalation is None and self.text is None:
            raise _refuse("feedback_empty", "give at least one of resolved, thumbs, escalation, text")
        return self


class FeedbackAnswer(BaseModel):
    """Feedback taken: counted once, against the version and variant that gave the answer."""

    request_id: str
    release: str
    version: str
    variant: str
    counted: list[str] = Field(description="The outcomes counted, e.g. resolved, thumbs_down, escalation_not_needed.")


class ErrorBody(BaseModel):
    """Every refusal on /v1: what is wrong, the field when one is to blame, and the request id."""

    error: str
    field: str | None = Field(None, description="The field at fault, e.g. message, features[1], features.age.")
    request_id: str | None = None
    release: str | None = None
    known: list[str] | None = Field(None, description="On 404: the releases this server answers.")


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    ready: bool
    reason: Any = Field(description="Each release's version when ready, else what is missing.")


# The Open Inference Protocol (KServe predict API v2): tensors in, tensors out.

Datatype = Literal[
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64", "BYTES"
]
Parameters = dict[str, StrictStr | StrictBool | StrictInt | StrictFloat]


class V2Body(_Body):
    """A v2 request body, strict as every request body is: serving/oip.py builds each release's on it."""


class ResponseOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: Datatype
    parameters: Parameters | None = None
    data: list[Any]


class InferResponse(BaseModel):
    model_config = ConfigDict(protected_namespaces=())
    model_name: str
    model_version: str
    id: str = Field(description="The request's id when it gave one, else the request id the server chose.")
    parameters: Parameters | None = Field(None, description="variant (champion or canary) and request_id.")
    outputs: list[ResponseOutput]


class TensorMetadata(BaseModel):
    name: str
    datatype: Datatype
    shape: list[int] = Field(description="-1: any size.")


class ModelMetadata(BaseModel):
    name: str
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class V2Error(BaseModel):
    error: str


@dataclass(frozen=True, eq=False)  # compared (and cached on) by identity: one per loaded version
class Signature:
    """What a loaded release takes and answers: the models above, and what the v2 metadata lists."""

    kind: str  # CHAIN | CLASSIFIER | TABLE
    title: str  # the prefix of its models' names in /openapi.json: Chain, Features4, Loans
    request: type[BaseModel]
    answer: type[BaseModel]
    n_features: int = 0  # CLASSIFIER
    columns: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # TABLE: column -> dtype, nullable, ...
    labels: tuple[str, ...] = ()  # CLASSIFIER, and a TABLE model that classifies
    regression: bool = False  # a TABLE model answering a number


def chain_signature() -> Signature:
    return Signature(CHAIN, "Chain", ChainPredictRequest, ChainAnswer)


def classifier_signature(n_features: int, labels: list[str] | tuple[str, ...]) -> Signature:
    request = features_request(n_features)
    return Signature(CLASSIFIER, f"Features{n_features}", request, ClassAnswer, n_features, labels=tuple(labels))


def table_signature(
    columns: Mapping[str, Mapping[str, Any]], labels: list[str] | tuple[str, ...], task: str, title: str = "Table"
) -> Signature:
    regression = task == "regression"
    answer = ValueAnswer if regression else ClassAnswer
    request = table_request(columns, title)
    return Signature(TABLE, title, request, answer, columns=dict(columns), labels=tuple(labels), regression=regression)
