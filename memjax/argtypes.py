"""What counts as a number or an integer where a public function or a config takes one.

The argument checks of the APIs (`stats`, `accounting`, `seed_variance`, `blackbox`, the
influence study) and of the toy config share these two predicates, so that a bool is never
taken for a number and a float never for a count.
"""
from __future__ import annotations

import numbers
from typing import Any

import numpy as np


def is_real(x: Any) -> bool:
    """A real number (Python, NumPy scalar or 0-d array), not a bool or a string."""
    if isinstance(x, np.ndarray) and x.ndim == 0:
        x = x[()]
    return isinstance(x, numbers.Real) and not isinstance(x, (bool, np.bool_))


def is_int(x: Any, lo: float = -np.inf, hi: float = np.inf) -> bool:
    """An integer (Python or NumPy, not a bool, not a float with an integer value) in
    [lo, hi]."""
    return (isinstance(x, numbers.Integral) and not isinstance(x, (bool, np.bool_))
            and lo <= x <= hi)
