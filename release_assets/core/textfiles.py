"""Reading the text files people edit (YAML, JSON Lines, templates) so that an error names line and column.

Python's codec reports a bad byte as an offset into the whole file and PyYAML counts from 0 across several lines
with a code excerpt; an editor counts lines and characters from 1, and a log line should stay one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class NotUTF8Error(ValueError):
    """Bytes that are not UTF-8, located the way an editor shows them: 1-based line and character column."""

    def __init__(self, line: int, column: int, byte: int) -> None:
        self.line, self.column, self.byte = line, column, byte
        self.detail = f"not valid UTF-8 (byte 0x{byte:02x} at column {column})"
        super().__init__(f"line {line}: {self.detail}")


def decode_utf8(data: bytes, first_line: int = 1) -> str:
    """Decode a file (or one of its lines); a bad byte raises NotUTF8Error instead of the codec's offset into the
    whole file, which no person can find in an editor."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        # Everything before the bad byte decoded, so counting its characters gives the column an editor shows.
        column = len(data[line_start : exc.start].decode("utf-8", "replace")) + 1
        line = first_line + data.count(b"\n", 0, exc.start)
        raise NotUTF8Error(line, column, data[exc.start]) from None


def byte_lines(path: Path) -> list[tuple[int, bytes]]:
    """A JSON Lines file's non-blank lines with their 1-based numbers, split on newlines only (JSON strings may
    hold U+2028, which str.splitlines would cut) and still undecoded, so one bad byte costs one line."""
    return [(n, raw) for n, raw in enumerate(path.read_bytes().split(b"\n"), start=1) if raw.strip()]


def yaml_where(exc: yaml.YAMLError) -> str:
    """Where and why a YAML file does not parse, to follow its path: `` line 22, column 16: <problem>``.

    PyYAML's marks count from 0 and its message spans several lines with a code excerpt; people and editors
    count from 1, and a log line should stay one line.
    """
    if not isinstance(exc, yaml.MarkedYAMLError) or exc.problem_mark is None:
        return ": not valid YAML: " + " ".join(str(exc).split())
    mark = exc.problem_mark
    text = f" line {mark.line + 1}, column {mark.column + 1}: {exc.problem}"
    if exc.context and exc.context_mark is not None:
        text += f" ({exc.context} at line {exc.context_mark.line + 1})"
    return text


def read_yaml(path: Path, error: type[Exception], line_sep: str = " line ") -> Any:
    """Parse a UTF-8 YAML file; any problem raises ``error`` naming the file, line and column."""
    try:
        return yaml.safe_load(decode_utf8(path.read_bytes()))
    except NotUTF8Error as exc:
        raise error(f"{path}{line_sep}{exc.line}: {exc.detail}") from None
    except yaml.YAMLError as exc:
        raise error(f"{path}{yaml_where(exc)}") from None
