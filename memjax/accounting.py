"""Privacy accounting for DP-SGD: the epsilon a training run with Gaussian noise is proven to meet.

DP-SGD (per-example gradients clipped to L2 norm C, Gaussian noise of standard deviation
sigma * C added to their sum, sigma the *noise multiplier*) with Poisson sampling at rate q for
T steps is the T-fold composition of the Poisson-subsampled Gaussian mechanism. Its Renyi DP
(RDP) at order alpha is, per step (Mironov, Talwar, Zhang 2019, "Renyi Differential Privacy of
the Sampled Gaussian Mechanism", arXiv:1908.10530):

    RDP(alpha) = log(A_alpha) / (alpha - 1),
    A_alpha = E_{z ~ N(0, sigma^2)} [((1 - q) + q exp((2z - 1) / (2 sigma^2)))^alpha];

RDP adds over steps, and RDP(alpha) converts to (epsilon, delta)-DP; epsilon is the minimum
over a grid of orders. Two conversions are offered:

- "improved" (the default, what dp_accounting and current TF-Privacy report): Canonne, Kamath,
  Steinke 2020 (arXiv:2004.00010, Prop. 12) / Asoodeh et al. 2020:
  eps = RDP + log1p(-1/alpha) - (log(delta) + log(alpha)) / (alpha - 1).
- "classic": Mironov 2017 (arXiv:1702.07476, Prop. 3), eps = RDP + log(1/delta) / (alpha - 1),
  what TF-Privacy reported before 2022 (e.g. the eps = 2.92 of its MNIST tutorial).

Two backends compute the same quantities: Google's `dp_accounting` package (its RDP accountant,
and its PLD accountant, tighter) when it is installed, and a built-in RDP accountant (this file,
NumPy/SciPy, no extra dependency) that follows the same formulas; the tests pin both to
published values and to each other.

Caveats (see docs/audit.md):
- Sampling. memjax draws each epoch as a random permutation cut into fixed-size batches
  (shuffling, sampling without replacement); the accountant assumes Poisson sampling with rate
  q = B / N. Reporting the Poisson epsilon for shuffled batches is standard practice but not a
  proof: shuffled batches can leak more (Chua et al. 2024, "How Private are DP-SGD
  Implementations?").
- Neighbouring datasets. The epsilon here is for add/remove-one adjacency. A UF model and a
  baseline model differ by *replacing* one image (the canary without and with the UF); by group
  privacy (`group_privacy(eps, delta, 2)`) that pair is (2 eps, (1 + e^eps) delta)-close.
- Steps. Count the steps actually taken: with early stopping, epochs_trained * steps per
  epoch. Releasing the best checkpoint instead of the last is covered: the RDP bound covers
  every iterate.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from scipy import special

if TYPE_CHECKING:
    from memjax.config import TrainConfig

# Orders of TF-Privacy's compute_dp_sgd_privacy (fractional orders matter for large epsilon).
DEFAULT_ORDERS: tuple[float, ...] = (
    (1.25, 1.5, 1.75, 2.0, 2.25, 2.5, 3.0, 3.5, 4.0, 4.5)
    + tuple(float(a) for a in range(5, 64))
    + (128.0, 256.0, 512.0)
)
ACCOUNTANTS = ("rdp", "pld")
BACKENDS = ("auto", "dp_accounting", "builtin")
CONVERSIONS = ("improved", "classic")

# The fractional-order series stops when both tails are decreasing and 30 nats below the total.
_SERIES_TOL = 30.0
_SERIES_MAX_TERMS = 1000


# --------------------------------------------------------------------------------------------
# Built-in RDP of the Poisson-subsampled Gaussian mechanism (NumPy/SciPy)


def _log_binom_abs(alpha: float, i: np.ndarray) -> np.ndarray:
    """log |binom(alpha, i)| for real alpha and integer i >= 0 (gammaln is log |Gamma|)."""
    return special.gammaln(alpha + 1) - special.gammaln(i + 1) - special.gammaln(alpha - i + 1)


def _log_erfc(x: np.ndarray) -> np.ndarray:
    """log erfc(x), accurate in the far tail (erfc(x) = 2 Phi(-x sqrt 2))."""
    return math.log(2.0) + special.log_ndtr(-np.asarray(x, np.float64) * math.sqrt(2.0))


def _log_a_int(q: float, sigma: float, alpha: int) -> float:
    """log A_alpha for an integer order: the binomial expansion of A_alpha is finite,
    A_alpha = sum_{i=0}^{alpha} binom(alpha, i) (1 - q)^(alpha - i) q^i exp((i^2 - i) / (2 sigma^2))."""
    i = np.arange(alpha + 1, dtype=np.float64)
    terms = (_log_binom_abs(alpha, i) + i * math.log(q) + (alpha - i) * math.log1p(-q)
             + (i * i - i) / (2.0 * sigma**2))
    return float(special.logsumexp(terms))


def _log_a_frac(q: float, sigma: float, alpha: float) -> float:
    """log A_alpha for a fractional order (Mironov, Talwar, Zhang 2019, Sec. 3.3).

    A_alpha is split at z0, where the two parts of the mixture density ratio are equal; on each
    side the binomial series of (a + b)^alpha (|b| <= |a|) is integrated term by term, giving
    Gaussian tail probabilities (the erfc factors). The terms of a fractional binomial series
    alternate in sign; summing their magnitudes gives an upper bound on A_alpha, hence a valid
    (conservative) RDP bound without cancellation error. This is also what dp_accounting does.

    Returns:
      log A_alpha, or +inf when the series has not converged (the order is then useless).
    """
    z0 = sigma**2 * math.log(1.0 / q - 1.0) + 0.5
    log_q, log_1mq = math.log(q), math.log1p(-q)
    log_a0 = log_a1 = -np.inf
    last0 = last1 = -np.inf
    for i in range(_SERIES_MAX_TERMS):
        j = alpha - i
        log_coef = float(_log_binom_abs(alpha, np.float64(i)))
        # Integral over z <= z0 (expansion in powers of the q-part) and over z > z0.
        s0 = (log_coef + i * log_q + j * log_1mq + (i * i - i) / (2 * sigma**2)
              + math.log(0.5) + float(_log_erfc((i - z0) / (math.sqrt(2) * sigma))))
        s1 = (log_coef + j * log_q + i * log_1mq + (j * j - j) / (2 * sigma**2)
              + math.log(0.5) + float(_log_erfc((z0 - j) / (math.sqrt(2) * sigma))))
        log_a0, log_a1 = np.logaddexp(log_a0, s0), np.logaddexp(log_a1, s1)
        total = float(np.logaddexp(log_a0, log_a1))
        if s0 < last0 and s1 < last1 and max(s0, s1) < total - _SERIES_TOL:
            return total
        last0, last1 = s0, s1
    return math.inf


def rdp_sampled_gaussian(q: float, noise_multiplier: float, orders: Sequence[float]) -> np.ndarray:
    """RDP of ONE step of the Poisson-subsampled Gaussian mechanism (add/remove adjacency).

    Args:
      q: sampling rate in [0, 1] (each example joins a step's batch with probability q).
      noise_multiplier: sigma, the noise standard deviation over the L2 sensitivity (>= 0).
      orders: [A] RDP orders alpha > 1 (inf allowed).
    Returns:
      float64 [A]: RDP(alpha) per step (+inf where unbounded). Multiply by the steps to compose.
    Raises:
      ValueError: q outside [0, 1], a negative noise multiplier or an order <= 1.
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"rdp_sampled_gaussian: sampling rate q={q} must be in [0, 1]")
    if noise_multiplier < 0:
        raise ValueError(f"rdp_sampled_gaussian: noise_multiplier={noise_multiplier} must be >= 0")
    orders = np.asarray(orders, np.float64).reshape(-1)
    if np.any(orders <= 1):
        raise ValueError(f"rdp_sampled_gaussian: orders must be > 1, got {orders[orders <= 1]}")
    out = np.empty_like(orders)
    for k, alpha in enumerate(orders):
        if q == 0:
            out[k] = 0.0
        elif noise_multiplier == 0 or math.isinf(alpha):
            out[k] = math.inf
        elif q == 1.0:  # no sampling: the Gaussian mechanism, RDP = alpha / (2 sigma^2)
            out[k] = alpha / (2 * noise_multiplier**2)
        elif float(alpha).is_integer():
            out[k] = _log_a_int(q, noise_multiplier, int(alpha)) / (alpha - 1)
        else:
            out[k] = _log_a_frac(q, noise_multiplier, float(alpha)) / (alpha - 1)
    return out


