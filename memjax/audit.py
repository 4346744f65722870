"""Audit mode: each score as a membership test, and an empirical lower bound on epsilon.

A UF model's training set and a baseline model's differ in one record (the canary image with
and without the unique feature). If training is (eps, delta)-DP for that pair, then EVERY test
that reads a model and says "the UF was in its training data" has, on a fresh UF model (TPR)
and a fresh baseline model (FPR),

    TPR <= e^eps FPR + delta      and      1 - FPR <= e^eps (1 - TPR) + delta

(the hypothesis-testing view of DP; Kairouz et al. 2015). A memorisation score thresholded at t
is such a test. With confidence bounds TPR >= TPR_lo and FPR <= FPR_hi that hold jointly with
probability >= 1 - alpha over the draw of the models, eps >= eps_lb with

    eps_lb = max(log((TPR_lo - delta) / FPR_hi), log((1 - FPR_hi - delta) / (1 - TPR_lo)), 0),

the auditing recipe of Jagielski et al. 2020 ("Auditing Differentially Private Machine Learning:
How Private is Private SGD?") and Nasr et al. 2021, with one-sided Clopper-Pearson bounds.

Choosing the threshold. The best threshold found on the same models would void the confidence
level, so the candidate tests are fixed in advance by *rank*, not by score value (method
"ranks", the default): for each rank r in a fixed set R (default 0, 1, 2, 4, 8, ...),

- "baseline rank r": positive if the score is above the (r+1)-th highest baseline score. Its
  false positives are exactly r, and its true FPR is distributed as Beta(r+1, m-r) whatever the
  score's distribution (order statistics of uniforms), so the Clopper-Pearson upper bound for r
  of m is exact; given the baselines, the UF count above the threshold is binomial.
- "uf rank r": positive if the score is at or above the (r+1)-th lowest UF score (misses exactly
  r; the mirror image, for UF models that all score high).

Ties are broken by a seeded random order (a randomised test, allowed by DP), which keeps the
counts exact for discrete scores. A Bonferroni correction over the K candidate tests, and the
union of the two one-sided bounds, give each bound confidence 1 - alpha / (2K); the maximum
over the K tests is then a lower bound on eps with confidence >= 1 - alpha. Method "split"
instead picks the test on a random half of each group and bounds it on the other half (K = 1).

Everything here is NumPy/SciPy on the host. Shapes: N1 UF models (positives), N0 baselines.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from memjax.stats import NAN, Seed, _finite, clopper_pearson, only_valid, roc_auc, roc_curve

if TYPE_CHECKING:
    import pandas as pd

METHODS = ("ranks", "split")
# Scores read as membership tests by default: the main scores, not the logged diagnostics.
AUDIT_SCORES = ("M2", "M_score", "M6", "M12", "M13", "M14", "M15", "PD_M", "PD_max")


@dataclass(frozen=True)
class EpsBound:
    """The best candidate test and the epsilon lower bound it gives.

    Attributes:
      eps_lb: the lower bound on epsilon, holding with confidence >= 1 - alpha (0: none).
      threshold: the score value of the chosen test (NaN when no test was possible).
      test: e.g. "score > t (baseline rank 0)" or "score >= t (uf rank 3)"; ties at t are
        broken at random (method "ranks").
      tp, fp: true and false positives of that test; n_pos, n_neg: models it was counted on.
      tpr_lo, fpr_hi: the confidence bounds used, each at confidence 1 - alpha / (2 n_tests).
      n_tests: K, the Bonferroni factor. method, alpha, delta: as given.
      eps_max: the bound perfect separation of the same numbers of models would give (the
        ceiling the sample size allows; see `eps_lb_perfect`).
    """

    eps_lb: float
    threshold: float
    test: str
    tp: int
    fp: int
    n_pos: int
    n_neg: int
    tpr_lo: float
    fpr_hi: float
    n_tests: int
    method: str
    alpha: float
    delta: float
    eps_max: float


# --------------------------------------------------------------------------------------------
# The DP inequalities and their closed forms


def eps_from_rates(tpr_lo: float, fpr_hi: float, delta: float) -> float:
    """The smallest eps consistent with TPR >= tpr_lo and FPR <= fpr_hi under (eps, delta)-DP:
    max(log((tpr_lo - delta) / fpr_hi), log((1 - fpr_hi - delta) / (1 - tpr_lo)), 0)."""
    cands = [0.0]
    if tpr_lo - delta > 0 and fpr_hi > 0:
        cands.append(math.log((tpr_lo - delta) / fpr_hi))
    if 1 - fpr_hi - delta > 0:
        cands.append(math.inf if tpr_lo >= 1 else math.log((1 - fpr_hi - delta) / (1 - tpr_lo)))
    return max(cands)


def default_ranks(n: int) -> tuple[int, ...]:
    """0 and the powers of two below n: the rank grid of method "ranks" for a group of n."""
    return (0,) + tuple(2**k for k in range(max(0, math.ceil(math.log2(max(n, 1))))) if 2**k < n)


def _ranks_in(ranks: Sequence[int] | None, n: int) -> tuple[int, ...]:
    if ranks is None:
        return default_ranks(n)
    return tuple(sorted({int(r) for r in ranks if 0 <= int(r) < n}))


def n_tests(n_pos: int, n_neg: int, ranks: Sequence[int] | None = None) -> int:
    """K of method "ranks": the candidate tests for N1 UF and N0 baseline models."""
    return len(_ranks_in(ranks, n_neg)) + len(_ranks_in(ranks, n_pos))


def eps_lb_perfect(n_pos: int, n_neg: int, delta: float, alpha: float, n_tests: int = 1) -> float:
    """Closed form of the bound when UF and baseline models are perfectly separated.

    With no errors, Clopper-Pearson at confidence 1 - a, a = alpha / (2 n_tests), gives
    TPR_lo = a^(1/N1) and FPR_hi = 1 - a^(1/N0); the bound is `eps_from_rates` of those. It is
    the largest eps_lb N1 + N0 models can ever show.
    """
    if n_pos < 1 or n_neg < 1:
        return NAN
    a = alpha / (2 * n_tests)
    return eps_from_rates(a ** (1 / n_pos), 1 - a ** (1 / n_neg), delta)


def _n_closed_form(eps_target: float, delta: float, a: float) -> int:
    """Smallest n with eps_from_rates(a^(1/n), 1 - a^(1/n), delta) >= eps_target (balanced):
    (p - delta) / (1 - p) >= e^eps  <=>  p >= (e^eps + delta) / (1 + e^eps), p = a^(1/n)."""
    p_star = (math.exp(eps_target) + delta) / (1 + math.exp(eps_target))
    if p_star >= 1:
        return math.inf  # type: ignore[return-value]
    return max(1, math.ceil(math.log(a) / math.log(p_star) - 1e-9))


def models_needed(
    eps_target: float,
    delta: float = 1e-5,
    alpha: float = 0.05,
    *,
    method: str = "ranks",
    ranks: Sequence[int] | None = None,
) -> int:
    """UF models, and as many baseline models, that perfect separation needs for eps_lb to
    reach `eps_target` (balanced design; the total is twice this).

    Closed form from Clopper-Pearson with no errors (`eps_lb_perfect`). For method "ranks",
    K depends on n through the rank grid; the answer is the smallest n over the grid's K values
    whose own K(n) does not exceed the K assumed. For "split", the bound is computed on half of
    each group with K = 1, so twice the models.

    Raises:
      ValueError: an unknown method or a non-positive target.
    """
    if eps_target <= 0:
        raise ValueError(f"models_needed: eps_target={eps_target} must be > 0")
    if method == "split":
        return 2 * _n_closed_form(eps_target, delta, alpha / 2)
    if method != "ranks":
        raise ValueError(f"models_needed: method={method!r}; use one of {METHODS}")
    best = math.inf
    for k in range(2, 2 * 64 + 1):
        n = _n_closed_form(eps_target, delta, alpha / (2 * k))
        if n_tests(n, n, ranks) <= k:
            best = min(best, n)
    return int(best)


# --------------------------------------------------------------------------------------------
# The bound from scores


def _order(scores: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Indices sorting the scores ascending, ties broken at random: a strict total order, so
    every rank test below is a (randomised) test with exact counts."""
    tie = rng.random(scores.size)
    return np.lexsort((tie, scores))  # indices, ascending by (score, tie)


