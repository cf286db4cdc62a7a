"""The Open Inference Protocol (KServe's predict API v2, as Triton and MLServer speak it) over a release's signature.

Nothing here predicts. ``serve``'s v2 route turns an inference request's tensors into the very body ``/v1`` takes
(:func:`to_payload`), sends it down the same path (validation by the release's request model, routing, shadow,
metrics, traces), and turns the answer back into tensors (:func:`outputs_of`). One request is one prediction: a
batch of one, so each row is routed, shadowed and counted exactly as a ``/v1`` request is.

The tensors a release takes and answers follow from its kind (:func:`input_tensors`, :func:`output_tensors`):

- a chain: ``message`` BYTES [1]; optional ``user_id`` BYTES [1], and a photo of a number as ``image_b64`` BYTES
  [1] or its digits as ``digits`` INT32 [-1, 64]. It answers ``intent``, ``reply`` BYTES [1], ``confidence`` FP32
  [1], ``escalate``, ``abstained`` BOOL [1], and ``entities``, ``latency_ms`` as JSON text (BYTES [1]); an output
  the chain's evaluation mapping leaves unset (null on /v1) is left out.
- a classifier on features: ``features`` FP32 [1, n]; answers ``label`` BYTES [1], ``probabilities`` FP32 [1, k]
  and ``classes`` BYTES [k], the label of each probability.
- a table model: one input per feature column, shape [1], typed by its declared dtype (int INT64, float FP64, bool
  BOOL, str and datetime BYTES; a nullable column's input may be left out); answers as a classifier does, or
  ``prediction`` FP64 [1] for a regression. ``user_id`` BYTES [1] routes, unless a column has that name.

Each release's inference request is a pydantic model built from these tensors (:func:`infer_request`): an input's
name picks its model (a tagged union), which fixes its datatype, its shape (exactly the declared one; -1 is any
size) and its data's type and length. Numbers may come in any numeric datatype (FP64 for an FP32 input, INT64 for an
INT32 one); data is a flat list, or Triton's binary tensor data after the JSON (what ``tritonclient`` sends by
default). Answers are always JSON.
"""

from __future__ import annotations

import functools
import json
import math
import operator
import re
import struct
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictStr,
    create_model,
    model_validator,
)
from pydantic_core import PydanticCustomError

from release_assets.serving.requests import BODY, RequestError
from release_assets.serving.schemas import (
    CHAIN,
    CLASSIFIER,
    DIGIT_SIDE,
    MAX_DIGITS,
    TABLE,
    Parameters,
    Signature,
    V2Body,
)

PLATFORM = "release_assets"
HEADER_LENGTH = "Inference-Header-Content-Length"  # binary tensor data: the JSON's length, the tensors after it
USER_ID = "user_id"
FLOATS = {"FP16": "<f2", "FP32": "<f4", "FP64": "<f8"}
INTS = {
    "UINT8": "<u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "INT8": "<i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
}
NUMERIC = {**FLOATS, **INTS}
DTYPES = {"int": "INT64", "float": "FP64", "bool": "BOOL", "str": "BYTES", "datetime": "BYTES"}
PIXELS = DIGIT_SIDE * DIGIT_SIDE
# A chain's outputs: (name, datatype, JSON text?) in the order they are answered.
CHAIN_OUTPUTS = (
    ("intent", "BYTES", False),
    ("confidence", "FP32", False),
    ("entities", "BYTES", True),
    ("reply", "BYTES", False),
    ("escalate", "BOOL", False),
    ("abstained", "BOOL", False),
    ("latency_ms", "BYTES", True),
)


