"""The error of a flag file that does not validate, apart from serving/flags.py, which loads OpenFeature (the
``serve`` extra): the CLI names it among the errors it words in one line, in a core install too."""

from __future__ import annotations


class FlagError(ValueError):
    """A flag document that would not mean what was asked; the message names the field (and the file, when read
    from one). ``reason`` is one fixed word for metrics: malformed, unreadable, structure, variants, weights,
    version, flagd (and ``invalid`` for :func:`flag_document`'s arguments)."""

    def __init__(self, message: str, reason: str = "invalid") -> None:
        super().__init__(message)
        self.reason = reason