def _tie_accept(scores: np.ndarray, place: np.ndarray, cut: int, t: float, inclusive: bool) -> float:
    """Fraction of the models tied at the threshold t (the score at position `cut`) that the test
    calls positive: the rank test as a fixed randomised test "score > t, or = t with this
    probability" (what method "split" carries to the other half)."""
    tied = scores == t
    above = place[tied] >= cut if inclusive else place[tied] > cut
    return float(np.mean(above))


def _rank_tests(pos: np.ndarray, neg: np.ndarray, ranks: Sequence[int] | None, rng: np.random.Generator
                ) -> list[dict]:
    """Counts of every candidate test of method "ranks" (see the module docstring)."""
    n1, n0 = pos.size, neg.size
    scores = np.concatenate([pos, neg])
    is_pos = np.r_[np.ones(n1, bool), np.zeros(n0, bool)]
    order = _order(scores, rng)
    place = np.empty(order.size, int)
    place[order] = np.arange(order.size)  # position of each model in the total order
    pos_place, neg_place = np.sort(place[is_pos]), np.sort(place[~is_pos])
    tests = []
    for r in _ranks_in(ranks, n0):
        cut = neg_place[n0 - 1 - r]  # the (r+1)-th highest baseline; positive strictly above it
        t = float(scores[order[cut]])
        tests.append({"tp": int(np.sum(pos_place > cut)), "fp": r, "threshold": t,
                      "tie_accept": _tie_accept(scores, place, cut, t, inclusive=False),
                      "test": f"score > t (baseline rank {r})"})
    for r in _ranks_in(ranks, n1):
        cut = pos_place[r]  # the (r+1)-th lowest UF model; positive at or above it
        t = float(scores[order[cut]])
        tests.append({"tp": n1 - r, "fp": int(np.sum(neg_place > cut)), "threshold": t,
                      "tie_accept": _tie_accept(scores, place, cut, t, inclusive=True),
                      "test": f"score >= t (uf rank {r})"})
    return tests


