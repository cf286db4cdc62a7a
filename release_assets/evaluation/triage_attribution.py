"""Share one metric's change between the members that changed, so the shares add up to the observed change.

A mixed release takes each member (or the golden suite) either from the candidate or from the baseline; ``value``
maps the set of members taken from the candidate to the metric it scored. With every subset measured the shares
are Shapley values (each member's effect averaged over every order of swapping members in), which add up to
``value(all) - value(none)`` by construction. With only the candidate, the baseline and the candidate with one
member swapped back, each member gets what swapping it back undoes, and what is left over is reported as an
explicit interaction term rather than hidden in a member's share.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from itertools import combinations

SHAPLEY, ONE_AT_A_TIME = "shapley", "one_at_a_time"
# Every subset of n members is 2**n evaluations of the golden suite: 16 at 4 (seconds on the tiny chain); more
# changed members fall back to n + 2 evaluations with an interaction term.
EXACT_UP_TO = 4


def subsets_to_evaluate(factors: Sequence[str]) -> tuple[str, list[frozenset[str]]]:
    """Which mixes to evaluate (each as the members taken from the candidate), and how they will be combined."""
    everything = frozenset(factors)
    if len(factors) <= EXACT_UP_TO:
        return SHAPLEY, [frozenset(c) for k in range(len(factors) + 1) for c in combinations(factors, k)]
    return ONE_AT_A_TIME, [frozenset(), everything, *(everything - {f} for f in factors)]


def attribute(
    factors: Sequence[str], value: Mapping[frozenset[str], float], method: str
) -> tuple[dict[str, float], float]:
    """Each factor's share of ``value(all) - value(none)`` and the interaction left over (zero, up to rounding,
    for Shapley values); the shares plus the interaction equal the observed change."""
    everything = frozenset(factors)
    observed = value[everything] - value[frozenset()]
    n = len(factors)
    shares: dict[str, float] = {}
    for f in factors:
        if method == SHAPLEY:
            others = [g for g in factors if g != f]
            total = 0.0
            for k in range(n):
                weight = math.factorial(k) * math.factorial(n - k - 1) / math.factorial(n)
                for c in combinations(others, k):
                    s = frozenset(c)
                    total += weight * (value[s | {f}] - value[s])
            shares[f] = total
        else:
            shares[f] = value[everything] - value[everything - {f}]
    # Computed as the remainder, so shares and interaction add up to the observed change exactly.
    interaction = observed - sum(shares.values())
    return shares, interaction
