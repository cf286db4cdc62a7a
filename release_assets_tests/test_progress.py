"""Progress lines: every step as it starts and ends, training epochs under the step that trains, resources first."""

import io
import logging
from types import SimpleNamespace

from release_assets.cli.progress import Progress, step_name
from release_assets.models.epochs import report_epoch


def _event(kind: str, step_key: str | None) -> logging.LogRecord:
    record = logging.LogRecord("dagster", logging.DEBUG, __file__, 1, "event", None, None)
    record.dagster_meta = {"dagster_event": SimpleNamespace(event_type_value=kind, step_key=step_key)}
    return record


def test_plain_lines_name_each_step_and_its_time():
    out = io.StringIO()
    with Progress(2, out, live=False) as progress:
        progress.emit(_event("RESOURCE_INIT_STARTED", None))
        progress.emit(_event("RESOURCE_INIT_SUCCESS", None))
        progress.emit(_event("STEP_START", "helpdesk__intent_model"))
        report_epoch(1, 12, 0.91234)
        progress.emit(_event("STEP_SUCCESS", "helpdesk__intent_model"))
        progress.emit(_event("STEP_SKIPPED", "helpdesk__release_unit"))
        progress.emit(_event("ASSET_MATERIALIZATION", "helpdesk__intent_model"))  # not a step boundary
    lines = [line.split("] ", 1)[1] for line in out.getvalue().splitlines()]
    assert lines[0] == "start resources (store, registry, MLflow tracking)"
    assert lines[1].startswith("done  resources")
    assert lines[2] == "start helpdesk/intent_model"
    assert lines[3] == "      helpdesk/intent_model epoch 1/12 loss 0.9123"
    assert lines[4].startswith("done  helpdesk/intent_model (") and lines[4].endswith(" s)")
    assert lines[5] == "skipped helpdesk/release_unit"
    assert len(lines) == 6
    assert progress.done == 2  # steps, not resources


def test_epochs_are_silent_without_a_display():
    assert not logging.getLogger("release_assets.training").handlers
    report_epoch(1, 2, 0.5)  # no handler, no output, no error


def test_step_names_are_asset_keys():
    assert step_name("iris__classifier_report_gates") == "iris/classifier_report_gates"


def test_a_terminal_gets_a_live_display_that_leaves_the_lines():
    out = io.StringIO()
    with Progress(1, out, live=True) as progress:
        progress.emit(_event("STEP_START", "iris__classifier"))
        report_epoch(3, 5, 0.25)
        progress.emit(_event("STEP_SUCCESS", "iris__classifier"))
    text = out.getvalue()
    assert "start iris/classifier" in text and "done  iris/classifier" in text