def _bound_tests(tests: list[dict], n1: int, n0: int, delta: float, alpha: float) -> list[dict]:
    """Adds tpr_lo, fpr_hi (each one-sided at 1 - alpha / (2K)) and eps to every test."""
    k = len(tests)
    for t in tests:
        # clopper_pearson(., ., 2a) is two-sided at 1 - 2a: each side is one-sided at 1 - a.
        t["tpr_lo"] = clopper_pearson(t["tp"], n1, alpha / k)[0]
        t["fpr_hi"] = clopper_pearson(t["fp"], n0, alpha / k)[1]
        t["eps"] = eps_from_rates(t["tpr_lo"], t["fpr_hi"], delta)
    return tests


def _best(tests: list[dict]) -> dict:
    return max(tests, key=lambda t: t["eps"])  # first of equal ones: lowest rank


def eps_lower_bound(
    pos: np.ndarray,
    neg: np.ndarray,
    *,
    delta: float = 1e-5,
    alpha: float = 0.05,
    method: str = "ranks",
    ranks: Sequence[int] | None = None,
    seed: Seed = 0,
) -> EpsBound:
    """One-sided lower bound on eps at confidence 1 - alpha from UF and baseline scores.

    Args:
      pos: [N1] scores of UF models; neg: [N0] scores of baseline models (higher = "UF
        present"; negate p-values first). Non-finite values are dropped.
      delta: the delta of the (eps, delta) guarantee being audited.
      alpha: 1 - confidence.
      method: "ranks" (all models, Bonferroni over fixed-rank tests) or "split" (choose the
        test on a random half of each group, bound it on the other half).
      ranks: the rank grid (default `default_ranks`).
      seed: tie-breaking and the split.
    Returns:
      EpsBound (eps_lb 0 and threshold NaN when a group is empty).
    Raises:
      ValueError: an unknown method, alpha outside (0, 1) or delta outside [0, 1).
    """
    if method not in METHODS:
        raise ValueError(f"eps_lower_bound: method={method!r}; use one of {METHODS}")
    if not 0 < alpha < 1 or not 0 <= delta < 1:
        raise ValueError(f"eps_lower_bound: need 0 < alpha < 1 and 0 <= delta < 1, got {alpha}, {delta}")
    pos, _ = _finite(pos)
    neg, _ = _finite(neg)
    rng = np.random.default_rng(seed)
    n1, n0 = pos.size, neg.size
    if method == "split":
        return _split_bound(pos, neg, delta, alpha, ranks, rng)
    k = n_tests(n1, n0, ranks)
    eps_max = eps_lb_perfect(n1, n0, delta, alpha, max(k, 1))
    if n1 == 0 or n0 == 0:
        return EpsBound(0.0, NAN, "", 0, 0, n1, n0, NAN, NAN, k, method, alpha, delta, eps_max)
    best = _best(_bound_tests(_rank_tests(pos, neg, ranks, rng), n1, n0, delta, alpha))
    return EpsBound(best["eps"], best["threshold"], best["test"], best["tp"], best["fp"], n1, n0,
                    best["tpr_lo"], best["fpr_hi"], k, method, alpha, delta, eps_max)