def rdp_to_epsilon(
    orders: Sequence[float], rdp: Sequence[float], delta: float, *, conversion: str = "improved"
) -> tuple[float, float]:
    """(epsilon, optimal order) of a mechanism with RDP `rdp` [A] at `orders` [A].

    conversion "improved": eps = RDP + log1p(-1/alpha) - (log delta + log alpha) / (alpha - 1)
    (Canonne et al. 2020, Prop. 12), and eps = 0 where delta >= sqrt(1 - exp(-RDP)) (the
    KL/Pinsker-type bound already gives delta); orders below 1.01 are skipped (numerically
    unstable, never optimal). "classic": eps = RDP + log(1/delta) / (alpha - 1) (Mironov 2017).

    Raises:
      ValueError: delta outside (0, 1), mismatched lengths, unknown conversion.
    """
    if conversion not in CONVERSIONS:
        raise ValueError(f"rdp_to_epsilon: conversion={conversion!r}; use one of {CONVERSIONS}")
    if not 0.0 < delta < 1.0:
        raise ValueError(f"rdp_to_epsilon: delta={delta} must be in (0, 1)")
    orders = np.asarray(orders, np.float64).reshape(-1)
    rdp = np.asarray(rdp, np.float64).reshape(-1)
    if orders.shape != rdp.shape:
        raise ValueError(f"rdp_to_epsilon: {orders.size} orders but {rdp.size} RDP values")
    eps = np.full(orders.shape, np.inf)
    for k, (a, r) in enumerate(zip(orders, rdp)):
        if not math.isfinite(r) or not math.isfinite(a):
            continue
        if conversion == "classic":
            eps[k] = r + math.log(1 / delta) / (a - 1)
        elif r <= 0 or delta**2 + math.expm1(-r) > 0:
            eps[k] = 0.0
        elif a > 1.01:
            eps[k] = r + math.log1p(-1 / a) - (math.log(delta) + math.log(a)) / (a - 1)
    best = int(np.argmin(eps))
    return max(0.0, float(eps[best])), float(orders[best])


