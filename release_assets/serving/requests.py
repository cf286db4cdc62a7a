"""A prediction request checked against its release's model (serving/schemas.py), and a photo turned into digits.

Every problem is a :class:`RequestError` naming the field (``message``, ``features[1]``, ``features.age``,
``attachment.digits[0]``), so the HTTP layer answers 422 (or 400 for an image that does not decode) and never 500.
The checks themselves are the pydantic models' (the same ones ``/openapi.json`` is generated from); this module only
words pydantic's errors for a person, reading the bounds and sizes from the model's own JSON schema.
"""

from __future__ import annotations

import base64
import binascii
import functools
import io
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from pydantic import BaseModel, ValidationError

from release_assets.serving.schemas import (
    DIGIT_SIDE,
    ISO_DATE,
    MAX_DIGITS,
    ChainPredictRequest,
    column_values,
    features_request,
    table_request,
)

MAX_PIXELS = 4_000_000  # a phone photo of a number; a bigger image is refused before it is decoded
BODY = "<body>"  # the field named when the body as a whole is wrong


class RequestError(ValueError):
    """A request that cannot be answered as sent; ``field`` names what is wrong, ``status`` the HTTP answer,
    ``message`` the problem without the field (``str()`` is ``"field: message"``)."""

    def __init__(self, message: str, field: str, status: int = 422, kind: str = "") -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.status, self.message, self.kind = field, status, message, kind


@dataclass(frozen=True)
class ChainInput:
    message: str
    user_id: str | None
    digits: list[list[int]] | None  # flat 8x8 images, one per digit of the attached number


def validate(model: type[BaseModel], request: Any) -> Any:
    """``request`` as an instance of ``model``, or :class:`RequestError` for its first problem (an unknown field
    first, then in the order the model declares its fields)."""
    try:
        return model.model_validate(request)
    except ValidationError as exc:
        errors = sorted(exc.errors(include_url=False), key=lambda e: e["type"] != "extra_forbidden")
        first = errors[0]
        field = field_name(first["loc"])
        raise RequestError(_wording(first, _schema(model)), field, kind=first["type"]) from None


def field_name(loc: tuple[Any, ...]) -> str:
    """pydantic's location as the field a client reads: ``features[1]``, ``features.age``; the body is <body>."""
    name = ""
    for part in loc:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or BODY


