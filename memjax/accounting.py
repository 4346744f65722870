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
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import special

from memjax.argtypes import is_int, is_real

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

# Usable noise multipliers besides 0: outside [MIN_NOISE, MAX_NOISE] sigma^2 leaves the float
# range in the RDP formulas (ZeroDivisionError, OverflowError, and dp_accounting returns eps 0 for
# sigma 1e-160); no DP-SGD run is anywhere near. The PLD accountant's grid grows as 1 / sigma^2:
# below PLD_MIN_NOISE it runs out of memory (at sigma 1e-3) or takes minutes; use "rdp" there.
MIN_NOISE, MAX_NOISE = 1e-100, 1e100
PLD_MIN_NOISE = 0.1
# Largest finite RDP order: an integer order alpha costs alpha + 1 terms (dp_accounting: 0.5 s
# at 1e5, 5 s at 1e6; order 1e9 does not finish); useful orders for DP-SGD stay below ~1000.
MAX_ORDER = 100_000.0

# The fractional-order series stops when both tails are decreasing and 30 nats below the total.
_SERIES_TOL = 30.0
_SERIES_MAX_TERMS = 1000


def _check_noise(fn: str, noise_multiplier: Any) -> None:
    """ValueError naming `noise_multiplier` (after "fn: " when fn is given) unless it is 0 or a
    number in [MIN_NOISE, MAX_NOISE] (compared in float64: MAX_NOISE overflows float32)."""
    if not (is_real(noise_multiplier) and (float(noise_multiplier) == 0
                                            or MIN_NOISE <= float(noise_multiplier) <= MAX_NOISE)):
        raise ValueError(f"{fn + ': ' if fn else ''}noise_multiplier={noise_multiplier!r} must be "
                         f"0 or a number in [{MIN_NOISE:g}, {MAX_NOISE:g}]")


def _check_orders(fn: str, orders: Any, *, allow_inf: bool = False) -> np.ndarray:
    """`orders` as float64 [A]; ValueError naming `orders` unless they are numbers > 1 (at
    least one), each at most MAX_ORDER (or +inf where `allow_inf`), none NaN."""
    try:
        arr = np.asarray(orders)
    except (TypeError, ValueError):
        arr = np.asarray([], object)
    if arr.dtype.kind not in "iuf" or arr.size == 0:
        raise ValueError(f"{fn}: orders={orders!r} must be a non-empty list of numbers > 1")
    arr = arr.astype(np.float64).reshape(-1)
    bad = np.isnan(arr) | (arr <= 1) | ((arr > MAX_ORDER) & ~(allow_inf & np.isposinf(arr)))
    if bad.any():
        raise ValueError(f"{fn}: orders must be > 1 and at most {MAX_ORDER:g}"
                         f"{' (or inf)' if allow_inf else ''}, got {arr[bad]}")
    return arr


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
      noise_multiplier: sigma, the noise standard deviation over the L2 sensitivity: 0 or in
        [MIN_NOISE, MAX_NOISE] = [1e-100, 1e100] (beyond, sigma^2 leaves the float range).
      orders: [A] RDP orders 1 < alpha <= MAX_ORDER (1e5: integer orders cost alpha + 1
        terms), or inf; at least one.
    Returns:
      float64 [A]: RDP(alpha) per step (+inf where unbounded). Multiply by the steps to compose.
    Raises:
      ValueError: q not a number in [0, 1], a noise multiplier outside that range, no orders,
        or an order <= 1, above MAX_ORDER or NaN.
    """
    if not (is_real(q) and 0.0 <= q <= 1.0):
        raise ValueError(f"rdp_sampled_gaussian: sampling rate q={q!r} must be in [0, 1]")
    _check_noise("rdp_sampled_gaussian", noise_multiplier)
    orders = _check_orders("rdp_sampled_gaussian", orders, allow_inf=True)
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

    Args:
      orders: [A] orders > 1, at most MAX_ORDER, or inf (skipped); at least one.
      rdp: [A] RDP at each order, numbers or +inf (skipped), not NaN.
      delta: in (0, 1).
    Raises:
      ValueError: delta outside (0, 1), bad orders, a NaN or non-numeric RDP value, mismatched
        lengths, unknown conversion.
    """
    if conversion not in CONVERSIONS:
        raise ValueError(f"rdp_to_epsilon: conversion={conversion!r}; use one of {CONVERSIONS}")
    if not (is_real(delta) and 0.0 < delta < 1.0):
        raise ValueError(f"rdp_to_epsilon: delta={delta!r} must be in (0, 1)")
    orders = _check_orders("rdp_to_epsilon", orders, allow_inf=True)
    try:
        rdp = np.asarray(rdp)
    except (TypeError, ValueError):
        rdp = np.asarray([], object)
    if rdp.dtype.kind not in "iuf" or np.isnan(rdp.astype(np.float64)).any():
        raise ValueError(f"rdp_to_epsilon: rdp={rdp.tolist()!r} must hold numbers (inf allowed, "
                         "not NaN)")
    rdp = rdp.astype(np.float64).reshape(-1)
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