# --------------------------------------------------------------------------------------------
# The public accountant


def has_dp_accounting() -> bool:
    """Whether Google's `dp_accounting` package can be imported."""
    try:
        import dp_accounting  # noqa: F401
    except ImportError:
        return False
    return True


def _check_args(noise_multiplier: float, sample_rate: float, steps: int, delta: float) -> None:
    if noise_multiplier < 0 or not math.isfinite(noise_multiplier):
        raise ValueError(f"noise_multiplier={noise_multiplier} must be a finite number >= 0")
    if not 0.0 <= sample_rate <= 1.0:
        raise ValueError(f"sample_rate={sample_rate} must be in [0, 1] (batch size / training set size)")
    if steps < 0 or int(steps) != steps:
        raise ValueError(f"steps={steps} must be an integer >= 0")
    if not 0.0 < delta < 1.0:
        raise ValueError(f"delta={delta} must be in (0, 1)")


def _event(noise_multiplier: float, sample_rate: float, steps: int):
    import dp_accounting

    return dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(sample_rate, dp_accounting.GaussianDpEvent(noise_multiplier)),
        int(steps))


def dp_sgd_epsilon(
    noise_multiplier: float,
    sample_rate: float,
    steps: int,
    delta: float,
    *,
    accountant: str = "rdp",
    backend: str = "auto",
    orders: Sequence[float] = DEFAULT_ORDERS,
    conversion: str = "improved",
) -> float:
    """Epsilon of DP-SGD at `delta`: `steps` Poisson-sampled Gaussian steps, add/remove adjacency.

    Args:
      noise_multiplier: sigma (noise std / clipping norm).
      sample_rate: q = batch size / training-set size.
      steps: number of noisy gradient steps taken.
      delta: target delta (usually < 1 / training-set size).
      accountant: "rdp" (Renyi DP over `orders`) or "pld" (privacy loss distributions, tighter;
        needs dp_accounting).
      backend: "auto" (dp_accounting if installed, else built-in), "dp_accounting" or "builtin"
        (RDP only).
      orders: RDP orders (accountant "rdp").
      conversion: RDP -> (eps, delta) conversion, "improved" or "classic" (see the module
        docstring); "classic" only with the built-in backend.
    Returns:
      epsilon (float; 0 for no steps or q = 0, inf when noise_multiplier is 0 and steps > 0).
    Raises:
      ValueError: bad arguments or an unsupported combination.
      ImportError: backend "dp_accounting" (or accountant "pld") without the package.
    """
    _check_args(noise_multiplier, sample_rate, steps, delta)
    if accountant not in ACCOUNTANTS:
        raise ValueError(f"dp_sgd_epsilon: accountant={accountant!r}; use one of {ACCOUNTANTS}")
    if backend not in BACKENDS:
        raise ValueError(f"dp_sgd_epsilon: backend={backend!r}; use one of {BACKENDS}")
    if steps == 0 or sample_rate == 0:
        return 0.0
    if noise_multiplier == 0:
        return math.inf
    use_dpa = backend == "dp_accounting" or (backend == "auto" and has_dp_accounting()
                                             and conversion == "improved")
    if accountant == "pld" or use_dpa:
        if conversion != "improved":
            raise ValueError("dp_sgd_epsilon: conversion='classic' needs backend='builtin'")
        if backend == "builtin":
            raise ValueError("dp_sgd_epsilon: the PLD accountant needs backend dp_accounting")
        if not has_dp_accounting():
            raise ImportError("dp_sgd_epsilon: `pip install dp-accounting` for this accountant")
        from dp_accounting import pld, rdp

        acc = rdp.RdpAccountant(list(orders)) if accountant == "rdp" else pld.PLDAccountant()
        acc.compose(_event(noise_multiplier, sample_rate, steps))
        return float(acc.get_epsilon(delta))
    per_step = rdp_sampled_gaussian(sample_rate, noise_multiplier, orders)
    return rdp_to_epsilon(orders, per_step * steps, delta, conversion=conversion)[0]


