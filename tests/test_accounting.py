"""Tests of memjax.accounting against published values (TF-Privacy) and dp_accounting."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate
from scipy import stats as sps

from memjax import accounting as acc

# tensorflow/privacy, tensorflow_privacy/privacy/analysis/compute_dp_sgd_privacy_test.py,
# test_compute_dp_sgd_privacy: (n, batch, noise multiplier, epochs, delta) -> (eps, order),
# steps = ceil(epochs * n / batch), orders = DEFAULT_ORDERS, Poisson-sampled Gaussian.
# Current version (dp_accounting, improved conversion) and the pre-2022 version (classic
# conversion eps = rdp + log(1/delta) / (order - 1)).
PUBLISHED = [
    # n, batch, sigma, epochs, delta, eps (improved), eps (classic), optimal order
    (60000, 150, 1.3, 15, 1e-5, 0.7242234026109595, 0.941870567, 19.0),
    (100000, 100, 1.0, 30, 1e-7, 1.4154988495444845, 1.70928734, 13.0),
    (100000000, 1024, 0.1, 10, 1e-7, 5907982.31138195, 5907984.81339406, 1.25),
]
# tensorflow/privacy tutorials/README.md ("Select Parameters", MNIST, batch 256, delta 1e-5,
# RDP with the classic conversion, orders of the tutorial's compute_epsilon):
# noise 1.12 for 60 epochs -> eps 2.92; noise 1.2 for 10 epochs -> eps 1.20.
TUTORIAL_ORDERS = [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64))
TUTORIAL = [(1.12, 60, 2.92), (1.2, 10, 1.20)]

needs_dpa = pytest.mark.skipif(not acc.has_dp_accounting(), reason="dp-accounting not installed")


def _steps(n, batch, epochs):
    return math.ceil(epochs * n / batch)


@pytest.mark.parametrize("n,batch,sigma,epochs,delta,eps_new,eps_old,order", PUBLISHED)
def test_builtin_matches_published_tf_privacy_values(n, batch, sigma, epochs, delta, eps_new, eps_old, order):
    q, steps = batch / n, _steps(n, batch, epochs)
    rdp = acc.rdp_sampled_gaussian(q, sigma, acc.DEFAULT_ORDERS) * steps
    eps, best = acc.rdp_to_epsilon(acc.DEFAULT_ORDERS, rdp, delta)
    assert eps == pytest.approx(eps_new, rel=1e-9) and best == order
    eps_c, best_c = acc.rdp_to_epsilon(acc.DEFAULT_ORDERS, rdp, delta, conversion="classic")
    assert eps_c == pytest.approx(eps_old, rel=1e-8) and best_c == order
    assert acc.dp_sgd_epsilon(sigma, q, steps, delta, backend="builtin") == pytest.approx(eps_new, rel=1e-9)


@pytest.mark.parametrize("sigma,epochs,published", TUTORIAL)
def test_tf_privacy_mnist_tutorial_table(sigma, epochs, published):
    eps = acc.dp_sgd_epsilon(sigma, 256 / 60000, epochs * (60000 // 256), 1e-5, backend="builtin",
                             orders=TUTORIAL_ORDERS, conversion="classic")
    assert round(eps, 2) == published


@needs_dpa
@pytest.mark.parametrize("n,batch,sigma,epochs,delta,eps_new,eps_old,order", PUBLISHED)
def test_dp_accounting_backend_matches_published(n, batch, sigma, epochs, delta, eps_new, eps_old, order):
    eps = acc.dp_sgd_epsilon(sigma, batch / n, _steps(n, batch, epochs), delta, backend="dp_accounting")
    assert eps == pytest.approx(eps_new, rel=1e-9)


@needs_dpa
def test_builtin_equals_dp_accounting_on_a_grid():
    for q in (1e-3, 0.01, 0.2):
        for sigma in (0.5, 1.0, 4.0):
            a = acc.dp_sgd_epsilon(sigma, q, 500, 1e-6, backend="builtin")
            b = acc.dp_sgd_epsilon(sigma, q, 500, 1e-6, backend="dp_accounting")
            assert a == pytest.approx(b, rel=1e-9, abs=1e-12), (q, sigma)


@needs_dpa
def test_pld_is_tighter_than_rdp():
    args = (1.1, 256 / 60000, 60 * (60000 // 256), 1e-5)
    pld, rdp = acc.dp_sgd_epsilon(*args, accountant="pld"), acc.dp_sgd_epsilon(*args)
    assert 0.7 * rdp < pld < rdp


def test_gaussian_without_sampling_by_hand():
    # q = 1: the Gaussian mechanism, RDP(alpha) = alpha / (2 sigma^2) per step.
    orders = [2.0, 3.5, 10.0]
    np.testing.assert_allclose(acc.rdp_sampled_gaussian(1.0, 2.0, orders), np.array(orders) / 8)
    # Integer order 2 by hand: A_2 = (1-q)^2 + 2q(1-q) + q^2 e^(1/sigma^2) = 1 + q^2 (e^(1/s^2) - 1)
    q, s = 0.1, 1.5
    assert acc.rdp_sampled_gaussian(q, s, [2])[0] == pytest.approx(math.log1p(q * q * math.expm1(1 / s**2)))


def _rdp_by_quadrature(q, s, alpha):
    """RDP(alpha) from its definition, A_alpha = E_{z ~ N(0, s^2)} [((1-q) + q e^((2z-1)/(2s^2)))^alpha]."""
    def integrand(z: float) -> float:
        return sps.norm.pdf(z, 0, s) * ((1 - q) + q * np.exp((2 * z - 1) / (2 * s * s))) ** alpha

    a, _ = integrate.quad(integrand, -30, 30, epsabs=1e-14, epsrel=1e-12, limit=500)
    return math.log(a) / (alpha - 1)


def test_orders_agree_with_the_definition_by_quadrature():
    q, s = 0.05, 0.8
    # integer orders: the finite binomial sum is exact
    for alpha in (2, 3, 7):
        exact = _rdp_by_quadrature(q, s, alpha)
        assert acc.rdp_sampled_gaussian(q, s, [alpha])[0] == pytest.approx(exact, rel=1e-9)
    # fractional orders: summing the series' term magnitudes bounds A_alpha from above (as
    # dp_accounting does): always valid; conservative at small orders (here 18% at 1.5),
    # tight in DP-SGD's usual regime (q = 256/60000, sigma = 1.1: 1.3% at 1.5)
    for q, s, alpha, slack in ((0.05, 0.8, 1.5, 1.2), (0.05, 0.8, 2.5, 1.02), (256 / 60000, 1.1, 1.5, 1.02),
                               (256 / 60000, 1.1, 8.1, 1 + 1e-6)):
        exact = _rdp_by_quadrature(q, s, alpha)
        assert exact <= acc.rdp_sampled_gaussian(q, s, [alpha])[0] <= slack * exact


def test_monotone_and_edge_cases():
    e = [acc.dp_sgd_epsilon(s, 0.01, 1000, 1e-5, backend="builtin") for s in (0.7, 1.0, 2.0)]
    assert e[0] > e[1] > e[2] > 0
    assert acc.dp_sgd_epsilon(1.0, 0.01, 0, 1e-5) == 0.0
    assert acc.dp_sgd_epsilon(1.0, 0.0, 100, 1e-5) == 0.0
    assert acc.dp_sgd_epsilon(0.0, 0.01, 100, 1e-5) == math.inf
    for bad in (dict(delta=0.0), dict(sample_rate=1.5), dict(noise_multiplier=-1.0)):
        kw = dict(noise_multiplier=1.0, sample_rate=0.01, steps=10, delta=1e-5) | bad
        with pytest.raises(ValueError):
            acc.dp_sgd_epsilon(**kw)
    with pytest.raises(ValueError):
        acc.dp_sgd_epsilon(1.0, 0.01, 10, 1e-5, accountant="pld", backend="builtin")


def test_training_epsilon_steps_and_calibration():
    assert acc.dp_sgd_steps(60000, 128, 2) == 2 * 469
    assert acc.dp_sgd_steps(60000, 128, 2, drop_remainder=True) == 2 * 468
    eps = acc.training_epsilon(1.1, 60000, 256, 60, 1e-5, backend="builtin", drop_remainder=True)
    assert eps == acc.dp_sgd_epsilon(1.1, 256 / 60000, 60 * 234, 1e-5, backend="builtin")
    sigma = acc.noise_multiplier_for_epsilon(2.0, 0.01, 1000, 1e-5, backend="builtin", tol=1e-4)
    assert acc.dp_sgd_epsilon(sigma, 0.01, 1000, 1e-5, backend="builtin") <= 2.0
    assert acc.dp_sgd_epsilon(sigma - 1e-3, 0.01, 1000, 1e-5, backend="builtin") > 2.0


def test_config_epsilon():
    from memjax.config import TrainConfig

    assert acc.config_epsilon(TrainConfig(), 2000) == math.inf  # not DP-SGD
    cfg = TrainConfig(batch_size=128, epochs=25, dp_clip_norm=1.0, dp_noise_multiplier=1.0)
    expected = acc.dp_sgd_epsilon(1.0, 128 / 2000, 25 * 16, 1 / 2000, backend="builtin")
    assert acc.config_epsilon(cfg, 2000, backend="builtin") == expected  # delta None -> 1/N
    assert acc.config_epsilon(cfg, 2000, epochs=5, backend="builtin") < expected


def test_group_privacy():
    assert acc.group_privacy(1.0, 1e-5, 1) == (1.0, 1e-5)
    eps2, delta2 = acc.group_privacy(1.0, 1e-5, 2)
    assert eps2 == 2.0 and delta2 == pytest.approx(1e-5 * (1 + math.e))


# --------------------------------------------------------------------------- bad input
# Each case is a ValueError naming the argument, raised before any accounting (no raw
# OverflowError / ZeroDivisionError / TypeError, no hang, no silent NaN or 0).

NAN, INF = float("nan"), float("inf")
OK = dict(noise_multiplier=1.0, sample_rate=0.01, steps=10, delta=1e-5)


@pytest.mark.parametrize("backend", ["builtin", "auto"])
@pytest.mark.parametrize("bad, match", [
    (dict(steps=NAN), "steps"), (dict(steps=INF), "steps"), (dict(steps="5"), "steps"),
    (dict(steps=True), "steps"), (dict(steps=2.5), "steps"), (dict(steps=-1), "steps"),
    (dict(steps=10**400), "steps"),
    (dict(noise_multiplier="1"), "noise_multiplier"), (dict(noise_multiplier=None), "noise_multiplier"),
    (dict(noise_multiplier=NAN), "noise_multiplier"), (dict(noise_multiplier=1e-300), "noise_multiplier"),
    (dict(noise_multiplier=1e300), "noise_multiplier"), (dict(sample_rate="0.1"), "sample_rate"),
    (dict(delta=None), "delta"), (dict(orders=[]), "orders"), (dict(orders=[NAN]), "orders"),
    (dict(orders=[INF]), "orders"), (dict(orders=[1e9]), "orders"), (dict(orders=[0.5, 2.0]), "orders"),
    (dict(orders=["2"]), "orders"),
])
def test_dp_sgd_epsilon_refuses_bad_arguments(backend, bad, match):
    with pytest.raises(ValueError, match=match):
        acc.dp_sgd_epsilon(**(OK | bad), backend=backend)


def test_pld_refuses_a_noise_multiplier_below_its_minimum():
    with pytest.raises(ValueError, match="noise_multiplier.*rdp"):
        acc.dp_sgd_epsilon(1e-3, 0.01, 10, 1e-5, accountant="pld")


def test_noise_multiplier_range_ends_give_the_limits():
    # The ends of [MIN_NOISE, MAX_NOISE] still compute: eps astronomically large, or 0 (the
    # improved conversion; classic: log(1/delta) / (max order - 1)).
    assert 1e200 < acc.dp_sgd_epsilon(acc.MIN_NOISE, 0.01, 10, 1e-5, backend="builtin") < INF
    assert acc.dp_sgd_epsilon(acc.MAX_NOISE, 0.01, 10, 1e-5, backend="builtin") == 0.0
    classic = acc.dp_sgd_epsilon(acc.MAX_NOISE, 0.01, 10, 1e-5, backend="builtin", conversion="classic")
    assert classic == pytest.approx(math.log(1e5) / (512 - 1))


@pytest.mark.parametrize("call, match", [
    (lambda: acc.rdp_sampled_gaussian(0.01, NAN, [2.0]), "noise_multiplier"),
    (lambda: acc.rdp_sampled_gaussian(0.01, 1e-300, [2.0]), "noise_multiplier"),
    (lambda: acc.rdp_sampled_gaussian(0.01, 1e300, [2.0]), "noise_multiplier"),
    (lambda: acc.rdp_sampled_gaussian(0.01, 1.0, []), "orders"),
    (lambda: acc.rdp_sampled_gaussian(0.01, 1.0, [NAN]), "orders"),
    (lambda: acc.rdp_sampled_gaussian(0.01, 1.0, [1e9]), "orders"),
    (lambda: acc.rdp_sampled_gaussian(NAN, 1.0, [2.0]), "q"),
    (lambda: acc.rdp_to_epsilon([2.0, 4.0], [NAN, 1.0], 1e-5), "rdp"),
    (lambda: acc.rdp_to_epsilon([2.0, 4.0], ["a", 1.0], 1e-5), "rdp"),
    (lambda: acc.rdp_to_epsilon([NAN, 4.0], [1.0, 1.0], 1e-5), "orders"),
    (lambda: acc.rdp_to_epsilon([1.0, 4.0], [1.0, 1.0], 1e-5, conversion="classic"), "orders"),
    (lambda: acc.rdp_to_epsilon([], [], 1e-5), "orders"),
    (lambda: acc.training_epsilon(1.0, 0, 32, 1, 1e-5), "n_train"),
    (lambda: acc.training_epsilon(1.0, 100, 0, 1, 1e-5), "batch_size"),
    (lambda: acc.training_epsilon(1.0, 100, 10, -1, 1e-5), "epochs"),
    (lambda: acc.dp_sgd_steps(100, 10, 2.5), "epochs"),
    (lambda: acc.noise_multiplier_for_epsilon(NAN, 0.01, 100, 1e-5), "target_epsilon"),
    (lambda: acc.noise_multiplier_for_epsilon(INF, 0.01, 100, 1e-5), "target_epsilon"),
    (lambda: acc.noise_multiplier_for_epsilon(1.0, 0.01, 100, 1e-5, tol=0), "tol"),
    (lambda: acc.noise_multiplier_for_epsilon(1.0, 0.01, 100, 1e-5, tol=-1), "tol"),
    (lambda: acc.noise_multiplier_for_epsilon(1.0, 0.01, 100, 1e-5, tol=NAN), "tol"),
    (lambda: acc.noise_multiplier_for_epsilon(1.0, 0.01, NAN, 1e-5), "steps"),
    (lambda: acc.group_privacy(1.0, 1e-5, 2.5), "k"),
    (lambda: acc.group_privacy(1.0, 1e-5, 0), "k"),
    (lambda: acc.group_privacy(1.0, 1e-5, True), "k"),
    (lambda: acc.group_privacy(NAN, 1e-5, 2), "epsilon"),
    (lambda: acc.group_privacy(-1.0, 1e-5, 2), "epsilon"),
    (lambda: acc.group_privacy(1.0, 2.0, 2), "delta"),
    (lambda: acc.group_privacy(1.0, NAN, 2), "delta"),
])
def test_accounting_helpers_refuse_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_config_epsilon_refuses_an_empty_training_set():
    from memjax.config import TrainConfig

    cfg = TrainConfig(batch_size=128, epochs=1, dp_clip_norm=1.0, dp_noise_multiplier=1.0)
    with pytest.raises(ValueError, match="n_train"):
        acc.config_epsilon(cfg, 0, backend="builtin")


def test_noise_search_terminates_with_a_tiny_tol_and_knows_no_steps_need_no_noise():
    kw = dict(backend="builtin", orders=[2.0, 8.0, 32.0])
    sigma = acc.noise_multiplier_for_epsilon(2.0, 0.01, 100, 1e-5, tol=1e-300, **kw)
    assert acc.dp_sgd_epsilon(sigma, 0.01, 100, 1e-5, **kw) <= 2.0
    assert acc.dp_sgd_epsilon(math.nextafter(sigma, 0), 0.01, 100, 1e-5, **kw) > 2.0
    assert acc.noise_multiplier_for_epsilon(1.0, 0.01, 0, 1e-5) == 0.0
    assert acc.noise_multiplier_for_epsilon(1.0, 0.0, 100, 1e-5) == 0.0


def test_group_privacy_overflows_to_inf_and_large_groups_are_fast():
    assert acc.group_privacy(1000.0, 1e-5, 2) == (2000.0, math.inf)
    assert acc.group_privacy(1000.0, 0.0, 2) == (2000.0, 0.0)  # pure DP stays pure
    # Past the direct sum: the closed form (e^(k eps) - 1) / (e^eps - 1), in logs.
    eps, delta = acc.group_privacy(0.01, 1e-5, 200_000)
    assert eps == pytest.approx(2000.0)
    assert delta == math.inf
    eps, delta = acc.group_privacy(1e-6, 1e-5, 200_000)
    assert delta == pytest.approx(1e-5 * math.expm1(0.2) / math.expm1(1e-6), rel=1e-9)
    assert acc.group_privacy(0.0, 1e-5, 2**53)[1] == pytest.approx(1e-5 * 2**53)


def test_numpy_scalars_and_0d_arrays_are_numbers_without_warnings():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # MAX_NOISE compared in float32 overflowed
        a = acc.dp_sgd_epsilon(np.float32(1.1), 0.01, 1000, 1e-5, accountant="rdp")
        b = acc.dp_sgd_epsilon(np.asarray(1.1), 0.01, 1000, 1e-5, accountant="rdp")
    assert np.isfinite(a) and b == acc.dp_sgd_epsilon(1.1, 0.01, 1000, 1e-5, accountant="rdp")
