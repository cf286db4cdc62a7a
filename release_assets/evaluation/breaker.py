"""The golden evaluation's circuit breaker: run the suite in batches and stop once the share of cases whose outputs
fail validation passes the configured rate, after enough cases to tell (``min_cases``).

A chain that is broken (a template that no longer renders, an LLM answering off-schema) fails every case the same
way; with an LLM step each case costs a call, so the evaluation stops as soon as the rate is clear and the cases
not run are not paid for. The gates then judge the cases seen, and the evaluation's summary says it stopped
(``breaker``), which the wiring turns into an alert on the configured webhook.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from release_assets.chains.runner import CaseResult, ChainRequest, ChainRunner


@dataclass(frozen=True)
class BreakerSettings:
    """``max_failure_rate``: above it (after ``min_cases``), stop; ``batch``: cases run between two looks."""

    max_failure_rate: float
    min_cases: int = 20
    batch: int = 10


def run_with_breaker(
    runner: ChainRunner, requests: list[ChainRequest], breaker: BreakerSettings | None
) -> tuple[list[CaseResult], dict[str, Any] | None]:
    """The results of the cases run (all of them, unless the breaker tripped: then the first ones, in order) and,
    when it tripped, what it saw: cases run and skipped, the failure rate and the limit."""
    if breaker is None:
        return runner.run(requests), None
    results: list[CaseResult] = []
    failed = 0
    for start in range(0, len(requests), breaker.batch):
        batch = runner.run(requests[start : start + breaker.batch])
        results += batch
        failed += sum(not r.format_valid for r in batch)
        rate = failed / len(results)
        if len(results) >= breaker.min_cases and rate > breaker.max_failure_rate and len(results) < len(requests):
            return results, {
                "tripped": True,
                "cases_run": len(results),
                "cases_skipped": len(requests) - len(results),
                "failure_rate": rate,
                "max_failure_rate": breaker.max_failure_rate,
                "min_cases": breaker.min_cases,
            }
    return results, None
