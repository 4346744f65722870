"""Statistics over runs, on the host (NumPy/SciPy): the per-run memorisation test and the
fraction of memorising runs with its exact interval."""
from __future__ import annotations

import numpy as np
import scipy.stats


def memorisation_tests(
    logit1_unique: np.ndarray, logit1_clean: np.ndarray, alpha: float
) -> dict[str, np.ndarray]:
    """Per-run score and paired one-sided t-test (method.md, toy experiment).

    score = mean_i [logit_1(unique_i) - logit_1(clean_i)]; the t-test is
    ``scipy.stats.ttest_rel(unique, clean, alternative="greater")`` over the P points; a run
    memorises when p < alpha. A run with a non-finite logit gets p = NaN and does not memorise.

    Args:
      logit1_unique, logit1_clean: [M, P] raw class-1 logits.
      alpha: significance level.

    Returns:
      {"score", "t", "p": [M] float64, "memorises", "finite": [M] bool}.
    """
    unique = np.asarray(logit1_unique, np.float64)
    clean = np.asarray(logit1_clean, np.float64)
    finite = np.isfinite(unique).all(axis=1) & np.isfinite(clean).all(axis=1)
    score = (unique - clean).mean(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        res = scipy.stats.ttest_rel(unique, clean, axis=1, alternative="greater")
    t = np.where(finite, res.statistic, np.nan)
    p = np.where(finite, res.pvalue, np.nan)
    # NaN < alpha is False: runs with no valid test never count as memorising.
    return {"score": score, "t": t, "p": p, "memorises": p < alpha, "finite": finite}


def fraction_ci(k: int, n: int, confidence: float = 0.95) -> tuple[float, float, float]:
    """Fraction k / n with its Clopper-Pearson (exact binomial) interval.

    Returns:
      (fraction, lo, hi) as from ``scipy.stats.binomtest(k, n).proportion_ci(method="exact")``.
    """
    from memjax.stats import clopper_pearson

    lo, hi = clopper_pearson(int(k), int(n), alpha=1.0 - confidence)
    return k / n, lo, hi
