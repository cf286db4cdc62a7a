"""What ``release-assets reproduce`` decides: a published unit's members against the same release rebuilt from its
recorded commit, member by member and file by file, and which difference is the cause.

A member that defines the version (``role: artifact``) must come out bit for bit: any difference is a mismatch,
and the unit is not reproduced. Evidence is compared and shown too, but a difference there is expected and not a
failure: evaluation reports carry latencies measured anew, the release report its champion, the SBOM the
environment that rebuilt it (so a changed SBOM says the environment differs, not the unit). The cause named first
is the most upstream member that differs: a dataset, whose source file the release manifest names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from release_assets.manifest import installed_kinds

MATCH, MISMATCH, DIFFERS, MISSING, EXTRA = "match", "MISMATCH", "differs (evidence)", "MISSING in rebuild", "EXTRA"


@dataclass(frozen=True)
class MemberComparison:
    member: str
    kind: str
    role: str  # artifact (defines the version) or evidence
    recorded: str | None  # member digest as published; None: the rebuild has a member the unit lacks
    rebuilt: str | None  # as rebuilt; None: the rebuild lacks it
    files: list[str] = field(default_factory=list)  # paths whose sha256 differ or that only one side has

    @property
    def status(self) -> str:
        if self.recorded is None:
            return EXTRA
        if self.rebuilt is None:
            return MISSING
        if self.recorded == self.rebuilt:
            return MATCH
        return MISMATCH if self.role == "artifact" else DIFFERS

    @property
    def fails(self) -> bool:
        return self.role == "artifact" and self.status != MATCH

    def row(self) -> list[str]:
        recorded, rebuilt = (d[:12] if d else "-" for d in (self.recorded, self.rebuilt))
        return [self.member, self.role, recorded, rebuilt, self.status, ", ".join(self.files)]


def _files(member: dict[str, Any] | None) -> dict[str, str]:
    return {f["path"]: f["sha256"] for f in (member or {}).get("files", [])}


def compare(recorded: dict[str, Any], rebuilt: dict[str, Any]) -> list[MemberComparison]:
    """Every member of either manifest, in name order."""
    out = []
    for name in sorted(set(recorded["members"]) | set(rebuilt["members"])):
        a, b = recorded["members"].get(name), rebuilt["members"].get(name)
        either = a or b or {}
        fa, fb = _files(a), _files(b)
        differing = sorted(p for p in set(fa) | set(fb) if fa.get(p) != fb.get(p))
        out.append(
            MemberComparison(
                member=name,
                kind=either.get("kind", "?"),
                role=either.get("role", "artifact"),
                recorded=a["digest"] if a else None,
                rebuilt=b["digest"] if b else None,
                files=differing if a and b and a["digest"] != b["digest"] else [],
            )
        )
    return out


def _is_data(kind: str) -> bool:
    declared = installed_kinds().get(kind)
    return kind == "split" or (declared is not None and declared.family == "dataset")


def causes(comparisons: list[MemberComparison], sources: dict[str, str]) -> list[str]:
    """Why the rebuild differs, most upstream first: each differing dataset member with the data file the
    manifest reads it from (``sources``: member -> its ``path:``), then the other differing artifacts (they may
    follow from the data, or be built differently)."""
    failing = [c for c in comparisons if c.fails]
    data = [c for c in failing if _is_data(c.kind)]
    lines = []
    for c in data:
        source = f" (read from {sources[c.member]})" if c.member in sources else ""
        lines.append(f"data member {c.member}{source} changed: {', '.join(c.files) or c.status}")
    for c in failing:
        if c not in data:
            after = " (downstream of changed data, or built differently)" if data else ""
            lines.append(f"{c.member} ({c.kind}) differs{after}: {', '.join(c.files) or c.status}")
    return lines
