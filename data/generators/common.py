"""What every generator shares: the project root (on ``sys.path``, for the schema and the digits split), the
seeds, the intents rows may carry, and the JSONL writer."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from release_assets.datasets.schemas import INTENTS as SCHEMA_INTENTS  # noqa: E402 - needs ROOT on sys.path

DATA = ROOT / "data"  # where the shipped files live: the default output folder
SEED = 20261005
DIGITS_SPLIT_SEED = 7

INTENTS = list(SCHEMA_INTENTS)  # the schema's own list: the generator can only emit intents rows may carry


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
