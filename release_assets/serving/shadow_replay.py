"""The shadow comparison artifact: a chain's recorded traffic replayed through the candidate and the champion.

Both sides answer through serving's own code (:class:`release_assets.serving.loader.LoadedRelease`): the champion
loaded from the release store, verified; the candidate from this build's chain and model folders. Each request
goes to both, one after the other, in alternating order (so warm caches and machine load fall on both sides
alike), and every pair is compared by :func:`release_assets.serving.shadow.compare`, as live shadow pairs are.
Writes ``pairs.jsonl`` and ``report.md``; returns the summary (``shadow_pairs.summarize`` plus ``champion``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from release_assets.core.textfiles import byte_lines, decode_utf8
from release_assets.evaluation.golden_inputs import to_requests
from release_assets.evaluation.latency import single_threaded
from release_assets.evaluation.report import examples_markdown, markdown_table
from release_assets.evaluation.shadow_pairs import summarize
from release_assets.serving.loader import release_from_dirs
from release_assets.serving.shadow import compare, side

# Measured on the 2-core dev machine (load average 2.5): all 640 recorded helpdesk requests cost 1.7-2.0 s per
# side with the shipped models (1.9 s with the tiny test models), so every request is replayed. A bigger file is
# cut to a fixed, deterministic subset spread over all of it: every k-th line, k = ceil(lines / MAX_REQUESTS).
MAX_REQUESTS = 1000


def subset(n: int, max_requests: int = MAX_REQUESTS) -> list[int]:
    """Line indices replayed out of ``n``: all of them, or every k-th from the first when there are too many."""
    step = max(1, math.ceil(n / max_requests)) if max_requests > 0 else 1
    return list(range(0, n, step))


def subset_text(max_requests: int = MAX_REQUESTS) -> str:
    return f"every k-th recorded request from the first, k = ceil(lines / {max_requests}) (all when that is 1)"


def traffic_requests(path: Path, max_requests: int = MAX_REQUESTS) -> tuple[list[tuple[str, dict[str, Any]]], int]:
    """``(id, request)`` for the replayed lines, as ``serve`` would receive them, and the number of lines.

    Recorded lines carry more than a request (``received_at``, ``channel``); the attachment names scikit-learn
    digit images by index, like the golden suite, and is resolved to the pixels a client would send."""

    lines = []
    for line_no, raw in byte_lines(path):
        try:
            case = json.loads(decode_utf8(raw, line_no))
            case["message"]
            lines.append({**case, "id": str(case.get("id") or f"line{line_no}")})
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{line_no}: not a recorded request ({type(exc).__name__}: {exc})") from None
    picked = [lines[i] for i in subset(len(lines), max_requests)]
    out = []
    for case, request in zip(picked, to_requests(picked), strict=True):
        body: dict[str, Any] = {"message": request.message}
        if request.attachment:
            body["attachment"] = {"digits": request.attachment}
        out.append((case["id"], body))
    return out, len(lines)


def _answer(release: Any, request: dict[str, Any], variant: str, request_id: str) -> tuple[dict | None, str | None]:
    try:
        return release.predict(request, variant=variant, request_id=request_id), None
    except Exception as exc:  # RequestError, StepFailed: recorded in the pair, as the live shadow pool does
        return None, f"{type(exc).__name__}: {exc}"


def replay(candidate: Any, champion: Any, requests: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """One pair record per request (``primary`` = champion, ``shadow`` = candidate), in the live pairs' shape."""

    pairs = []
    with single_threaded():  # one request at a time, as a serving worker runs it: comparable latencies
        for n, (case_id, request) in enumerate(requests):
            request_id = f"shadow-{case_id}"
            order = [("champion", champion), ("shadow", candidate)]
            answers = dict(
                (variant, _answer(loaded, request, variant, request_id))
                for variant, loaded in (order if n % 2 == 0 else order[::-1])
            )
            (primary, primary_error), (shadow, shadow_error) = answers["champion"], answers["shadow"]
            pair: dict[str, Any] = {
                "request_id": case_id,
                "message": request["message"],
                "primary_version": champion.version,
                "shadow_version": candidate.version,
            }
            if primary is None:
                pair.update(agreement={}, primary_error=primary_error, shadow_error=shadow_error)
            elif shadow is None:
                pair.update(primary=side(primary), agreement={}, shadow_error=shadow_error)
            else:
                pair.update(compare(primary, shadow, getattr(candidate, "embedding_model", None)), shadow_error=None)
            pairs.append(pair)
    return pairs


def build_shadow_comparison(
    release: str,
    candidate_members: dict[str, tuple[str, Path]],
    chain_file: str,
    traffic: Path,
    out_dir: Path,
    champion: str | None,
    load_champion: Callable[[str], Any],
    max_requests: int = MAX_REQUESTS,
) -> dict[str, Any]:
    """Replay ``traffic`` through the candidate (``candidate_members``: name -> (kind, build folder)) and through
    ``load_champion(champion)``; write the pairs and a report, return the summary. Without a champion nothing is
    replayed: the summary says so, and the shadow gates read that as inconclusive."""

    head = {"champion": champion, "traffic": traffic.name, "subset": subset_text(max_requests)}
    if champion is None:
        (out_dir / "pairs.jsonl").write_text("")
        (out_dir / "report.md").write_text(f"# Shadow comparison: {release}\n\nNo champion to compare with.\n")
        return {**head, "metrics": {"pairs": 0, "shadow_errors": 0}, "examples": [], "requests": 0}
    requests, lines = traffic_requests(traffic, max_requests)
    candidate = release_from_dirs(release, "candidate", candidate_members, chain_file)
    pairs = replay(candidate, load_champion(champion), requests)
    with (out_dir / "pairs.jsonl").open("w") as fh:
        for pair in pairs:
            fh.write(json.dumps(pair, sort_keys=True) + "\n")
    summary = summarize(pairs)
    metrics = {k: v for k, v in summary["metrics"].items() if v is not None}  # None: not measurable, no number
    columns = [c for c in (summary["examples"] or [{}])[0] if not c.startswith("_")]
    (out_dir / "report.md").write_text(
        f"# Shadow comparison: {release}, candidate against champion {champion}\n\n"
        f"{len(requests)} of {lines} recorded requests in `{traffic.name}` ({head['subset']}).\n\n"
        + markdown_table(["metric", "value"], list(metrics.items()))
        + "\n\n## Disagreeing pairs (worst first)\n\n"
        + (examples_markdown(summary["examples"], columns) if summary["examples"] else "None.")
        + "\n"
    )
    return {**head, "metrics": metrics, "examples": summary["examples"], "requests": len(requests), "lines": lines}
