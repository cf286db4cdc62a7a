"""``release-assets config``: every setting (``RELEASE_ASSETS_*``) with its value here, its default and what it is
for, read from ``Settings`` so the list cannot miss one. Secrets are masked, so is the password in a URL."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

MASK = "********"
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@/\s]+@", re.IGNORECASE)


def _plain(value: Any) -> Any:
    """A value as JSON has it: paths as strings, the rest as they are."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _masked(value: Any, secret: bool) -> Any:
    if value is None:
        return None
    if secret:
        return MASK
    if isinstance(value, str):
        return _URL_PASSWORD.sub(lambda m: f"{m['head']}{MASK}@", value)
    if isinstance(value, list):
        return [_masked(v, False) for v in value]
    return value


def rows(settings: Any) -> list[dict[str, Any]]:
    """One row per field of ``settings``, in declaration order: the variable, the value (masked), whether the
    environment set it, the default (masked; a computed default as computed here) and the description."""
    from release_assets.core.settings import env_name

    out = []
    for name, field in type(settings).model_fields.items():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        secret = bool(extra.get("secret"))
        default = field.get_default(call_default_factory=True)
        out.append(
            {
                "variable": env_name(name),
                "value": _masked(_plain(getattr(settings, name)), secret),
                "set": name in settings.model_fields_set,
                "default": _masked(_plain(default), secret),
                "secret": secret,
                "description": field.description or "",
            }
        )
    return out


def _text(value: Any) -> str:
    """A value as the environment would spell it."""
    if value is None:
        return "-"
    if value == "":
        return '""'
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def cmd_config(args: argparse.Namespace) -> int:
    from release_assets.core.settings import get_settings, unknown_variables

    table = rows(get_settings())
    unknown = unknown_variables()
    if args.json:
        print(json.dumps({"settings": table, "unknown_variables": unknown}, indent=2))
        return 0
    lines = [("  VARIABLE", "VALUE", "DEFAULT", "DESCRIPTION")]
    for r in table:
        mark = "* " if r["set"] else "  "
        lines.append((mark + r["variable"], _text(r["value"]), _text(r["default"]), r["description"]))
    widths = [max(len(line[i]) for line in lines) for i in range(3)]
    for variable, value, default, description in lines:
        print(f"{variable:<{widths[0]}}  {value:<{widths[1]}}  {default:<{widths[2]}}  {description}".rstrip())
    print("\n* set in the environment; the others have their default. Secrets and URL passwords are masked.")
    for name in unknown:
        print(f"{name}: set, but no setting has this name (ignored; a typo?)")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("config", help="every RELEASE_ASSETS_* setting: its value here, default and meaning")
    p.add_argument("--json", action="store_true", help="as JSON: one object per setting, and unknown variables")
    p.set_defaults(fn=cmd_config)