@dataclass(frozen=True)
class Tensor:
    name: str
    datatype: str
    shape: tuple[int, ...]
    optional: bool = False

    def metadata(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


def _routing(sig: Signature) -> list[Tensor]:
    return [] if USER_ID in sig.columns else [Tensor(USER_ID, "BYTES", (1,), optional=True)]


def input_tensors(sig: Signature) -> list[Tensor]:
    if sig.kind == CHAIN:
        return [
            Tensor("message", "BYTES", (1,)),
            Tensor(USER_ID, "BYTES", (1,), optional=True),
            Tensor("image_b64", "BYTES", (1,), optional=True),
            Tensor("digits", "INT32", (-1, PIXELS), optional=True),
        ]
    if sig.kind == CLASSIFIER:
        return [Tensor("features", "FP32", (1, sig.n_features)), *_routing(sig)]
    columns = [
        Tensor(name, DTYPES.get(str(spec.get("dtype")), "BYTES"), (1,), optional=bool(spec.get("nullable")))
        for name, spec in sig.columns.items()
    ]
    return [*columns, *_routing(sig)]


def output_tensors(sig: Signature) -> list[Tensor]:
    if sig.kind == CHAIN:
        return [Tensor(name, datatype, (1,)) for name, datatype, _ in CHAIN_OUTPUTS]
    if sig.regression:
        return [Tensor("prediction", "FP64", (1,))]
    k = len(sig.labels) or -1
    return [Tensor("label", "BYTES", (1,)), Tensor("probabilities", "FP32", (1, k)), Tensor("classes", "BYTES", (k,))]


def metadata(name: str, sig: Signature) -> dict[str, Any]:
    """The model metadata response (GET /v2/models/{name})."""
    return {
        "name": name,
        "platform": f"{PLATFORM}_{sig.kind}",
        "inputs": [t.metadata() for t in input_tensors(sig)],
        "outputs": [t.metadata() for t in output_tensors(sig)],
    }


def _data_or_binary(schema: dict[str, Any]) -> None:
    """An input's JSON schema: its data (never null), or the size of its binary data."""
    data = schema["properties"]["data"]
    data.update(next((o for o in data.pop("anyOf", []) if o.get("type") != "null"), {}))
    data.pop("default", None)
    binary = {"required": ["parameters"], "properties": {"parameters": {"required": ["binary_data_size"]}}}
    schema["anyOf"] = [{"required": ["data"]}, binary]


class TensorInput(V2Body):
    """An input tensor; each release's inputs are built on it (:func:`_input_model`)."""

    model_config = ConfigDict(json_schema_extra=_data_or_binary)

    @model_validator(mode="after")
    def _data_or_size(self) -> TensorInput:
        size = (getattr(self, "parameters", None) or {}).get("binary_data_size")
        if getattr(self, "data", None) is None and size is None:
            raise PydanticCustomError("no_data", "no data (neither data nor parameters.binary_data_size)")
        return self


def _as_tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value  # JSON's array, for a strict tuple of dimensions


def _input_model(title: str, tensor: Tensor) -> type[BaseModel]:
    """One input's model: its name (the tag), datatype, exact shape, and data (flat; absent when binary)."""
    element: Any = {"BYTES": StrictStr, "BOOL": StrictBool}.get(tensor.datatype, StrictFloat)  # an int is a float too
    datatypes = tuple(NUMERIC) if tensor.datatype in NUMERIC else (tensor.datatype,)
    dims: Any = tuple(Literal[d] if d >= 0 else Annotated[int, Field(ge=1, le=MAX_DIGITS)] for d in tensor.shape)
    shape: Any = tuple.__class_getitem__(dims)  # tuple[Literal[1], Literal[4]]: the exact shape
    count = math.prod(tensor.shape) if min(tensor.shape) >= 0 else None
    data: Any = Annotated[list[element], Field(min_length=count, max_length=count)] if count else list[element]
    fields: dict[str, Any] = {
        "name": (Literal[tensor.name], ...),
        "shape": (Annotated[shape, BeforeValidator(_as_tuple)], ...),
        "datatype": (Literal[datatypes], ...),
        "parameters": (Parameters | None, None),
        "data": (data | None, Field(None, description="Flat, row-major; left out for binary tensor data.")),
    }
    return create_model(f"{title}Input_{re.sub(r'[^A-Za-z0-9_]', '_', tensor.name)}", __base__=TensorInput, **fields)


@functools.lru_cache(maxsize=256)
def infer_request(sig: Signature) -> type[BaseModel]:
    """The inference request ``sig``'s release takes: its inputs (a union tagged by name), the outputs it may ask
    for, an id and parameters. What validates the body, and what /openapi.json documents."""
    models, seen = [], set()
    for tensor in input_tensors(sig):
        model = _input_model(sig.title, tensor)
        while model.__name__ in seen:  # two columns whose names differ only in punctuation
            model = create_model(f"{model.__name__}_", __base__=model)
        seen.add(model.__name__)
        models.append(model)
    item: Any = (
        models[0]
        if len(models) == 1
        else Annotated[functools.reduce(operator.or_, models), Field(discriminator="name")]
    )
    names: dict[str, Any] = {"name": (Literal[tuple(t.name for t in output_tensors(sig))], ...)}
    wanted = create_model(f"{sig.title}RequestedOutput", __base__=V2Body, parameters=(Parameters | None, None), **names)
    return create_model(
        f"{sig.title}InferRequest",
        __base__=V2Body,
        __doc__="One inference request: one row (a batch of one), routed, shadowed, measured and traced as /v1 is.",
        id=(str | None, None),
        parameters=(Parameters | None, None),
        inputs=(Annotated[list[item], Field(min_length=1)], ...),
        outputs=(list[wanted] | None, None),
    )


def requested_outputs(request: Any) -> list[str] | None:
    """The outputs the request asks for (None: all of them); their names were checked by its model."""
    return None if request.outputs is None else [wanted.name for wanted in request.outputs]


def to_payload(sig: Signature, request: Any, binary: bytes = b"") -> dict[str, Any]:
    """The ``/v1`` body the tensors of ``request`` (an instance of :func:`infer_request`) stand for;
    :class:`RequestError` naming the input when one cannot be read. Whether the values are acceptable (a message
    not empty, a feature in range) is left to the release's request model, as for ``/v1``."""
    declared = {t.name: t for t in input_tensors(sig)}
    values: dict[str, list[Any]] = {}
    for tensor, data in zip(request.inputs, _tensor_data(request.inputs, binary), strict=True):
        if tensor.name in values:
            raise RequestError("given twice", tensor.name)
        values[tensor.name] = _values(tensor, declared[tensor.name], data)
    return _payload(sig, values)


def _payload(sig: Signature, values: dict[str, list[Any]]) -> dict[str, Any]:
    payload: dict[str, Any] = {}
    if sig.kind == CHAIN:
        if "message" in values:
            payload["message"] = values["message"][0]
        if "image_b64" in values and "digits" in values:
            raise RequestError("give image_b64 or digits, not both", "digits")
        if "image_b64" in values:
            payload["attachment"] = {"image_b64": values["image_b64"][0]}
        if "digits" in values:
            flat = values["digits"]
            payload["attachment"] = {"digits": [flat[i : i + PIXELS] for i in range(0, len(flat), PIXELS)]}
    elif sig.kind == CLASSIFIER:
        if "features" in values:
            payload["features"] = values["features"]
    else:
        payload["features"] = {name: vals[0] for name, vals in values.items() if name in sig.columns}
    if USER_ID in values and USER_ID not in sig.columns:
        payload[USER_ID] = values[USER_ID][0]
    return payload


def _tensor_data(inputs: list[Any], binary: bytes) -> list[list[Any] | bytes]:
    """Each input's data: its JSON list, or its slice of the binary data after the JSON header."""
    out: list[list[Any] | bytes] = []
    offset = 0
    for tensor in inputs:
        size = (tensor.parameters or {}).get("binary_data_size")
        if size is None:  # then data is there (TensorInput)
            out.append(tensor.data)
            continue
        if tensor.data is not None:
            raise RequestError("both data and parameters.binary_data_size", tensor.name)
        if isinstance(size, bool) or not isinstance(size, int) or size < 0 or offset + size > len(binary):
            raise RequestError(f"binary_data_size {size!r} does not fit the {len(binary)} bytes sent", tensor.name, 400)
        out.append(binary[offset : offset + size])
        offset += size
    if offset != len(binary):
        raise RequestError(f"{len(binary) - offset} bytes of binary data belong to no input", BODY, 400)
    return out


def _decode(blob: bytes, datatype: str, name: str) -> list[Any]:
    """Triton's binary tensor data: little-endian numbers, one byte per BOOL, BYTES as (uint32 length, bytes)."""
    if datatype == "BYTES":
        items, pos = [], 0
        while pos < len(blob):
            if pos + 4 > len(blob):
                raise RequestError("BYTES data cut short (a length without its bytes)", name, 400)
            (size,) = struct.unpack_from("<I", blob, pos)
            if pos + 4 + size > len(blob):
                raise RequestError("BYTES data cut short (an element longer than the data)", name, 400)
            items.append(blob[pos + 4 : pos + 4 + size])
            pos += 4 + size
        return items
    dtype = np.dtype(NUMERIC.get(datatype, "<u1"))
    if len(blob) % dtype.itemsize:
        raise RequestError(f"{len(blob)} bytes is not a whole number of {datatype} values", name, 400)
    array = np.frombuffer(blob, dtype=dtype)
    return [bool(x) for x in array] if datatype == "BOOL" else array.tolist()


def _values(tensor: Any, expected: Tensor, data: list[Any] | bytes) -> list[Any]:
    """One input's values, flat, as the /v1 body holds them (text as str, whole numbers of an int input as int)."""
    values = _decode(data, tensor.datatype, tensor.name) if isinstance(data, bytes) else data
    count = math.prod(tensor.shape)
    if len(values) != count:
        raise RequestError(f"shape {list(tensor.shape)} holds {count} values, data has {len(values)}", tensor.name)
    return [_element(v, expected.datatype, tensor.name) for v in values]


def _element(value: Any, want: str, name: str) -> Any:
    if want == "BYTES":
        if isinstance(value, bytes):
            try:
                return value.decode("utf-8")
            except UnicodeDecodeError:
                raise RequestError("not UTF-8 text", name) from None
        if not isinstance(value, str):
            raise RequestError("BYTES data must be strings", name)
        return value
    if want == "BOOL":
        if not isinstance(value, bool):
            raise RequestError("BOOL data must be true or false", name)
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RequestError(f"{want} data must be numbers", name)
    if want in INTS and isinstance(value, float) and value.is_integer():
        return int(value)  # 3.0 of an FP tensor for an int input; 3.5 is left for the request model to refuse
    return value


def v2_field(sig: Signature, field: str) -> str:
    """The input a ``/v1`` field came from, for the v2 error: features.age -> age, attachment.digits[0] -> digits[0]."""
    if sig.kind == TABLE and field.startswith("features."):
        return field.removeprefix("features.")
    if sig.kind == CHAIN and field.startswith("attachment."):
        return field.removeprefix("attachment.")
    if field in (BODY, "features") and sig.kind == TABLE:
        return "inputs"
    return field


def _tensor(name: str, datatype: str, data: list[Any], shape: list[int] | None = None) -> dict[str, Any]:
    return {"name": name, "datatype": datatype, "shape": shape or [len(data)], "data": data}


def _check(value: Any, datatype: str, name: str) -> Any:
    """An answer's value as the datatype its output declares; anything else is a failing answer (a counted 500)."""
    ok = {
        "BYTES": isinstance(value, str),
        "BOOL": isinstance(value, bool),
    }.get(datatype, isinstance(value, int | float) and not isinstance(value, bool))
    if not ok:
        raise TypeError(f"the answer's {name} is {type(value).__name__}, not {datatype}")
    return value


def outputs_of(sig: Signature, answer: dict[str, Any], requested: list[str] | None = None) -> list[dict[str, Any]]:
    """The answer of ``LoadedRelease.predict`` as output tensors, in the order of the metadata (or as requested)."""
    out: list[dict[str, Any]] = []
    if sig.kind == CHAIN:
        for name, datatype, as_json in CHAIN_OUTPUTS:
            value = answer.get(name)
            if value is not None:
                text = (
                    json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")) if as_json else value
                )
                out.append(_tensor(name, datatype, [_check(text, datatype, name)]))
    elif "prediction" in answer:
        out.append(_tensor("prediction", "FP64", [_check(answer["prediction"], "FP64", "prediction")]))
    else:
        probabilities = answer["probabilities"]
        classes = [_check(c, "BYTES", "classes") for c in probabilities]
        scores = [_check(p, "FP32", "probabilities") for p in probabilities.values()]
        out.append(_tensor("label", "BYTES", [_check(answer["label"], "BYTES", "label")]))
        out.append(_tensor("probabilities", "FP32", scores, [1, len(scores)]))
        out.append(_tensor("classes", "BYTES", classes))
    if requested is not None:
        by_name = {t["name"]: t for t in out}
        out = [by_name[name] for name in requested if name in by_name]
    return out


def infer_response(
    name: str, sig: Signature, answer: dict[str, Any], given_id: str | None, requested: list[str] | None
) -> dict[str, Any]:
    """The inference response: the model, the version and variant that answered, the request's id, the tensors."""
    rid = str(answer.get("request_id"))
    return {
        "model_name": name,
        "model_version": str(answer.get("version")),
        "id": given_id if given_id is not None else rid,
        "parameters": {"variant": str(answer.get("variant")), "request_id": rid},
        "outputs": outputs_of(sig, answer, requested),
    }