@functools.lru_cache(maxsize=512)
def _schema(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema()


def _node(schema: dict[str, Any], loc: tuple[Any, ...]) -> dict[str, Any]:
    """The JSON schema of the value at ``loc`` (refs resolved, a nullable value's non-null side), or {}."""
    defs = schema.get("$defs", {})

    def resolve(node: dict[str, Any]) -> dict[str, Any]:
        while True:
            if "$ref" in node:
                node = defs.get(node["$ref"].rsplit("/", 1)[-1], {})
            elif "anyOf" in node:
                node = next((o for o in node["anyOf"] if o.get("type") != "null"), {})
            else:
                return node

    node = resolve(schema)
    for part in loc:
        child = node.get("items", {}) if isinstance(part, int) else node.get("properties", {}).get(part, {})
        node = resolve(child)
    return node


# What a pattern of serving/schemas.py means, for a person.
PATTERNS = {r"\S": "must not be empty", ISO_DATE: "{value!r} is not an ISO 8601 date or time"}
ITEMS = {"number": "numbers", "integer": "integers", "string": "strings", "array": "lists", "object": "objects"}


def _range(value: Any, node: dict[str, Any]) -> str:
    low, high = node.get("minimum", "-inf"), node.get("maximum", "inf")
    shown = f"{value:g}" if isinstance(value, int | float) and not isinstance(value, bool) else repr(value)
    return f"{shown} is outside [{_bound(low)}, {_bound(high)}]"


def _bound(value: Any) -> str:
    return f"{value:g}" if isinstance(value, int | float) else str(value)


def _size(node: dict[str, Any]) -> str:
    low, high = node.get("minItems"), node.get("maxItems")
    items = ITEMS.get(node.get("items", {}).get("type", ""), "items")
    if low is not None and low == high:
        return f"expected a list of {low} {items}"
    if low is not None and high is not None:
        return f"expected {low} to {high} {items}"
    return f"expected a list of {items}"


def _json_type(value: Any) -> str:
    """What a client sent, in JSON's words."""
    if value is None or isinstance(value, bool):
        return "null" if value is None else "a boolean"
    names = {list: "an array", str: "a string", int: "a number", float: "a number"}
    return names.get(type(value), type(value).__name__)


def _wording(error: Any, schema: dict[str, Any]) -> str:
    """One pydantic error in the words the 422 gives, with the bounds read from the model's JSON schema."""
    kind, value, ctx, loc = error["type"], error.get("input"), error.get("ctx") or {}, tuple(error["loc"])
    node = _node(schema, loc)
    if kind == "missing":
        return "missing (required)"
    if kind == "extra_forbidden":
        known = list(_node(schema, loc[:-1]).get("properties", {}))
        return f"unknown field (expected: {', '.join(known)})" if loc[:-1] else f"unknown field(s) {[loc[-1]]}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"expected a JSON object, got {_json_type(value)}" if not loc else "expected a JSON object"
    if kind == "string_type":
        return "must be a string"
    if kind == "string_unicode":
        return "contains a lone surrogate (not valid Unicode text)"
    if kind == "string_too_short" and ctx.get("min_length") == 1:
        return "must not be empty"
    if kind == "string_pattern_mismatch":
        return PATTERNS.get(str(ctx.get("pattern")), "does not match {pattern}").format(value=value, **ctx)
    if kind == "string_too_long":
        return f"longer than {ctx.get('max_length')} characters"
    if kind in ("float_type", "float_parsing", "finite_number"):
        return "must be a finite number"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return "must be a whole number"
    if kind in ("bool_type", "bool_parsing"):
        return "must be true or false"
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        return _range(value, node)
    if kind == "literal_error":
        return f"{value!r}: expected {ctx.get('expected')}"
    if kind == "union_tag_invalid":
        return f"{ctx.get('tag')!r} is not one of {ctx.get('expected_tags')}"
    if kind == "union_tag_not_found":
        return f"missing {ctx.get('discriminator')}"
    if kind in ("list_type", "tuple_type", "too_short", "too_long"):
        return _size(node)
    return str(error["msg"])  # a custom error (attachment, datetime, allowed values) is worded where it is raised


def parse_chain_request(request: Any) -> ChainInput:
    """A chain's request (:class:`~release_assets.serving.schemas.ChainPredictRequest`); a photo attachment is
    decoded here into the digits the model reads."""
    parsed = validate(ChainPredictRequest, request)
    attachment, digits = parsed.attachment, None
    if attachment is not None and attachment.digits is not None:
        digits = [list(image) for image in attachment.digits]
    elif attachment is not None and attachment.image_b64 is not None:
        try:
            data = base64.b64decode(attachment.image_b64, validate=True)
        except (binascii.Error, ValueError):
            raise RequestError("not valid base64", "attachment.image_b64", 400) from None
        digits = image_to_digits(data)
    return ChainInput(parsed.message, parsed.user_id, digits)


def parse_features(request: Any, n_features: int, model: type[BaseModel] | None = None) -> list[float]:
    """A classifier's ``{"features": [n_features numbers]}`` (``model``: the release's, else built for the count)."""
    return [float(x) for x in validate(model or features_request(n_features), request).features]


def parse_table_row(
    request: Any, columns: dict[str, dict[str, Any]], model: type[BaseModel] | None = None
) -> dict[str, Any]:
    """``{"features": {column: value}}`` checked against a table model's feature columns (its signature, from the
    dataset's declared schema): a missing, unknown, mistyped or out-of-range column is a 422 naming it."""
    try:
        return column_values(validate(model or table_request(columns), request).features)
    except RequestError as exc:
        # The same checks, in a table's words: the fields under features are its columns.
        listed = ", ".join(columns)
        if exc.field.startswith("features.") and exc.kind == "missing":
            raise RequestError("missing (the column is not nullable)", exc.field, kind=exc.kind) from None
        if exc.field.startswith("features.") and exc.kind == "extra_forbidden":
            raise RequestError(f"not a feature column (expected: {listed})", exc.field, kind=exc.kind) from None
        if exc.field == "features" and exc.kind != "missing":
            raise RequestError(f"expected an object of the columns {listed}", exc.field, kind=exc.kind) from None
        raise


def image_to_digits(data: bytes) -> list[list[int]]:
    """A PNG or JPEG photo of a handwritten number -> one 8x8 image per digit, made as scikit-learn's digits were.

    Those come from UCI's optdigits: each digit's bitmap normalised to 32x32, divided into 4x4 blocks, and the
    pixels that are on counted per block (0..16). So: greyscale, ink on (dark on light), split the number into
    digits at empty columns, crop each to its ink, scale it to fill a 32x32 box keeping its shape, centre it, and
    count the on pixels per 4x4 block.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data), formats=["PNG", "JPEG"]) as img:
            # The header's size is known before decoding: a small file may declare a huge image (a bomb).
            if img.width * img.height > MAX_PIXELS:
                raise RequestError(
                    f"{img.width}x{img.height} pixels is above the {MAX_PIXELS:,} accepted", "attachment.image_b64", 400
                )
            grey = np.asarray(img.convert("L"), dtype=np.float32)
    except RequestError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise RequestError(f"not a readable PNG or JPEG image ({exc})", "attachment.image_b64", 400) from None
    ink = 255.0 - grey
    if ink.max() - ink.min() < 32:
        raise RequestError("the image shows no number (no contrast)", "attachment.image_b64", 400)
    # Otsu-free and deterministic: a pixel is ink when it is nearer the darkest than the lightest level.
    on = ink > (ink.max() + ink.min()) / 2
    columns = on.any(axis=0)
    spans, start = [], None
    for x, has_ink in enumerate([*columns, False]):
        if has_ink and start is None:
            start = x
        elif not has_ink and start is not None:
            spans.append((start, x))
            start = None
    spans = [s for s in spans if s[1] - s[0] >= max(1, on.shape[1] // 200)]  # specks are not digits
    if not spans or len(spans) > MAX_DIGITS:
        raise RequestError(f"found {len(spans)} digits; expected 1 to {MAX_DIGITS}", "attachment.image_b64", 400)
    return [_digit_cell(on[:, a:b], Image) for a, b in spans]


BITMAP = 32  # optdigits' normalised bitmap side; 32 / 8 = 4x4 blocks per output pixel


def _digit_cell(on, image_module) -> list[int]:
    rows = np.flatnonzero(on.any(axis=1))
    crop = on[rows[0] : rows[-1] + 1].astype(np.uint8) * 255
    height, width = crop.shape
    scale = BITMAP / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    fitted = np.asarray(image_module.fromarray(crop).resize(size, image_module.NEAREST)) > 127
    bitmap = np.zeros((BITMAP, BITMAP), dtype=bool)
    top, left = (BITMAP - fitted.shape[0]) // 2, (BITMAP - fitted.shape[1]) // 2
    bitmap[top : top + fitted.shape[0], left : left + fitted.shape[1]] = fitted
    block = BITMAP // DIGIT_SIDE
    counts = bitmap.reshape(DIGIT_SIDE, block, DIGIT_SIDE, block).sum(axis=(1, 3))
    return [int(c) for c in counts.ravel()]


class PredictCall(NamedTuple):
    """One request of ``LoadedRelease.predict_many`` (serving/loader.py): ``predict``'s arguments."""

    request: Any
    variant: str
    request_id: str
    observer: Any = None
