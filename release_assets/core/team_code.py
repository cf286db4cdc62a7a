"""A team's own code, named in a manifest or a chain file as ``package.module:function`` (a training function,
metrics, a chain step): imported when it is needed, never when a manifest loads, and every way it can fail
said in one line (what the person wrote, then why), whatever the team's module raises while it is imported."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


class TeamCodeError(ImportError):
    """``package.module:function`` does not import, or names nothing callable; the message says which."""


def one_line(exc: BaseException) -> str:
    """An exception as ``Type: message`` on one line (a traceback's last line, without the traceback)."""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def import_function(ref: str) -> Callable[..., Any]:
    module_name, _, attr = ref.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # the team's module may raise anything while it is imported
        raise TeamCodeError(f"{ref!r} does not import: {one_line(exc)}") from None
    function = getattr(module, attr, None)
    if not callable(function):
        raise TeamCodeError(f"{ref!r}: module {module_name} has no function {attr!r}")
    return function
