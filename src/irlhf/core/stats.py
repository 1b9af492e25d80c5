"""Intervals over seeds: the one statistic every summary table of irlhf reports."""

from __future__ import annotations

import numpy as np


def t_half_width(values: np.ndarray, level: float = 0.95, axis: int = 0) -> np.ndarray | float:
    """Half-width of the Student-t confidence interval of the mean over ``axis`` (n values: t_{(1+level)/2, n-1}
    s / sqrt(n), s with ddof 1); NaN for a single value (no spread to estimate)."""
    from scipy.stats import t as student_t  # why: scipy is slow to import; only summaries need it

    values = np.asarray(values, dtype=np.float64)
    n = values.shape[axis]
    if n < 2:
        half = np.full(np.delete(values.shape, axis), np.nan)
    else:
        half = student_t.ppf((1 + level) / 2, n - 1) * values.std(axis=axis, ddof=1) / np.sqrt(n)
    return float(half) if np.ndim(half) == 0 else half
