"""How much a score varies with the init seed and the data-order seed (host; NumPy/SciPy).

A crossed study (`population.seed_mode="crossed"`) trains every pair of A init seeds and B
data-order seeds: one model per cell of an A x B table. Treating both seeds as random draws,
the two-way random-effects model without replication is

    y[i, j] = mu + a[i] + b[j] + e[i, j],   a ~ (0, var_init), b ~ (0, var_order),
                                            e ~ (0, var_residual)

where e holds the init x order interaction and everything else (one model per cell cannot
tell them apart). The method-of-moments (ANOVA) estimates are

    var_init     = (MS_init  - MS_residual) / B
    var_order    = (MS_order - MS_residual) / A
    var_residual = MS_residual

(negative estimates are set to 0), with F tests of "no init (order) effect". Intervals of the
variances assume normal effects: the exact chi-square interval for var_residual and the
modified large-sample interval for a difference of mean squares (Ting, Burdick, Graybill,
Jeyaratnam & Lu 1990; Burdick & Graybill, "Confidence Intervals on Variance Components",
1992, ch. 3) for var_init and var_order, which keeps close to its nominal coverage even with
few seeds (tested by simulation). Intervals of the shares come from the
pigeonhole bootstrap (Owen, Ann. Appl. Stat. 2007): init seeds and order seeds resampled with
replacement independently, the table re-indexed by both; it is biased towards smaller
between-seed variances with few seeds, so read the share intervals as rough.

The interval of the table's mean (for the UF-minus-twin difference: the memorisation effect)
uses the same components, so models sharing an init or an order seed are not counted as
independent; `memjax.stats.summarise` uses it for the paired statistics of a crossed study.

These give what a study needs to plan its population: the variance of one model's score, the
standard error of the population mean for any A x B (`mean_se`), and the number of seeds for
a target interval half-width (`seeds_needed`).
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import stats as sps

from memjax.argtypes import is_int, is_real
from memjax.stats import _check_boot, _check_scores

if TYPE_CHECKING:
    import pandas as pd

NAN = float("nan")
COMPONENTS = ("init", "order", "residual")
MAX_SEEDS = 2**53  # largest seed count (mean_se, seeds_needed's max_n): a float holds it exactly


def _check_table(fn: str, table: Any) -> np.ndarray:
    """`table` as float64 [A, B]; ValueError naming `table` unless it is a 2-D table of finite
    numbers with A, B >= 2 (drop missing or non-finite cells first: `crossed_table`)."""
    try:
        y = np.asarray(table, np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{fn}: table must be a finite [A, B] table of numbers with A, B >= 2"
                         ) from None
    if y.ndim != 2 or min(y.shape) < 2:
        raise ValueError(f"{fn}: table must be a finite [A, B] table with A, B >= 2, got shape "
                         f"{y.shape}")
    if not np.isfinite(y).all():
        raise ValueError(f"{fn}: table must be a finite [A, B] table with A, B >= 2, got "
                         f"{int((~np.isfinite(y)).sum())} non-finite cells (keep the largest "
                         "complete sub-table: crossed_table)")
    return y


def largest_complete(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of the largest complete sub-table of a crossed design.

    Args:
      mask: bool [A, B], True where the cell holds a finite value.
    Returns:
      (keep_rows [A], keep_cols [B]) bool: the sub-table with the most cells (then the most
      rows) whose cells are all present, at least 2 x 2; both all False when there is none.
      Exact (every subset of rows) for A <= 16; above that, greedy: drop the row or column with
      the largest share of missing cells, never an axis already down to 2.
    """
    mask = np.asarray(mask, bool)
    a, b = mask.shape
    if a >= 2 and b >= 2 and mask.all():  # the usual case, no model missing: no search
        return np.ones(a, bool), np.ones(b, bool)
    none = (np.zeros(a, bool), np.zeros(b, bool))
    if a <= 16:
        best, best_key = none, (0, 0)
        for bits in range(1, 1 << a):
            rows = np.array([(bits >> i) & 1 for i in range(a)], bool)
            n_rows = int(rows.sum())
            if n_rows < 2:
                continue
            cols = mask[rows].all(axis=0)
            key = (n_rows * int(cols.sum()), n_rows)
            if cols.sum() >= 2 and key > best_key:
                best, best_key = (rows, cols), key
        return best
    keep_r, keep_c = np.ones(a, bool), np.ones(b, bool)
    while True:
        missing = ~mask[np.ix_(keep_r, keep_c)]
        if not missing.any():
            return (keep_r, keep_c) if keep_r.sum() >= 2 and keep_c.sum() >= 2 else none
        by_row = missing.mean(axis=1) if keep_r.sum() > 2 else np.full(keep_r.sum(), -1.0)
        by_col = missing.mean(axis=0) if keep_c.sum() > 2 else np.full(keep_c.sum(), -1.0)
        if max(by_row.max(), by_col.max()) <= 0:
            return none  # a 2 x 2 (or 2 x n) corner with a hole: nothing complete
        if by_row.max() >= by_col.max():
            keep_r[np.flatnonzero(keep_r)[by_row.argmax()]] = False
        else:
            keep_c[np.flatnonzero(keep_c)[by_col.argmax()]] = False


