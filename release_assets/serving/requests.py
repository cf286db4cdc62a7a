"""What a prediction request may hold, checked field by field, and a photo turned into the digits the model reads.

A request is a JSON object. Chains take ``{"message": str, "user_id": str?, "attachment": {"image_b64": str} |
{"digits": [[64 ints 0..16], ...]}?}``; a classifier on features (iris) takes ``{"features": [floats]}``. Every
problem is a :class:`RequestError` naming the field, so the HTTP layer answers 422 (or 400 for an image that does
not decode) and never 500.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

MAX_MESSAGE_CHARS = 4000
MAX_DIGITS = 16  # an order number is a handful of digits; more is not a photo of one
MAX_FEATURE = 1e6  # far beyond any measurement in centimetres, far below overflow
MAX_PIXELS = 4_000_000  # a phone photo of a number; a bigger image is refused before it is decoded
DIGIT_SIDE = 8  # scikit-learn's digits: 8x8 pixels, intensity 0..16, ink bright on a dark ground


class RequestError(ValueError):
    """A request that cannot be answered as sent; ``field`` names what is wrong, ``status`` the HTTP answer."""

    def __init__(self, message: str, field: str, status: int = 422) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.status = field, status


@dataclass(frozen=True)
class ChainInput:
    message: str
    user_id: str | None
    digits: list[list[int]] | None  # flat 8x8 images, one per digit of the attached number


def _object(request: Any) -> dict[str, Any]:
    if not isinstance(request, dict):
        raise RequestError(f"expected a JSON object, got {type(request).__name__}", "<body>")
    return request


def parse_chain_request(request: Any) -> ChainInput:
    request = _object(request)
    unknown = set(request) - {"message", "user_id", "attachment"}
    if unknown:
        raise RequestError(f"unknown field(s) {sorted(unknown)}", sorted(unknown)[0])
    message = request.get("message")
    if not isinstance(message, str):
        raise RequestError("required, a string" if message is None else "must be a string", "message")
    if not message.strip():
        raise RequestError("must not be empty", "message")
    if len(message) > MAX_MESSAGE_CHARS:
        raise RequestError(f"longer than {MAX_MESSAGE_CHARS} characters", "message")
    _encodable(message, "message")
    user_id = request.get("user_id")
    if user_id is not None and (not isinstance(user_id, str) or not user_id or len(user_id) > 200):
        raise RequestError("must be a non-empty string of at most 200 characters", "user_id")
    if user_id is not None:
        _encodable(user_id, "user_id")
    attachment = request.get("attachment")
    return ChainInput(message, user_id, None if attachment is None else _attachment(attachment))


def _encodable(text: str, field: str) -> None:
    """JSON may carry a lone surrogate ("\\ud800"), which no tokenizer or trace file can encode: refuse it here."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise RequestError("contains a lone surrogate (not valid Unicode text)", field) from None


def _attachment(attachment: Any) -> list[list[int]]:
    if not isinstance(attachment, dict) or len(attachment) != 1 or not ({"image_b64", "digits"} & set(attachment)):
        raise RequestError('expected {"image_b64": str} or {"digits": [[64 ints], ...]}', "attachment")
    if "digits" in attachment:
        return _digit_lists(attachment["digits"])
    encoded = attachment["image_b64"]
    if not isinstance(encoded, str):
        raise RequestError("must be a base64 string", "attachment.image_b64")
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError("not valid base64", "attachment.image_b64", 400) from None
    return image_to_digits(data)


def _digit_lists(value: Any) -> list[list[int]]:
    if not isinstance(value, list) or not value or len(value) > MAX_DIGITS:
        raise RequestError(f"expected 1 to {MAX_DIGITS} images of 64 pixels", "attachment.digits")
    out = []
    for i, image in enumerate(value):
        ok = isinstance(image, list) and len(image) == DIGIT_SIDE * DIGIT_SIDE
        if not ok or not all(isinstance(p, int) and not isinstance(p, bool) and 0 <= p <= 16 for p in image):
            raise RequestError("expected 64 integers from 0 to 16", f"attachment.digits[{i}]")
        out.append(list(image))
    return out


def parse_features(request: Any, n_features: int) -> list[float]:
    request = _object(request)
    unknown = set(request) - {"features", "user_id"}
    if unknown:
        raise RequestError(f"unknown field(s) {sorted(unknown)}", sorted(unknown)[0])
    features = request.get("features")
    if not isinstance(features, list) or len(features) != n_features:
        raise RequestError(f"expected a list of {n_features} numbers", "features")
    for i, x in enumerate(features):
        if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
            raise RequestError("must be a finite number", f"features[{i}]")
        if abs(x) > MAX_FEATURE:  # 1e308 scales to inf, and inf - inf is a NaN probability: refuse, do not 500
            raise RequestError(f"outside [-{MAX_FEATURE:g}, {MAX_FEATURE:g}]", f"features[{i}]")
    return [float(x) for x in features]


def parse_table_row(request: Any, columns: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """``{"features": {column: value}}`` checked against a table model's feature columns (its signature, from the
    dataset's declared schema): a missing, unknown, mistyped or out-of-range column is a 422 naming it."""
    request = _object(request)
    unknown = set(request) - {"features", "user_id"}
    if unknown:
        raise RequestError(f"unknown field(s) {sorted(unknown)}", sorted(unknown)[0])
    features = request.get("features")
    if not isinstance(features, dict):
        raise RequestError(f"expected an object of the columns {', '.join(columns)}", "features")
    extra = sorted(set(features) - set(columns))
    if extra:
        raise RequestError(f"not a feature column (expected: {', '.join(columns)})", f"features.{extra[0]}")
    row = {}
    for name, spec in columns.items():
        row[name] = _table_value(features.get(name), spec, f"features.{name}")
    return row


def _table_value(value: Any, spec: dict[str, Any], field: str) -> Any:
    dtype = spec.get("dtype")
    if value is None:
        if spec.get("nullable"):
            return None
        raise RequestError("missing (the column is not nullable)", field)
    if dtype in ("int", "float"):
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise RequestError(f"must be a finite number ({dtype})", field)
        if dtype == "int" and not float(value).is_integer():
            raise RequestError("must be a whole number (int)", field)
        low, high = spec.get("min"), spec.get("max")
        if (low is not None and value < low) or (high is not None and value > high):
            raise RequestError(
                f"{value:g} is outside [{low if low is not None else '-inf'}, {high if high is not None else 'inf'}]",
                field,
            )
        value = int(value) if dtype == "int" else float(value)
    elif dtype == "bool":
        if not isinstance(value, bool):
            raise RequestError("must be true or false", field)
    elif not isinstance(value, str):
        raise RequestError(f"must be a string ({dtype})", field)
    elif dtype == "datetime":
        try:
            datetime.fromisoformat(value)
        except ValueError:
            raise RequestError(f"{value!r} is not an ISO 8601 date or time", field) from None
    allowed = spec.get("allowed")
    if allowed is not None and value not in allowed:
        raise RequestError(f"{value!r} is not one of {allowed}", field)
    return value


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
