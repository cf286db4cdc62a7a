"""The manifest's error, in a module of its own: every part of the manifest package raises it, and the package's
``__init__`` imports those parts."""


class ManifestError(ValueError):
    """A manifest that cannot be turned into assets; the message names file and field."""