def _split_bound(pos: np.ndarray, neg: np.ndarray, delta: float, alpha: float,
                 ranks: Sequence[int] | None, rng: np.random.Generator) -> EpsBound:
    """Method "split": the best rank test of a random half of each group, as a fixed
    (randomised at ties) test on the score, counted on the other half with K = 1."""
    pos, neg = rng.permutation(pos), rng.permutation(neg)
    h1, h0 = pos.size // 2, neg.size // 2
    pos_sel, pos_eval, neg_sel, neg_eval = pos[:h1], pos[h1:], neg[:h0], neg[h0:]
    n1, n0 = pos_eval.size, neg_eval.size
    eps_max = eps_lb_perfect(n1, n0, delta, alpha, 1)
    if h1 == 0 or h0 == 0:
        return EpsBound(0.0, NAN, "", 0, 0, n1, n0, NAN, NAN, 1, "split", alpha, delta, eps_max)
    chosen = _best(_bound_tests(_rank_tests(pos_sel, neg_sel, ranks, rng), h1, h0, delta, alpha))
    t, rho = chosen["threshold"], chosen["tie_accept"]

    def positive(x: np.ndarray) -> np.ndarray:  # the chosen test, fixed before seeing these
        return (x > t) | ((x == t) & (rng.random(x.size) < rho))

    test = {"tp": int(np.sum(positive(pos_eval))), "fp": int(np.sum(positive(neg_eval)))}
    test = _bound_tests([test], n1, n0, delta, alpha)[0]
    label = (f"score > t, or = t with probability {rho:.3g} (chosen on the other half: "
             f"{chosen['test']})")
    return EpsBound(test["eps"], t, label, test["tp"], test["fp"], n1, n0, test["tpr_lo"],
                    test["fpr_hi"], 1, "split", alpha, delta, eps_max)


# --------------------------------------------------------------------------------------------
# ROC summaries and the table


def tpr_at_fpr(pos: np.ndarray, neg: np.ndarray, fpr: float) -> tuple[float, bool]:
    """Largest empirical TPR among thresholds whose empirical FPR is <= `fpr`.

    Returns:
      (tpr, resolved). resolved is False when there are fewer than 1/fpr baseline models: then
      the only such thresholds have no false positive at all, and "TPR at FPR 0.1%" measured on
      100 baselines is really "TPR at FPR 0 of 100", which says little about a 0.1% rate.
    """
    pos, _ = _finite(pos)
    neg, _ = _finite(neg)
    if pos.size == 0 or neg.size == 0:
        return NAN, False
    f, t, _ = roc_curve(pos, neg)
    return float(np.max(t[f <= fpr + 1e-12])), bool(neg.size * fpr >= 1 - 1e-9)