def dp_sgd_steps(n_train: int, batch_size: int, epochs: int, *, drop_remainder: bool = False) -> int:
    """Steps of `epochs` epochs as memjax's trainer counts them: ceil(N / B) per epoch (the
    last partial batch is kept and masked), or floor(N / B) with `drop_remainder`."""
    per_epoch = n_train // batch_size if drop_remainder else math.ceil(n_train / batch_size)
    return max(per_epoch, 1) * int(epochs)


def training_epsilon(
    noise_multiplier: float,
    n_train: int,
    batch_size: int,
    epochs: int,
    delta: float,
    *,
    drop_remainder: bool = False,
    **kwargs,
) -> float:
    """`dp_sgd_epsilon` of a memjax training run: q = B / N, steps from `dp_sgd_steps`.

    Pass the epochs actually trained (early stopping: `epochs_trained`), not the limit.
    Keyword arguments go to `dp_sgd_epsilon`.
    """
    steps = dp_sgd_steps(n_train, batch_size, epochs, drop_remainder=drop_remainder)
    return dp_sgd_epsilon(noise_multiplier, batch_size / n_train, steps, delta, **kwargs)


def config_epsilon(cfg: "TrainConfig", n_train: int, epochs: int | None = None, **kwargs) -> float:
    """Epsilon of a memjax training config (`TrainConfig.dp_*`), at its `dp_delta` (None: 1 / N).

    Args:
      cfg: the training config; not DP-SGD (`cfg.dp` False) gives inf.
      n_train: N, the training-set size.
      epochs: epochs trained (default `cfg.epochs`; with early stopping pass `epochs_trained`).
      kwargs: to `dp_sgd_epsilon` (accountant, backend, orders, conversion).
    """
    if not cfg.dp:
        return math.inf
    delta = cfg.dp_delta if cfg.dp_delta is not None else 1.0 / n_train
    return training_epsilon(cfg.dp_noise_multiplier, n_train, cfg.batch_size,
                            cfg.epochs if epochs is None else epochs, delta,
                            drop_remainder=cfg.drop_remainder, **kwargs)


def noise_multiplier_for_epsilon(
    target_epsilon: float,
    sample_rate: float,
    steps: int,
    delta: float,
    *,
    tol: float = 1e-3,
    **kwargs,
) -> float:
    """The smallest noise multiplier (within `tol`) whose `dp_sgd_epsilon` is <= target.

    Bisection: epsilon decreases with the noise multiplier. Keyword arguments go to
    `dp_sgd_epsilon`.

    Raises:
      ValueError: a target <= 0, or one not reached by noise multipliers up to 1000.
    """
    if target_epsilon <= 0:
        raise ValueError(f"noise_multiplier_for_epsilon: target {target_epsilon} must be > 0")

    def eps(s: float) -> float:
        return dp_sgd_epsilon(s, sample_rate, steps, delta, **kwargs)

    lo, hi = 0.0, 1.0
    while eps(hi) > target_epsilon:
        lo, hi = hi, 2 * hi
        if hi > 1000:
            raise ValueError(f"noise_multiplier_for_epsilon: epsilon {target_epsilon} needs sigma > 1000")
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if eps(mid) > target_epsilon else (lo, mid)
    return hi


def group_privacy(epsilon: float, delta: float, k: int = 2) -> tuple[float, float]:
    """(eps, delta)-DP for neighbours implies (k eps, delta * sum_{i<k} e^(i eps))-DP for
    datasets differing in k records (chain the neighbour inequality k times).

    k = 2 turns add/remove-one into replace-one, the relation between a UF model's training set
    and a baseline model's: (2 eps, (1 + e^eps) delta).
    """
    if k < 1:
        raise ValueError(f"group_privacy: k={k} must be >= 1")
    return k * epsilon, delta * float(sum(math.exp(i * epsilon) for i in range(k)))
