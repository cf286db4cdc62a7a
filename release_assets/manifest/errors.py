"""The manifest's error, in a module of its own: every part of the manifest package raises it, and the package's
``__init__`` imports those parts. With it, the one wording of pydantic's errors every schema's messages use."""

from __future__ import annotations

from pydantic import ValidationError


class ManifestError(ValueError):
    """A manifest that cannot be turned into assets; the message names file and field."""


def validation_problems(exc: ValidationError, prefix: str = "", path=None) -> str:
    """pydantic's errors as one line, each as ``field.path: message``: the short error text of every schema
    (manifests, chain files, step outputs), so a person reads field names, not pydantic's report layout."""
    where = path or (lambda loc: ".".join(str(p) for p in loc))
    return "; ".join(f"{prefix}{where(e['loc'])}: {e['msg']}" for e in exc.errors())