def crossed_table(values: np.ndarray, init: np.ndarray, order: np.ndarray
                  ) -> tuple[np.ndarray, int, int]:
    """The complete A x B table of a crossed design.

    Args:
      values: [N] one score per model; init, order: [N] its init and data-order seed.
    Returns:
      (table [A, B], init seeds dropped, order seeds dropped): rows are init seeds, columns
      order seeds. Missing or non-finite cells (a diverged model) are removed by keeping the
      largest complete sub-table (`largest_complete`).
    Raises:
      ValueError: lengths differ, a cell holds two models, or no complete 2 x 2 table exists.
    """
    values = np.asarray(values, np.float64).reshape(-1)
    init, order = np.asarray(init).reshape(-1), np.asarray(order).reshape(-1)
    if not values.size == init.size == order.size:
        raise ValueError(f"crossed_table: {values.size} values, {init.size} init seeds, "
                         f"{order.size} order seeds")
    rows, r = np.unique(init, return_inverse=True)
    cols, c = np.unique(order, return_inverse=True)
    counts = np.zeros((rows.size, cols.size), int)
    np.add.at(counts, (r, c), 1)
    if counts.max(initial=0) > 1:
        raise ValueError("crossed_table: some (init seed, order seed) cell holds several models; "
                         "select one condition and one placement (or average them) first")
    table = np.full((rows.size, cols.size), np.nan)
    table[r, c] = values
    keep_r, keep_c = largest_complete(np.isfinite(table))
    if keep_r.sum() < 2 or keep_c.sum() < 2:
        raise ValueError(f"crossed_table: no complete table of at least 2 x 2 seeds "
                         f"({rows.size} init x {cols.size} order seeds, "
                         f"{int((~np.isfinite(values)).sum())} non-finite values)")
    return table[np.ix_(keep_r, keep_c)], int((~keep_r).sum()), int((~keep_c).sum())


def _mean_squares(y: np.ndarray) -> tuple[float, float, float]:
    """(MS_init, MS_order, MS_residual) of a table [..., A, B] (leading axes batched)."""
    a, b = y.shape[-2:]
    grand = y.mean(axis=(-2, -1), keepdims=True)
    row = y.mean(axis=-1, keepdims=True)
    col = y.mean(axis=-2, keepdims=True)
    ms_a = b * ((row - grand) ** 2).sum(axis=(-2, -1)) / (a - 1)
    ms_b = a * ((col - grand) ** 2).sum(axis=(-2, -1)) / (b - 1)
    ms_e = ((y - row - col + grand) ** 2).sum(axis=(-2, -1)) / ((a - 1) * (b - 1))
    return ms_a, ms_b, ms_e


def _components(y: np.ndarray) -> np.ndarray:
    """[..., 3] estimated var_init, var_order, var_residual of tables [..., A, B]."""
    a, b = y.shape[-2:]
    ms_a, ms_b, ms_e = _mean_squares(y)
    return np.stack([np.maximum((ms_a - ms_e) / b, 0.0), np.maximum((ms_b - ms_e) / a, 0.0),
                     ms_e], axis=-1)


