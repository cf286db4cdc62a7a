"""The one line a person reads when a step fails: the innermost cause, without class names they do not need."""

from dataclasses import dataclass

from release_assets.release.summary import error_text


@dataclass
class Info:  # the fields of Dagster's SerializableErrorInfo that error_text reads
    message: str
    cls_name: str
    cause: "Info | None" = None


def test_the_innermost_cause_is_reported_without_module_paths():
    inner = Info(
        "release_assets.chains.spec.ChainSpecError: chain.yaml line 3, column 9: mapping values are not allowed\n",
        "ChainSpecError",
    )
    outer = Info('Error occurred while executing op "helpdesk__chain":', "DagsterExecutionStepExecutionError", inner)
    assert error_text(outer) == "chain.yaml line 3, column 9: mapping values are not allowed"


def test_dagster_failure_prefixes_are_dropped():
    info = Info("dagster._core.definitions.events.Failure: promotion refused: iris was never published", "Failure")
    assert error_text(info) == "promotion refused: iris was never published"


def test_an_unexpected_error_keeps_its_class_name():
    assert error_text(Info("KeyError: 'intent'\n", "KeyError")) == "KeyError: 'intent'"
    assert (
        error_text(Info("[Errno 2] No such file", "FileNotFoundError")) == "FileNotFoundError: [Errno 2] No such file"
    )
