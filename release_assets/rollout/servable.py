"""What a version must be before it answers users is decided in ``record/servable.py`` (the ledger's moves check it
there). ``override_text`` is named here too because ``cli/inspect.py`` imports it from this module; once the CLI
imports it from ``release_assets.record.servable``, this module goes."""

from release_assets.record.servable import override_text

__all__ = ["override_text"]