def _mls_interval(ms_1: float, ms_2: float, nu_1: int, nu_2: int, c: float, alpha: float
                  ) -> tuple[float, float]:
    """Modified large-sample interval of (ms_1 - ms_2) / c, with ms_1 on nu_1 and ms_2 on nu_2
    degrees of freedom (the MLS interval of Ting et al. 1990, in Burdick & Graybill 1992,
    ch. 3), both ends at least 0. With ms_2 = 0 it is the exact chi-square interval of ms_1 / c."""
    f = sps.f.ppf
    f_inf = lambda q, nu: sps.chi2.ppf(q, nu) / nu  # noqa: E731  (F with infinite denominator)
    hi_q, lo_q = 1 - alpha / 2, alpha / 2
    g1, g2 = 1 - 1 / f_inf(hi_q, nu_1), 1 - 1 / f_inf(hi_q, nu_2)
    h1, h2 = 1 / f_inf(lo_q, nu_1) - 1, 1 / f_inf(lo_q, nu_2) - 1
    f_hi, f_lo = f(hi_q, nu_1, nu_2), f(lo_q, nu_1, nu_2)
    g12 = ((f_hi - 1) ** 2 - g1 ** 2 * f_hi ** 2 - h2 ** 2) / f_hi
    h12 = ((1 - f_lo) ** 2 - h1 ** 2 * f_lo ** 2 - g2 ** 2) / f_lo
    theta = ms_1 - ms_2
    lower = theta - np.sqrt(max(g1 ** 2 * ms_1 ** 2 + h2 ** 2 * ms_2 ** 2 + g12 * ms_1 * ms_2, 0.0))
    upper = theta + np.sqrt(max(h1 ** 2 * ms_1 ** 2 + g2 ** 2 * ms_2 ** 2 + h12 * ms_1 * ms_2, 0.0))
    return max(float(lower) / c, 0.0), max(float(upper) / c, 0.0)


def mean_interval(table: np.ndarray, alpha: float = 0.05) -> dict[str, float]:
    """The mean of a complete crossed table with its t interval and one-sided t test (mean > 0)
    under the random-effects model, so models sharing an init or an order seed do not count
    as independent.

    Var(mean) = var_init / A + var_order / B + var_residual / (A B) from the truncated
    components, i.e. (sum of c_k MS_k) / (A B), where a factor's MS enters only if it exceeds
    MS_residual and MS_residual's coefficient is 1 - (factors entered); Satterthwaite degrees
    of freedom for that combination.

    Args:
      table: [A, B] finite, A, B >= 2.
      alpha: in (0, 1): a (1 - alpha) interval.
    Returns:
      mean, lo, hi, se, df, p_greater; a table with no variance at all gives se 0, the
      interval [mean, mean] and p NaN.
    Raises:
      ValueError: naming table (not 2-D, fewer than 2 rows or columns, a non-finite cell) or
        alpha.
    """
    y = _check_table("mean_interval", table)
    _check_boot("mean_interval", 1, alpha)
    a, b = y.shape
    ms_a, ms_b, ms_e = _mean_squares(y)
    df_e = (a - 1) * (b - 1)
    entered = [(ms, nu) for ms, nu in ((ms_a, a - 1), (ms_b, b - 1)) if ms > ms_e]
    terms = [(1.0, ms, nu) for ms, nu in entered] + [(1.0 - len(entered), ms_e, df_e)]
    combo = sum(c * ms for c, ms, _ in terms)
    mean = float(y.mean())
    if not combo > 1e-20 * max(float(np.mean(y ** 2)), 1e-300):  # no variance beyond rounding
        return {"mean": mean, "lo": mean, "hi": mean, "se": 0.0, "df": NAN, "p_greater": NAN}
    df = max(combo ** 2 / sum((c * ms) ** 2 / nu for c, ms, nu in terms if c), 1.0)
    se = float(np.sqrt(combo / (a * b)))
    half = float(sps.t.ppf(1 - alpha / 2, df)) * se
    return {"mean": mean, "lo": mean - half, "hi": mean + half, "se": se, "df": float(df),
            "p_greater": float(sps.t.sf(mean / se, df))}


