"""Contracts between members: what each member offers its consumers, what each consumer expects of the members it
is built from, and the one comparison of the two (the ``contract`` gate; the brief's "contract tests per
component", decided member by member before any end-to-end evaluation).

An :class:`Interface` is read from what a member's build reported (its artifact's summary), so a plugin's kind
offers one without writing anything: a model's ``labels`` (empty for regression) and, when it reports them, the
input fields it reads; a dataset's labels and columns. An :class:`Expectation` comes from the consumer: a chain's
steps derive theirs from chain.yaml and the templates (``chains/contract.py``), a model's from its kind (a model
trained elsewhere must emit every label its data holds), and any member may state more under ``expects:`` in the
manifest. Plain data and one pure function: the chain stage, the promotion gate and the release unit all share it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# Field types an interface names. A model's inputs and a dataset's columns use the table kind's dtypes; "number"
# accepts any of int and float (a consumer that computes with a field rarely cares which).
COMPATIBLE: dict[str, frozenset[str]] = {
    "number": frozenset({"int", "float", "number"}),
    "float": frozenset({"int", "float", "number"}),
}


@dataclass(frozen=True)
class Interface:
    """What a member offers the members built from it, as its build reported it."""

    member: str
    kind: str
    # The classes it emits (a model) or holds (a dataset's target); None: not a classifier (regression, a chain).
    labels: tuple[str, ...] | None = None
    # Named fields with their types: the input fields a model reads, or a dataset's columns.
    fields: Mapping[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            **({"labels": list(self.labels)} if self.labels is not None else {}),
            **({"fields": dict(self.fields)} if self.fields else {}),
        }


@dataclass(frozen=True)
class Expectation:
    """One thing a consumer needs of one producer, with why (shown when it is not met)."""

    consumer: str  # who expects it, in words: "chain step classify_intent", "model churn_model"
    producer: str  # the member expected to offer it
    what: Literal["label", "field", "classifier"]
    name: str = ""  # the label or the field; "" for "classifier" (any label set at all)
    type: str | None = None  # a field's type, when the consumer needs one
    because: str = ""  # where the need comes from: "generate_response answers it with responses/refund.j2"

    def as_json(self) -> dict[str, Any]:
        out = {"consumer": self.consumer, "producer": self.producer, "what": self.what}
        return out | {k: v for k, v in (("name", self.name), ("type", self.type), ("because", self.because)) if v}


# The types a stated expectation may name: a table's dtypes, a row schema's JSON types, and "number" (int or float).
FieldType = Literal["int", "float", "number", "str", "bool", "datetime", "list", "object"]


class ExpectSpec(BaseModel):
    """``expects: {<member>: {labels: [...], fields: {name: type}}}`` in a manifest entry: what this member needs
    of an upstream member beyond what its kind derives (a downstream system's labels, a python step's branches)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    labels: list[str] = Field(default_factory=list)
    fields: dict[str, FieldType] = Field(default_factory=dict)


def stated_expectations(consumer: str, expects: Mapping[str, ExpectSpec]) -> list[Expectation]:
    """The expectations a manifest entry states itself (``expects:``)."""
    out: list[Expectation] = []
    why = f"members.{consumer}.expects"
    for producer, spec in sorted(expects.items()):
        who = f"member {consumer}"
        out += [Expectation(who, producer, "label", label, because=why) for label in spec.labels]
        out += [Expectation(who, producer, "field", n, t, because=why) for n, t in sorted(spec.fields.items())]
    return out


def violations(
    expectations: Iterable[Expectation],
    offered: Mapping[str, Interface],
    before: Mapping[str, Interface] | None = None,
) -> list[str]:
    """One line per expectation its producer does not meet, naming the consumer, what it needs and the producer;
    ``before``: the champion's interfaces, so a label that disappeared reads "no longer emits" (a regression),
    and one never offered "does not emit"."""
    before = before or {}
    out: list[str] = []
    for e in expectations:
        have = offered.get(e.producer)
        why = f" ({e.because})" if e.because else ""
        if have is None:
            out.append(f"{e.consumer} expects {e.producer}{why}, which reported no interface")
        elif e.what == "classifier" and not have.labels:
            out.append(f"{e.consumer} reads {e.producer} as a classifier{why}; {e.producer} emits no labels")
        elif e.what == "label" and e.name not in (have.labels or ()):
            earlier = before.get(e.producer)
            verb = "no longer emits it" if earlier and e.name in (earlier.labels or ()) else "does not emit it"
            emits = ", ".join(have.labels or ()) or "none"
            out.append(f"{e.consumer} expects label {e.name!r}{why}; {e.producer} {verb} (it emits: {emits})")
        elif e.what == "field":
            found = have.fields.get(e.name)
            if found is None:
                fields = ", ".join(sorted(have.fields)) or "none"
                out.append(f"{e.consumer} expects field {e.name!r}{why}; {e.producer} has no such field ({fields})")
            elif e.type is not None and found != e.type and found not in COMPATIBLE.get(e.type, ()):
                out.append(f"{e.consumer} expects field {e.name!r} as {e.type}{why}; {e.producer} offers {found}")
    return out


def offered_interface(member: str, kind: str, summary: Mapping[str, Any]) -> Interface:
    """What a member's build reported it offers: ``summary["interface"]`` when its kind writes one (a plugin may),
    else its ``labels`` (a model's list, empty for regression; a dataset's counts by label) and ``columns``."""
    declared = summary.get("interface")
    if isinstance(declared, Mapping):
        labels = declared.get("labels")
        return Interface(member, kind, tuple(map(str, labels)) if labels else None, dict(declared.get("fields", {})))
    labels = summary.get("labels")
    offered = tuple(str(label) for label in labels) if labels else None
    return Interface(member, kind, offered, summary.get("columns", {}))


def reported_expectations(summary: Mapping[str, Any]) -> list[Expectation]:
    """The expectations a consumer's build recorded (``summary["expects"]``: a chain's, or a plugin kind's own)."""
    return [Expectation(**e) for e in summary.get("expects", [])]
