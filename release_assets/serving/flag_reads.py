"""What a release's flag file says now, read directly rather than evaluated: for the ``canary_weight`` gauge and
for the shadow report, which need the configured shares, not one request's routing (that is :class:`FlagRouter`)."""

from __future__ import annotations

import json
from pathlib import Path

from release_assets.serving.flags import _VERSION, CANARY, flags_path


def canary_routing(flags_dir: Path, release: str) -> tuple[str, int] | None:
    """``(canary version, percent of keys routed to it)`` as the release's flag file reads now, or None: no file,
    no canary, a disabled flag, or a file the router would not follow either (it falls back to the champion). For
    the ``canary_weight`` gauge, read at every scrape, so it never raises."""
    try:
        route = json.loads(flags_path(flags_dir, release).read_text())["flags"][f"{release}.route"]
        version = route["variants"].get(CANARY)
        if route.get("state", "ENABLED") != "ENABLED" or not isinstance(version, str) or not _VERSION.match(version):
            return None
        targeting = route.get("targeting")
        if not targeting:  # no split: every key gets the default variant
            return version, 100 if route.get("defaultVariant") == CANARY else 0
        # flag_document's shape: {"fractional": [bucket expression, [variant, weight], ...]}, weights relative.
        weights = [(b[0], b[1] if len(b) > 1 else 1) for b in targeting["fractional"] if isinstance(b, list)]
        total = sum(w for _, w in weights)  # flagd: a bucket without a weight weighs 1
        share = sum(w for v, w in weights if v == CANARY)
        if isinstance(total, bool) or not total > 0:
            return None
        return version, round(100 * share / total)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def shadow_version(flags_file: Path, release: str) -> str | None:
    """The version the flag file's ``<release>.shadow`` flag sends pairs to, or None (no file, no shadow)."""
    try:
        document = json.loads(flags_file.read_text())
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise ValueError(f"{flags_file}: not a readable flag file ({exc})") from None
    variants = ((document.get("flags") or {}).get(f"{release}.shadow") or {}).get("variants") or {}
    found = variants.get("on")
    return found if isinstance(found, str) and found else None
