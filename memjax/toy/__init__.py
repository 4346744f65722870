"""The toy "rare concept" experiment of Hartley et al., Scientific Reports 2023 (method.md).

A 3-32-128-128-2 MLP learns two moons whose third coordinate z is noise of scale sigma, except
on one appended canary point with z = 1. A run memorises the rare concept "z = 1 means class 1"
when setting z = 1 on the class-1 points raises their class-1 logit (paired one-sided t-test,
p < alpha). The experiment reports the fraction of memorising runs per sigma.

Modules: `config` (ToyConfig, presets), `data` (sklearn-exact two moons, canary), `model`
(PyTorch-initialised MLP), `train` (one run, key tree, vmapped population), `stats`
(t-tests, Clopper-Pearson), `experiment` (run_toy, ToyResult, redraw_sensitivity).
"""
from memjax.toy.config import TOY_REFERENCE, TOY_TINY, ToyConfig
from memjax.toy.data import make_moons, make_toy_data
from memjax.toy.experiment import ToyResult, redraw_sensitivity, run_toy
from memjax.toy.model import apply_mlp, init_mlp
from memjax.toy.stats import fraction_ci, memorisation_tests
from memjax.toy.train import make_population_fn, make_train_population, run_keys, train_run

__all__ = [
    "TOY_REFERENCE", "TOY_TINY", "ToyConfig", "ToyResult", "apply_mlp", "fraction_ci",
    "init_mlp", "make_moons", "make_population_fn", "make_toy_data", "make_train_population",
    "memorisation_tests", "redraw_sensitivity", "run_keys", "run_toy", "train_run",
]