def audit_scores(
    pos: np.ndarray,
    neg: np.ndarray,
    *,
    delta: float = 1e-5,
    alpha: float = 0.05,
    method: str = "ranks",
    ranks: Sequence[int] | None = None,
    seed: Seed = 0,
) -> dict[str, float]:
    """One row of `audit_table` for one score: UF scores pos [N1] against baseline neg [N0]."""
    pos_f, drop1 = _finite(pos)
    neg_f, drop0 = _finite(neg)
    b = eps_lower_bound(pos_f, neg_f, delta=delta, alpha=alpha, method=method, ranks=ranks, seed=seed)
    t1, ok1 = tpr_at_fpr(pos_f, neg_f, 0.01)
    t01, ok01 = tpr_at_fpr(pos_f, neg_f, 0.001)
    row = {
        "n_pos": pos_f.size, "n_neg": neg_f.size, "n_dropped": drop1 + drop0,
        "auc": roc_auc(pos_f, neg_f),
        "tpr_at_fpr_1pct": t1, "tpr_at_fpr_0.1pct": t01,
        "resolved_1pct": ok1, "resolved_0.1pct": ok01,
        "fpr_floor": 1 / neg_f.size if neg_f.size else NAN,
        "eps_lb": b.eps_lb, "threshold": b.threshold,
    }
    row.update({f"eps_lb_{k}": v for k, v in asdict(b).items()
                if k in ("test", "tp", "fp", "tpr_lo", "fpr_hi", "n_tests", "eps_max")})
    row.update({"method": method, "alpha": alpha, "delta": delta})
    return row


def audit_table(
    models_df: "pd.DataFrame",
    scores: Sequence[str] = AUDIT_SCORES,
    *,
    delta: float = 1e-5,
    alpha: float = 0.05,
    method: str = "ranks",
    ranks: Sequence[int] | None = None,
    negate: Sequence[str] = (),
    condition_col: str = "condition",
    uf: str = "uf",
    baseline: str = "baseline",
    valid_col: str = "valid",
    seed: int = 0,
) -> "pd.DataFrame":
    """Every score of a population read as a membership test, one row per score.

    Args:
      models_df: one row per model (a run directory's models.csv): `condition_col` ("uf" or
        "baseline"), the score columns, and optionally a boolean `valid_col` (False rows, e.g.
        diverged models, are left out).
      scores: score columns; higher must mean "UF present", except for those in `negate`
        (e.g. p-values such as "PD_M_p"), which are negated.
      delta, alpha, method, ranks, seed: as `eps_lower_bound` (the same seed for every score).
    Returns:
      DataFrame: score, n_pos, n_neg, n_dropped, auc, tpr_at_fpr_1pct, tpr_at_fpr_0.1pct,
      resolved_1pct, resolved_0.1pct (enough baselines to resolve that FPR), fpr_floor
      (1 / n_neg), eps_lb, threshold, eps_lb_test, eps_lb_tp, eps_lb_fp, eps_lb_tpr_lo,
      eps_lb_fpr_hi, eps_lb_n_tests, eps_lb_eps_max (the ceiling for this many models),
      method, alpha, delta.
    Raises:
      ValueError: a score or the condition column is missing.
    """
    import pandas as pd

    missing = [c for c in [condition_col, *scores] if c not in models_df.columns]
    if missing:
        raise ValueError(f"audit_table: columns {missing} not in the table; it has {list(models_df.columns)}")
    df = only_valid(models_df, valid_col)
    is_uf = (df[condition_col] == uf).to_numpy()
    is_base = (df[condition_col] == baseline).to_numpy()
    rows = []
    for name in scores:
        col = pd.to_numeric(df[name], errors="coerce").to_numpy(np.float64)
        col = -col if name in negate else col
        rows.append({"score": name, **audit_scores(col[is_uf], col[is_base], delta=delta, alpha=alpha,
                                                   method=method, ranks=ranks, seed=seed)})
    return pd.DataFrame(rows)