MAX_COUNT = 2**53  # steps, examples, batch size, epochs: integers a float holds exactly


def _is_count(x: Any, lo: int) -> bool:
    """An integer in [lo, MAX_COUNT]: an int (Python or NumPy) or a float with an integer value,
    not a bool."""
    if is_int(x):
        return lo <= x <= MAX_COUNT
    if isinstance(x, (float, np.floating)):
        return bool(math.isfinite(x) and float(x).is_integer() and lo <= x <= MAX_COUNT)
    return False


def _check_args(noise_multiplier: float, sample_rate: float, steps: int, delta: float) -> None:
    """ValueError naming the argument unless noise_multiplier is 0 or in [MIN_NOISE, MAX_NOISE],
    sample_rate a number in [0, 1], steps an integer in [0, MAX_COUNT] and delta a number in
    (0, 1)."""
    _check_noise("", noise_multiplier)
    if not (is_real(sample_rate) and 0.0 <= sample_rate <= 1.0):
        raise ValueError(f"sample_rate={sample_rate!r} must be in [0, 1] (batch size / training set size)")
    if not _is_count(steps, 0):
        raise ValueError(f"steps={steps!r} must be an integer in [0, 2**53]")
    if not (is_real(delta) and 0.0 < delta < 1.0):
        raise ValueError(f"delta={delta!r} must be in (0, 1)")


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
      noise_multiplier: sigma (noise std / clipping norm): 0, or in [MIN_NOISE, MAX_NOISE] =
        [1e-100, 1e100]; with accountant "pld" at least PLD_MIN_NOISE = 0.1.
      sample_rate: q = batch size / training-set size, in [0, 1].
      steps: number of noisy gradient steps taken, an integer in [0, MAX_COUNT = 2**53].
      delta: target delta in (0, 1) (usually < 1 / training-set size).
      accountant: "rdp" (Renyi DP over `orders`) or "pld" (privacy loss distributions, tighter;
        needs dp_accounting; its cost grows as 1 / sigma^2, minutes near sigma 0.1).
      backend: "auto" (dp_accounting if installed, else built-in), "dp_accounting" or "builtin"
        (RDP only).
      orders: RDP orders (accountant "rdp"), at least one, each finite, > 1 and at most
        MAX_ORDER = 1e5.
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
    if accountant == "rdp":
        _check_orders("dp_sgd_epsilon", orders)
    elif 0 < noise_multiplier < PLD_MIN_NOISE:
        raise ValueError(f"dp_sgd_epsilon: noise_multiplier={noise_multiplier!r} is below "
                         f"{PLD_MIN_NOISE} (the PLD accountant's minimum); use accountant='rdp'")
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


def _check_counts(fn: str, **values: tuple[Any, int]) -> None:
    """ValueError naming the first argument name=(value, lo) whose value is not an integer in
    [lo, MAX_COUNT]."""
    for name, (value, lo) in values.items():
        if not _is_count(value, lo):
            raise ValueError(f"{fn}: {name}={value!r} must be an integer in [{lo}, 2**53]")


