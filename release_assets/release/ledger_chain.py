"""The promotion ledger as a hash chain: each event carries ``seq`` (1-based) and ``prev`` (sha256 of the previous
event's canonical JSON, 64 zeros for the first), and a head record holds the last ``seq`` and its hash.

Every store verifies a ledger on read with :func:`verify_chain`, so an edited, deleted or reordered event is an
error naming its line (or key) in whatever store holds it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


class LedgerError(ValueError):
    """The promotion ledger was changed after it was written, or cannot be read; names the file and line (or key).

    The hash chain and the head record are tamper-evidence against a quiet edit, deletion or reordering of events,
    not security: whoever can write the store can rewrite every event and the head record consistently.
    """


GENESIS = "0" * 64  # the ``prev`` of a ledger's first event


def event_hash(event: dict[str, Any]) -> str:
    """sha256 of the event's canonical JSON, its own ``prev`` included: what the next event's ``prev`` holds."""
    return hashlib.sha256(json.dumps(event, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass(frozen=True)
class VerifiedLedger:
    events: list[dict[str, Any]]
    legacy: int  # events written before the chain existed (no seq/prev); allowed only as a prefix
    head: dict[str, Any] | None  # {"seq", "hash"} of the last event, as the last writer recorded it


def parse_event(where: str, raw: bytes | str) -> dict[str, Any]:
    try:
        parsed = json.loads(raw)
    except ValueError as exc:
        raise LedgerError(f"{where}: not a JSON event ({exc})") from None
    if not isinstance(parsed, dict):
        raise LedgerError(f"{where}: not a JSON event")
    return parsed


def parse_head(where: str, raw: bytes | None) -> dict[str, Any] | None:
    if raw is None:
        return None  # no append since the chain began, or a ledger older than it
    head = parse_event(where, raw)
    if type(head.get("seq")) is not int or head["seq"] < 1 or not isinstance(head.get("hash"), str):
        raise LedgerError(f"{where}: not a head record ({head!r})")
    return head


def verify_chain(
    entries: list[tuple[str, str, dict[str, Any]]],
    head: dict[str, Any] | None,
    *,
    head_at: str,
    missing_at: Callable[[int], str],
) -> int:
    """Check ``entries`` (location, short label, event), in ledger order, against each other and the head record.

    Returns the number of legacy (unchained) events, which may only come first; the first chained event after them
    chains from the last of them. ``missing_at(i)`` names where the event at index ``i`` would be.
    """
    legacy, last_seq, last_hash = 0, 0, GENESIS
    for i, (where, label, e) in enumerate(entries):
        if "seq" not in e and "prev" not in e:
            if i > legacy:
                raise LedgerError(f"{where}: no seq/prev after chained events (an unchained event was inserted)")
            legacy += 1
        else:
            seq, prev = e.get("seq"), e.get("prev")
            if type(seq) is not int or not isinstance(prev, str):
                raise LedgerError(f"{where}: damaged chain fields (seq={seq!r}, prev={prev!r})")
            if seq != last_seq + 1:
                _out_of_sequence(entries, i, seq, last_seq, missing_at)
            if prev != last_hash and i == 0:
                raise LedgerError(f"{where}: edited (its `prev` is not the 64 zeros of a first event)")
            if prev != last_hash:
                raise LedgerError(f"{entries[i - 1][0]}: edited (its hash does not match the `prev` of {label})")
        last_seq, last_hash = i + 1, event_hash(e)  # seq == position, checked above
    # Without its head record a truncated chain looks whole. Every append writes the head right after the event,
    # so only a writer that died between the two on the very first chained event can leave none behind.
    if head is None and last_seq - legacy > 1:
        raise LedgerError(
            f"{head_at}: missing, though the ledger holds {last_seq - legacy} chained events "
            "(deleted with the events after it?)"
        )
    if head is not None and head["seq"] > last_seq:
        lost = head["seq"] - last_seq
        what = "the last event was deleted" if lost == 1 else f"the last {lost} events were deleted"
        raise LedgerError(
            f"{missing_at(last_seq)} is missing: the head record says {head['seq']} events, "
            f"the ledger has {last_seq} ({what})"
        )
    # The chain cannot see an edit to its last event (nothing points at it); the head record can.
    if head is not None and event_hash(entries[head["seq"] - 1][2]) != head["hash"]:
        raise LedgerError(f"{entries[head['seq'] - 1][0]}: edited (its hash does not match the head record {head_at})")
    return legacy


def _out_of_sequence(entries: list, i: int, seq: int, last_seq: int, missing_at: Callable[[int], str]) -> None:
    where, expected = entries[i][0], last_seq + 1
    if any(e.get("seq") == expected for _, _, e in entries[i + 1 :]):
        raise LedgerError(f"{where}: reordered (seq {seq} before seq {expected})")
    if seq > expected:
        gap = "is missing" if seq == expected + 1 else f"and the {seq - expected - 1} after it are missing"
        raise LedgerError(f"{missing_at(i)} {gap} (seq jumps from {last_seq} to {seq})")
    raise LedgerError(f"{where}: out of order (seq {seq} after seq {last_seq})")
