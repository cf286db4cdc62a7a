"""What a member's gates read: its assets' references, where their files are, and the champion to compare with."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from release_assets.artifacts import ArtifactRef
from release_assets.datasets.build import read_jsonl


@dataclass
class MemberInputs:
    """What a member's gates read: its assets' references and where their files are."""

    refs: dict[str, ArtifactRef]  # by role: raw, split, model, report, evaluation
    store_root: Path
    champion: Any = None  # a ChampionView, or None when there is no release store to ask
    config: Any = None  # the member's manifest entry (``member_verdicts`` sets it), for gates that read its fields
    cache: dict[str, Any] = field(default_factory=dict)

    def dir(self, role: str) -> Path:
        return self.refs[role].path(self.store_root)

    def rows(self, side: str) -> list[dict[str, Any]]:
        key = f"rows:{side}"
        if key not in self.cache:
            path = self.dir("split" if side != "raw" else "raw") / ("rows.jsonl" if side == "raw" else f"{side}.jsonl")
            self.cache[key] = read_jsonl(path) if path.exists() else []
        return self.cache[key]