def dp_sgd_steps(n_train: int, batch_size: int, epochs: int, *, drop_remainder: bool = False) -> int:
    """Steps of `epochs` epochs as memjax's trainer counts them: ceil(N / B) per epoch (the
    last partial batch is kept and masked), or floor(N / B) with `drop_remainder`.

    Raises:
      ValueError: naming n_train or batch_size unless an integer in [1, 2**53], or epochs
        unless an integer in [0, 2**53].
    """
    _check_counts("dp_sgd_steps", n_train=(n_train, 1), batch_size=(batch_size, 1),
                  epochs=(epochs, 0))
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
    _check_counts("config_epsilon", n_train=(n_train, 1))
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

    Bisection: epsilon decreases with the noise multiplier. It stops once the bracket is
    `tol` wide or cannot be split further (adjacent floats), so any tol > 0 terminates. The
    search covers the usable noise multipliers (`dp_sgd_epsilon`: from MIN_NOISE, from
    PLD_MIN_NOISE with accountant "pld") up to 1000. With no steps or sample_rate 0 epsilon is
    0 whatever the noise, and the answer is 0.0. Keyword arguments go to `dp_sgd_epsilon`.

    Raises:
      ValueError: a target that is not a finite number > 0, a tol that is not a finite number
        > 0, bad `dp_sgd_epsilon` arguments, or a target not reached by noise multipliers up
        to 1000.
    """
    if not (is_real(target_epsilon) and math.isfinite(target_epsilon) and target_epsilon > 0):
        raise ValueError(f"noise_multiplier_for_epsilon: target_epsilon={target_epsilon!r} must "
                         "be a finite number > 0")
    if not (is_real(tol) and math.isfinite(tol) and tol > 0):
        raise ValueError(f"noise_multiplier_for_epsilon: tol={tol!r} must be a finite number > 0")
    _check_args(1.0, sample_rate, steps, delta)
    if steps == 0 or sample_rate == 0:
        return 0.0
    floor = PLD_MIN_NOISE if kwargs.get("accountant") == "pld" else MIN_NOISE

    def eps(s: float) -> float:
        if s < floor:  # below the usable range: treated as too little noise
            return math.inf
        return dp_sgd_epsilon(s, sample_rate, steps, delta, **kwargs)

    lo, hi = 0.0, 1.0
    while eps(hi) > target_epsilon:
        lo, hi = hi, 2 * hi
        if hi > 1000:
            raise ValueError(f"noise_multiplier_for_epsilon: epsilon {target_epsilon} needs sigma > 1000")
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        if not lo < mid < hi:  # adjacent floats: the bracket is as narrow as it gets
            break
        lo, hi = (mid, hi) if eps(mid) > target_epsilon else (lo, mid)
    return hi


def group_privacy(epsilon: float, delta: float, k: int = 2) -> tuple[float, float]:
    """(eps, delta)-DP for neighbours implies (k eps, delta * sum_{i<k} e^(i eps))-DP for
    datasets differing in k records (chain the neighbour inequality k times).

    k = 2 turns add/remove-one into replace-one, the relation between a UF model's training set
    and a baseline model's: (2 eps, (1 + e^eps) delta).

    Args:
      epsilon: a finite number >= 0.
      delta: in [0, 1).
      k: an integer in [1, 2**53].
    Returns:
      (k eps, group delta); the group delta is inf where it overflows a float (a delta above 1
      says nothing anyway).
    Raises:
      ValueError: naming the argument outside those ranges.
    """
    if not (is_real(epsilon) and math.isfinite(epsilon) and epsilon >= 0):
        raise ValueError(f"group_privacy: epsilon={epsilon!r} must be a finite number >= 0")
    if not (is_real(delta) and 0.0 <= delta < 1.0):
        raise ValueError(f"group_privacy: delta={delta!r} must be in [0, 1)")
    if not is_int(k, 1, 2**53):
        raise ValueError(f"group_privacy: k={k!r} must be an integer in [1, 2**53]")
    if k <= 100_000:  # the direct sum, unless it overflows
        try:
            total = float(sum(math.exp(i * epsilon) for i in range(k)))
        except OverflowError:
            total = math.inf
        if math.isfinite(total):
            return k * epsilon, delta * total
    k_eps = float(k) * float(epsilon)
    if delta == 0 or epsilon == 0:
        return k_eps, float(delta) * float(k)
    # log sum_{i<k} e^(i eps) = (k - 1) eps + log((1 - e^(-k eps)) / (1 - e^(-eps)))
    log_sum = (k - 1) * epsilon + math.log(-math.expm1(-k_eps)) - math.log(-math.expm1(-epsilon))
    try:
        return k_eps, math.exp(math.log(delta) + log_sum)
    except OverflowError:
        return k_eps, math.inf
