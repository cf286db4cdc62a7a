"""The line of a component's ``defs.yaml`` that a manifest error is about, so the message reads ``file:line:``.

Schema errors (a wrong kind, an unknown field) are reported with their line by ``dg`` itself; what the manifest
checks afterwards (references between members, gate names and bounds, hyperparameters, paths) names a field path,
and this finds that field's line under ``attributes:``. Plain YAML, no Dagster: it runs wherever the error does.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

# `members.classifier.params.C: ...`: the field path a ManifestError names after its file.
_FIELD_PATH = re.compile(r"^([A-Za-z_]\w*(?:\.[\w-]+)*): ")


def line_of(text: str, keys: list[str]) -> int | None:
    """1-based line of the deepest node along ``keys`` (mapping keys, or list indexes as digits) that exists."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    line = None
    for key in keys:
        if isinstance(node, yaml.MappingNode):
            found = next((pair for pair in node.value if getattr(pair[0], "value", None) == key), None)
            if found is None:
                break
            line, node = found[0].start_mark.line + 1, found[1]
        elif isinstance(node, yaml.SequenceNode) and key.isdigit() and int(key) < len(node.value):
            node = node.value[int(key)]
            line = node.start_mark.line + 1
        else:
            break
    return line


def locate(message: str, where: str, defs_file: Path) -> str:
    """``<where>: field.path: problem`` as ``<defs_file>:<line>: attributes.field.path: problem``; a message that
    names no field points at ``attributes:`` itself."""
    rest = message[len(where) + 2 :] if message.startswith(f"{where}: ") else message
    try:
        text = defs_file.read_text(encoding="utf-8")
    except OSError:
        return f"{defs_file}: {rest}"
    match = _FIELD_PATH.match(rest)
    field = match.group(1).split(".") if match else []
    line = line_of(text, ["attributes", *field])
    if match:
        rest = f"attributes.{rest}"
    return f"{defs_file}:{line}: {rest}" if line else f"{defs_file}: {rest}"
