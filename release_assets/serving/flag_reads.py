"""What a release's flag file says now, read directly rather than evaluated: for the shadow report and other readers
outside ``serve``, which need the configured shares, not one request's routing (that is :class:`FlagRouter`, whose
:meth:`FlagRouter.canary_weight` is what the ``canary_weight`` gauge shows: the flags applied, not the file).

Both refuse a file the router would refuse (:func:`~release_assets.serving.flags.validate_flag_document`) with a
:class:`FlagError` naming the file and the field, instead of acting on it: weights that are negative or do not sum
to 100, unknown variants, malformed JSON and, given ``known_versions`` (the release's published versions), a
version that was never published.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

from release_assets.release.store import ReleaseStore
from release_assets.serving.flag_source import UNCHANGED, as_flag_source, store_flags
from release_assets.serving.flags import FlagError, flags_path, parse_flag_file, read_flag_file

__all__ = ["FlagError", "canary_routing", "shadow_version", "store_shadow_version"]


def canary_routing(
    flags_dir: Path, release: str, known_versions: Collection[str] | None = None
) -> tuple[str, int] | None:
    """``(canary version, percent of keys routed to it)`` as the release's flag file reads now, or None: no file,
    no canary, or a disabled route flag. :class:`FlagError` for a file that does not validate."""
    routing = read_flag_file(flags_path(flags_dir, release), release, known_versions)
    return routing.canary_weight if routing is not None else None


def shadow_version(flags_file: Path, release: str, known_versions: Collection[str] | None = None) -> str | None:
    """The version the flag file's ``<release>.shadow`` flag sends pairs to, or None (no file, no shadow).
    :class:`FlagError` for a file that does not validate."""
    routing = read_flag_file(flags_file, release, known_versions)
    return routing.shadow if routing is not None else None


def store_shadow_version(store: ReleaseStore, release: str) -> str | None:
    """The version ``release``'s flag document in ``store`` shadows, wherever the store keeps it (its flags folder,
    or its ``flags/`` objects in S3), checked against the store's published versions; None: no document, or no
    shadow. :class:`FlagError` naming the document and the field; ``FlagSourceUnavailable``: the store cannot be
    asked."""
    source = as_flag_source(store_flags(store))
    try:
        found = source.read(release, None)
    except OSError as exc:
        raise FlagError(f"{source.where(release)}: not a readable flag file ({exc})", "unreadable") from None
    if found is None or found is UNCHANGED:
        return None
    return parse_flag_file(source.where(release), found.raw, release, store.versions(release))[0].shadow
