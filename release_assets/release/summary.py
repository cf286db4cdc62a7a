"""What ``make release`` prints per release: version, bundle, and every gate verdict, read off a finished run."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from release_assets.core.extras import missing_extra


@dataclass
class GateLine:
    """One gate's outcome as read off an asset check evaluation (the run summary and the failed-gate sensor)."""

    asset: str  # the asset key without its release prefix, e.g. classifier_report
    check: str
    passed: bool
    severity: str  # ERROR holds the release, WARN only reports
    reason: str
    release: str = ""

    @classmethod
    def from_evaluation(cls, evaluation: Any) -> GateLine:
        """From a Dagster ``AssetCheckEvaluation``: the verdict's reason (the description may add a triage)."""
        path = evaluation.asset_key.path
        return cls(
            asset="/".join(path[1:]),
            check=evaluation.check_name,
            passed=evaluation.passed,
            severity=evaluation.severity.value,
            reason=_meta(evaluation.metadata, "reason") or evaluation.description or "",
            release=path[0],
        )


@dataclass
class ReleaseSummary:
    release: str
    version: str | None = None
    bundle: str | None = None
    published: bool | None = None
    # Gated and reported with publishing off (`--no-publish`, RELEASE_ASSETS_PUBLISH=false): nothing was published.
    evaluated_only: bool = False
    already_published: bool = False  # evaluated only, and the same content is already a published version
    weakened_gates: list[str] = field(default_factory=list)
    recorded_gates: str | None = None  # "9/11 passed": what the stored version records, for `list` and promotion
    gates: list[GateLine] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def published_ok(self) -> bool:
        return self.version is not None and not self.failures and not self.held_back

    @property
    def held_back(self) -> bool:
        return any(not g.passed and g.severity == "ERROR" for g in self.gates)

    def render(self) -> str:
        if self.held_back:
            state = "HELD BACK"
        elif self.version and not self.failures:
            state = self.state_text()
        else:
            state = "FAILED"
        lines = [f"== {self.release}: {state}"]
        if self.version:
            lines += [f"   version: {self.version}", f"   bundle:  {self.bundle}"]
        if self.weakened_gates:
            # Weakened from the default branch: were this build published, promotion would need the override.
            lines.append("   WEAKENED gates (promotion will need --override-weakened-gates):")
            lines += [f"     {w}" for w in self.weakened_gates]
        this_run = f"{sum(g.passed for g in self.gates)}/{len(self.gates)} passed"
        if self.published is False and self.recorded_gates and self.recorded_gates != this_run:
            # Already published by an earlier run, whose verdicts are the version's record; say both, or this line
            # and `list` seem to disagree.
            this_run += f" in this run; the published version records {self.recorded_gates} (shown by `list`)"
        lines.append(f"   gates:   {this_run}")
        for g in self.gates:
            mark = "pass" if g.passed else ("WARN" if g.severity == "WARN" else "FAIL")
            lines.append(f"     [{mark}] {g.asset} {g.check}: {g.reason}")
        lines += [f"   error:   {f}" for f in self.failures]
        return "\n".join(lines)

    def state_text(self) -> str:
        """The outcome of a release that was not held and did not fail."""
        if self.evaluated_only:
            already = "; this content is already published as that version" if self.already_published else ""
            return f"evaluated, not published (publishing is off: nothing in the store, no ledger event{already})"
        return "published" if self.published else "unchanged (already published, nothing new)"


# Errors whose message is written for people: their class name adds nothing (and Dagster's own wrappers and
# `dagster._core...Failure:` prefixes are noise). Other exceptions keep their class name: `KeyError: 'x'` says
# more than `'x'`.
_WORDED = {
    "Failure",
    "StoreUnavailable",
    "ManifestError",
    "ChainSpecError",
    "GoldenSuiteError",
    "DataFileError",
    "StoreError",
    "BundleError",
    "LedgerError",
    "PromotionError",
    "TemplateError",
}


def error_text(error: Any) -> str:
    """The actionable line of a Dagster ``SerializableErrorInfo``: the innermost cause's message, without class
    names a person does not need (``Error occurred while executing op ...`` wraps the real error as its cause)."""
    while error.cause is not None:
        error = error.cause
    message = (error.message or "").strip()
    # A library of an extra that is not installed (a text model trained without torch): which extra to install.
    if error.cls_name == "ModuleNotFoundError" and (line := missing_extra(message)):
        return line
    # SerializableErrorInfo words it `module.path.ClassName: text` (or `ClassName: text`).
    qualified = re.match(rf"^(?:[A-Za-z_][\w]*\.)*{re.escape(error.cls_name)}: ", message)
    if qualified:
        message = message[qualified.end() :]
    elif message.startswith("dagster.") and ": " in message.split("\n", 1)[0]:
        message = message.split(": ", 1)[1]
    if error.cls_name not in _WORDED and not message.startswith(error.cls_name):
        message = f"{error.cls_name}: {message}"
    return message.strip()


def _meta(entries: dict[str, Any], name: str) -> Any:
    value = entries.get(name)
    return getattr(value, "value", value)


def summarise_run(result: Any, releases: list[str]) -> list[ReleaseSummary]:
    """Build one summary per release from an ``ExecuteInProcessResult``."""
    out = {name: ReleaseSummary(name) for name in releases}
    for evaluation in result.get_asset_check_evaluations():
        line = GateLine.from_evaluation(evaluation)
        if line.release in out:
            out[line.release].gates.append(line)
    for event in result.get_asset_materialization_events():
        mat = event.materialization
        if mat.asset_key.path[-1] == "release_unit" and mat.asset_key.path[0] in out:
            s = out[mat.asset_key.path[0]]
            s.version = _meta(mat.metadata, "version")
            s.bundle = _meta(mat.metadata, "bundle")
            s.published = _meta(mat.metadata, "published")
            s.evaluated_only = bool(_meta(mat.metadata, "evaluated_only"))
            s.already_published = bool(_meta(mat.metadata, "already_published"))
            s.weakened_gates = list(_meta(mat.metadata, "weakened_gates") or [])
            s.recorded_gates = _meta(mat.metadata, "recorded_gates")
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            step = event.step_key or ""
            release = next((r for r in out if step.startswith(f"{r}__")), None)
            error = event.step_failure_data.error
            if error is not None and "DagsterAssetCheckFailedError" in error.message:
                continue  # a blocking gate failed: the gate lines above already say which and why
            if release:
                out[release].failures.append(f"{step}: {error_text(error) if error else 'failed'}")
    for s in out.values():
        if s.version is None and not s.failures and all(g.passed or g.severity == "WARN" for g in s.gates):
            s.failures.append("release_unit did not run (an upstream step failed)")
    return list(out.values())
