"""`make bench-triage`: what regression triage of the shipped helpdesk release costs, measured in one run (~5 min).

A throwaway copy of the project publishes the full-size helpdesk release and promotes it; then one build changes
three things at once (the intent model trained for 3 epochs instead of 12, the refund reply without its
knowledge-base facts, one golden case mislabelled). Its gates hold it, and ``release-assets release`` triages it
against the champion: 2^3 mixed evaluations of the golden suite, nothing retrained. The figures: the triage's own
time (from its cached result), one mixed evaluation's, and the candidate build it explains, for scale.
"""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from run import PY, replace_section, workspace  # noqa: E402  (bench/ is not a package)

MARK_BEGIN, MARK_END = "<!-- triage: bench/triage.py -->", "<!-- /triage -->"


def _cli(args: list[str], env: dict[str, str]) -> tuple[subprocess.CompletedProcess, float]:
    start = time.perf_counter()
    out = subprocess.run(
        [PY, "-m", "release_assets.cli.main", *args], env=env, capture_output=True, text=True, cwd=ROOT
    )
    return out, time.perf_counter() - start


def _change_three_members(root: Path) -> None:
    manifest = root / "releases" / "helpdesk.yaml"
    data = yaml.safe_load(manifest.read_text())
    data["members"]["intent_model"]["params"]["epochs"] = 3
    manifest.write_text(yaml.safe_dump(data, sort_keys=False))
    refund = root / "prompts" / "helpdesk" / "responses" / "refund.j2"
    refund.write_text(re.sub(r"\{\{\s*kb\.[a-z_]+[^}]*\}\}", "", refund.read_text()))
    golden = root / "data" / "golden" / "helpdesk.jsonl"
    cases = [json.loads(line) for line in golden.read_text().splitlines()]
    cases[0]["expected"]["intent"] = "refund" if cases[0]["expected"]["intent"] != "refund" else "complaint"
    golden.write_text("".join(json.dumps(c) + "\n" for c in cases))


def main() -> None:
    root, env = workspace()
    out, baseline_s = _cli(["release", "helpdesk"], env)
    if out.returncode != 0:
        raise SystemExit(f"baseline release failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    [version] = [p.name for p in (root / "store" / "releases" / "helpdesk").iterdir() if p.is_dir()]
    out, _ = _cli(["promote", "helpdesk", version, "--approved-by", "bench", "--reason", "baseline"], env)
    assert out.returncode == 0, out.stderr
    _change_three_members(root)
    out, candidate_s = _cli(["release", "helpdesk"], env)
    if "Regression triage: helpdesk" not in out.stdout:
        raise SystemExit(f"the candidate was not held and triaged:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    [result_file] = (root / "store" / "artifacts" / "helpdesk" / "regression_triage").glob("*/triage.json")
    result = json.loads(result_file.read_text())
    mix_s = [m["seconds"] for m in result["mixes"]]
    n_cases = len((root / "data" / "golden" / "helpdesk.jsonl").read_text().splitlines())
    lines = [
        MARK_BEGIN,
        "## Regression triage (`make bench-triage`, `python bench/triage.py`)",
        "",
        "The shipped helpdesk release, full size: a build that changed the intent model (3 epochs instead of 12), "
        "the refund reply (knowledge-base facts removed) and the golden suite (one case mislabelled), held by its "
        "gates and triaged against the published champion by `release-assets release`. One run.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| factors (changed members) | {', '.join(result['factors'])} |",
        f"| mixed evaluations of the golden suite ({n_cases} cases each) | {len(mix_s)} |",
        f"| triage, all mixes (load, run, score, attribute) | {result['seconds']:.1f} s |",
        f"| one mixed evaluation, median (min / max) | {statistics.median(mix_s):.2f} s "
        f"({min(mix_s):.2f} / {max(mix_s):.2f}) |",
        f"| `release-assets release helpdesk` of that build, triage included | {candidate_s:.1f} s |",
        f"| cold `release-assets release helpdesk` (the champion) | {baseline_s:.1f} s |",
        "",
        "Attribution found: "
        + "; ".join(
            f"{m['metric']} {m['change']:+.3f} ("
            + ", ".join(f"{f} {v:+.3f}" for f, v in m["shares"].items())
            + f", interaction {m['interaction']:+.3f})"
            for m in result["metrics"]
            if m["change"]
        ),
        MARK_END,
    ]
    replace_section(MARK_BEGIN, MARK_END, lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