def run_delta(workdir: str | Path) -> float:
    """The delta to audit a run at: its `train.dp_delta` when set, else 1 / N for its N
    training images (the accountant's default, `memjax.accounting`), from config.json.

    Raises:
      ResultsError: config.json is missing or unreadable (`results.read_record`), or records
        neither a valid dp_delta nor the training-set size (data.train.n).
    """
    from memjax.results import ResultsError, read_record

    record = read_record(workdir)
    train = record["config"].get("train")
    dp_delta = train.get("dp_delta") if isinstance(train, dict) else None
    if isinstance(dp_delta, (int, float)) and not isinstance(dp_delta, bool) and 0 < dp_delta < 1:
        return float(dp_delta)
    data = record.get("data")
    split = data.get("train") if isinstance(data, dict) else None
    n = split.get("n") if isinstance(split, dict) else None
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ResultsError(f"{Path(workdir) / 'config.json'}: no training-set size (data.train.n) "
                           "to audit at delta = 1/N; give delta explicitly")
    return 1.0 / n


def audit_run(workdir: str | Path, scores: Sequence[str] = AUDIT_SCORES, *,
              delta: float | None = None, alpha: float = 0.05, **kwargs) -> "pd.DataFrame":
    """`audit_table` of a finished run directory's models.csv (read only; nothing is written).

    delta=None audits at `run_delta(workdir)` (the run's DP delta, else 1 / N).

    Raises:
      ResultsError: no models.csv in `workdir` (run `memjax score` first), or one that cannot
        be parsed, lacks a column the audit needs, or fails its MANIFEST.json entry.
      ConfigError: delta outside [0, 1) or alpha outside (0, 1).
    """
    from memjax.errors import ConfigError
    from memjax.results import ResultsError, read_table, require_intact

    workdir = Path(workdir)
    for name, value, ok in (("delta", delta, delta is None or 0 <= delta < 1),
                            ("alpha", alpha, 0 < alpha < 1)):
        if not ok:  # also refuses NaN
            raise ConfigError(f"audit: {name}={value}; need 0 <= delta < 1 and 0 < alpha < 1")
    path = workdir / "models.csv"
    if not path.is_file():
        raise ResultsError(f"{path}: missing; audit a scored run directory")
    require_intact(workdir, ("models.csv",), "audit")
    table = read_table(path)
    missing = [c for c in ("condition", *scores) if c not in table.columns]
    if missing:
        raise ResultsError(f"{path}: missing columns {missing}")
    delta = run_delta(workdir) if delta is None else delta
    return audit_table(table, scores, delta=delta, alpha=alpha, **kwargs)


def audit_sweep(sweep_dir: str | Path, scores: Sequence[str] = AUDIT_SCORES, *,
                delta: float | None = None, **kwargs) -> "pd.DataFrame":
    """`audit_run` of every complete study of a sweep directory, with a `study` column, in
    the order of its combined table; each study at its own `run_delta` unless `delta` is given.

    Raises:
      ResultsError: no combined_models.csv (run or combine the sweep first), or one that
        cannot be parsed.
      ConfigError: a study name that would lead outside the sweep's studies/ folder.
    """
    import pandas as pd

    from memjax.paths import safe_join
    from memjax.results import COMBINED_MODELS, STUDIES, ResultsError, read_study_names, read_table

    sweep_dir = Path(sweep_dir)
    combined = sweep_dir / COMBINED_MODELS
    if not combined.is_file():
        raise ResultsError(f"{combined}: missing; run `memjax sweep SPEC --out {sweep_dir}`")
    table = read_table(combined)  # parses, or a ResultsError naming the file
    if "study" not in table.columns:
        raise ResultsError(f"{combined}: no 'study' column")
    tables = []
    for name in read_study_names(combined).drop_duplicates():  # "None" stays a name
        run = safe_join(sweep_dir / STUDIES, str(name), what=f"{combined.name}: study")
        if len(run.relative_to(sweep_dir / STUDIES).parts) != 1:
            raise ResultsError(f"{combined}: study {name!r} is not a folder of studies/")
        tables.append(audit_run(run, scores, delta=delta, **kwargs).assign(study=name))
    if not tables:
        return pd.DataFrame()
    return pd.concat(tables, ignore_index=True)
