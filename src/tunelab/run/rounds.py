"""The rounds of sequential evaluation: how many examples are scored after each.

Pure arithmetic shared by the executor (run/sequential.py), the look adjustment that
depends on how many looks were planned (decide/looks.py) and its simulation.
"""

from __future__ import annotations

import math


def planned_looks(n_test: int, round_size: int) -> int:
    """Looks sequential evaluation plans on a slice of n_test examples: one per round.

    >>> planned_looks(100, 20), planned_looks(101, 20), planned_looks(6, 20)
    (5, 6, 1)
    """
    return max(1, math.ceil(n_test / round_size))


def round_ends(n_test: int, round_size: int) -> list[int]:
    """How many examples are scored after each round (the last round may be short).

    >>> round_ends(50, 20)
    [20, 40, 50]
    """
    return [min(k * round_size, n_test) for k in range(1, planned_looks(n_test, round_size) + 1)]
