"""What a release run is doing while it does it: a line per step as it starts and ends (release, asset, elapsed),
the models' training progress (epoch, loss), and on a terminal a live line with the steps done so far.

Dagster hands every run event to its loggers; :data:`progress_logger` is one, added to the job the CLI executes
(``with_logger_defs``), whose records carry the ``DagsterEvent``. Trainers report epochs on the plain Python logger
``release_assets.training`` (:func:`report_epoch`), which the display listens to while it is open. Lines go to
standard error, so standard output keeps only the run's summary. A terminal gets rich's live display; anything
else (CI, a pipe) plain lines, one per event.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from release_assets.models.epochs import TRAINING_LOGGER

RESOURCES = "resources (store, registry, MLflow tracking)"
RESOURCE_EVENTS = {"RESOURCE_INIT_STARTED": "STEP_START", "RESOURCE_INIT_SUCCESS": "STEP_SUCCESS"}
_ACTIVE: list[Progress] = []  # the display the CLI opened, if any (a run's loggers are built inside Dagster)


def step_name(step_key: str) -> str:
    """``helpdesk__intent_model`` -> ``helpdesk/intent_model``: steps are named after their asset keys."""
    return step_key.replace("__", "/")


class Progress(logging.Handler):
    """Turns run events and training reports into lines (and a live line on a terminal)."""

    def __init__(self, total_steps: int, stream: TextIO | None = None, live: bool | None = None) -> None:
        super().__init__(level=logging.DEBUG)
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.total, self.done, self.start = total_steps, 0, time.perf_counter()
        self.started: dict[str, float] = {}
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> Progress:
        if self.live:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as Bar

            self._bar = Bar(
                TextColumn("[bold]release[/]"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                TextColumn("{task.description}"), console=Console(file=self.stream), transient=True,
            )  # fmt: skip
            self._bar.start()
            self._task = self._bar.add_task("starting", total=self.total)
        logging.getLogger(TRAINING_LOGGER).addHandler(self)
        logging.getLogger(TRAINING_LOGGER).setLevel(logging.INFO)
        _ACTIVE.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _ACTIVE.remove(self)
        logging.getLogger(TRAINING_LOGGER).removeHandler(self)
        if self._bar is not None:
            self._bar.stop()

    def _line(self, text: str) -> None:
        stamp = f"[{time.perf_counter() - self.start:6.1f}s]"
        if self._bar is not None:
            self._bar.console.print(f"{stamp} {text}", markup=False, highlight=False)
        else:
            print(f"{stamp} {text}", file=self.stream, flush=True)

    def _status(self, text: str) -> None:
        if self._bar is not None:
            self._bar.update(self._task, description=text, completed=self.done)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if record.name == TRAINING_LOGGER:
                training = step_name(next(reversed(self.started), "model"))
                self._status(f"training {training}: {record.getMessage()}")
                if not self.live:
                    self._line(f"      {training} {record.getMessage()}")
                return
            event = (getattr(record, "dagster_meta", None) or {}).get("dagster_event")
            if event is not None and event.step_key:
                self.on_step(event.event_type_value, event.step_key)
            elif event is not None and event.event_type_value in RESOURCE_EVENTS:
                # Opening the store, the registry and MLflow tracking, before the first step: seconds, not silence.
                self.on_step(RESOURCE_EVENTS[event.event_type_value], RESOURCES, counted=False)
        except Exception:  # a display must never fail the run it shows
            self.handleError(record)

    def on_step(self, kind: str, step_key: str, counted: bool = True) -> None:
        name = step_name(step_key)
        if kind == "STEP_START":
            self.started[step_key] = time.perf_counter()
            self._line(f"start {name}")
            self._status(name)
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE", "STEP_SKIPPED"):
            self.done += counted
            took = time.perf_counter() - self.started.pop(step_key, time.perf_counter())
            word = {"STEP_SUCCESS": "done ", "STEP_FAILURE": "FAILED", "STEP_SKIPPED": "skipped"}[kind]
            self._line(f"{word} {name}" + (f" ({took:.1f} s)" if kind != "STEP_SKIPPED" else ""))
            self._status(f"{self.done}/{self.total} steps")


def _progress_logger_fn(init_context: Any) -> logging.Logger:
    logger = logging.Logger("release_assets.cli.progress", level=logging.DEBUG)
    for display in _ACTIVE:
        logger.addHandler(display)
    return logger


@contextmanager
def showing(job: Any, stream: TextIO | None = None, live: bool | None = None) -> Iterator[Any]:
    """``job`` with the progress logger added, while a display is open on ``stream`` (default: standard error)."""
    import dagster as dg

    logger_def = dg.LoggerDefinition(_progress_logger_fn, description="Step and training progress for the CLI.")
    with Progress(len(job.nodes), stream, live):
        yield job.with_logger_defs({**job.loggers, "progress": logger_def})