def decompose(table: np.ndarray, *, n_boot: int = 2000, alpha: float = 0.05, seed: int = 0
              ) -> dict[str, float]:
    """Random-effects variance components of a complete crossed table (see the module doc).

    Args:
      table: [A, B] one score per (init seed, order seed), A, B >= 2, all finite.
      n_boot: bootstrap resamples of the shares, an integer >= 1.
      alpha: in (0, 1): (1 - alpha) intervals.
      seed: seeds the bootstrap (`numpy.random.default_rng`).
    Returns:
      var_<c>, var_<c>_lo, var_<c>_hi and share_<c>, share_<c>_lo, share_<c>_hi for c in
      init, order, residual (shares of var_init + var_order + var_residual, the variance of one
      model's score); sd_model (its square root); p_init, p_order (F tests of no effect);
      mean, mean_lo, mean_hi (t interval of the table's mean, which accounts for models
      sharing an init or an order seed; Satterthwaite degrees of freedom mean_df); n_init,
      n_order.
    Raises:
      ValueError: naming table (as `mean_interval`), n_boot or alpha.
    """
    y = _check_table("decompose", table)
    _check_boot("decompose", n_boot, alpha)
    a, b = y.shape
    est = _components(y)
    rng = np.random.default_rng(seed)
    boot = np.empty((n_boot, 3))
    step = max(1, (1 << 22) // y.size)
    for start in range(0, n_boot, step):
        n = min(step, n_boot - start)
        ri = rng.integers(0, a, (n, a))
        ci = rng.integers(0, b, (n, b))
        boot[start:start + n] = _components(y[ri[:, :, None], ci[:, None, :]])
    total, boot_total = est.sum(), boot.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        shares, boot_shares = est / total, boot / boot_total
    ms_a, ms_b, ms_e = _mean_squares(y)
    df_e = (a - 1) * (b - 1)
    intervals = {
        "init": _mls_interval(ms_a, ms_e, a - 1, df_e, b, alpha),
        "order": _mls_interval(ms_b, ms_e, b - 1, df_e, a, alpha),
        "residual": (float(df_e * ms_e / sps.chi2.ppf(1 - alpha / 2, df_e)),
                     float(df_e * ms_e / sps.chi2.ppf(alpha / 2, df_e))),
    }
    out: dict[str, float] = {"mean": float(y.mean()), "n_init": a, "n_order": b}
    m = mean_interval(y, alpha)
    out.update({"mean_lo": m["lo"], "mean_hi": m["hi"], "mean_df": m["df"]})
    q = [alpha / 2, 1 - alpha / 2]
    for k, name in enumerate(COMPONENTS):
        out[f"var_{name}"] = float(est[k])
        out[f"var_{name}_lo"], out[f"var_{name}_hi"] = intervals[name]
        out[f"share_{name}"] = float(shares[k])
        col = boot_shares[:, k][np.isfinite(boot_shares[:, k])]
        out[f"share_{name}_lo"], out[f"share_{name}_hi"] = (
            map(float, np.quantile(col, q)) if col.size else (NAN, NAN))
    out["sd_model"] = float(np.sqrt(total))
    with np.errstate(invalid="ignore", divide="ignore"):
        out["p_init"] = float(sps.f.sf(ms_a / ms_e, a - 1, df_e))
        out["p_order"] = float(sps.f.sf(ms_b / ms_e, b - 1, df_e))
    return out


def mean_se(var_init: float, var_order: float, var_residual: float, n_init: int,
            n_order: int | None = None) -> float:
    """Standard error of a population's mean score under the random-effects model.

    n_order=None means every model has its own order seed as well as its own init seed (the
    usual `seed_mode="same"`, n_init models): var / n. Otherwise n_init x n_order crossed:
    var_init / A + var_order / B + var_residual / (A B).

    Raises:
      ValueError: naming a variance that is not a finite number >= 0, or a count (n_init,
        n_order) that is not an integer in [1, MAX_SEEDS = 2**53].
    """
    for name, v in (("var_init", var_init), ("var_order", var_order),
                    ("var_residual", var_residual)):
        if not (is_real(v) and math.isfinite(v) and v >= 0):
            raise ValueError(f"mean_se: {name}={v!r} must be a finite number >= 0")
    for name, n in (("n_init", n_init), ("n_order", n_order)):
        if not (n is None and name == "n_order") and not is_int(n, 1, MAX_SEEDS):
            raise ValueError(f"mean_se: {name}={n!r} must be an integer in [1, 2**53]"
                             + (" or None" if name == "n_order" else ""))
    n_init, n_order = int(n_init), None if n_order is None else int(n_order)
    if n_order is None:
        return float(np.sqrt((var_init + var_order + var_residual) / n_init))
    return float(np.sqrt(var_init / n_init + var_order / n_order
                         + var_residual / (n_init * n_order)))


def seeds_needed(sd: float, half_width: float, alpha: float = 0.05, max_n: int = 10**7) -> int:
    """Fewest independent models n whose mean has a (1 - alpha) t interval of half-width at
    most `half_width`: t_{1 - alpha/2, n - 1} sd / sqrt(n) <= half_width (n >= 2).

    `sd` is the standard deviation of one model's score (or of a UF-minus-twin difference, for
    the paired interval). Returns max_n + 1 when even max_n models are not enough.

    Raises:
      ValueError: sd not a number >= 0, half_width not a number > 0, alpha outside (0, 1), or
        max_n not an integer in [2, MAX_SEEDS].
    """
    if not (is_real(sd) and is_real(half_width) and sd >= 0 and half_width > 0):
        raise ValueError(f"seeds_needed: sd={sd!r} must be >= 0 and half_width={half_width!r} > 0")
    _check_boot("seeds_needed", 1, alpha)
    if not is_int(max_n, 2, MAX_SEEDS):
        raise ValueError(f"seeds_needed: max_n={max_n!r} must be an integer in [2, 2**53]")
    lo, hi = 2, max_n + 1

    def ok(n: int) -> bool:
        return sps.t.ppf(1 - alpha / 2, n - 1) * sd / np.sqrt(n) <= half_width

    while lo < hi:  # the half-width decreases with n: bisect for the first n that is enough
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def crossed_decomposition(models: "pd.DataFrame", scores: tuple[str, ...] = ("M_score", "PD_M"),
                          *, n_boot: int = 2000, seed: int = 0) -> "pd.DataFrame":
    """`decompose` of every crossed study in a (combined) models table.

    Per study whose valid models form a crossed design (`stats.crossed_seeds`) with one canary
    placement, and per score: the decomposition of the UF models' score, the baseline models'
    score, and the UF-minus-twin difference. Rows: study, score, of ('uf', 'baseline',
    'uf-baseline'), n_dropped_init, n_dropped_order (seeds dropped for missing or invalid
    cells, `crossed_table`), then `decompose`'s keys. Other studies are skipped.

    Args:
      models: a models table with a "condition" column and every column of `scores` (numbers;
        NaN for a missing score); "init_seed", "order_seed", "study", "placement" and "valid"
        are used when present.
      scores: a list or tuple of score column names (not a bare string).
    Raises:
      ValueError: naming models (not a DataFrame), a missing column, a score column that is
        not numeric, scores, n_boot.
    """
    import pandas as pd

    from memjax.stats import crossed_seeds, only_valid

    if not isinstance(models, pd.DataFrame):
        raise ValueError(f"crossed_decomposition: models must be a pandas DataFrame, got "
                         f"{type(models).__name__}")
    scores = _check_scores("crossed_decomposition", scores)
    _check_boot("crossed_decomposition", n_boot)
    missing = [c for c in ["condition", *scores] if c not in models.columns]
    if missing:
        raise ValueError(f"crossed_decomposition: models has no column {missing[0]!r} "
                         f"(columns: {list(models.columns)})")
    numeric = {}
    for score in scores:
        try:
            numeric[score] = models[score].to_numpy(np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"crossed_decomposition: score column {score!r} holds values that "
                             "are not numbers") from None
    models = models.assign(**numeric)
    rows = []
    models = only_valid(models)
    studies = models.groupby("study", sort=False) if "study" in models else [("", models)]
    for study, g in studies:
        if "placement" in g and g["placement"].nunique() > 1:
            continue  # several placements per cell: the UF score varies by canary too
        uf = g[g["condition"] == "uf"]
        if crossed_seeds(uf) is None:
            continue
        uf = uf.set_index(["init_seed", "order_seed"])
        base = g[g["condition"] == "baseline"].set_index(["init_seed", "order_seed"])
        if not base.index.is_unique:
            continue
        for score in scores:
            parts = {"uf": uf[score], "baseline": base[score]}
            if len(base):
                parts["uf-baseline"] = (uf[score] - base[score]).dropna()
            for of, s in parts.items():
                init = s.index.get_level_values("init_seed").to_numpy()
                order = s.index.get_level_values("order_seed").to_numpy()
                try:
                    table, drop_init, drop_order = crossed_table(s.to_numpy(), init, order)
                except ValueError:
                    continue
                rows.append({"study": study, "score": score, "of": of,
                             "n_dropped_init": drop_init, "n_dropped_order": drop_order,
                             **decompose(table, n_boot=n_boot, seed=seed)})
    return pd.DataFrame(rows)
