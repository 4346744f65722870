"""Datasets (local standard files, the embedded subset, TFDS), normalisation and probe images.

See docs/data.md. Nothing is loaded at import time.
"""
from memjax.data.dataset import DATASETS, SPLITS, Dataset, image_shape
from memjax.data.normalise import STATS, standardise
from memjax.data.probes import PROBE_DATASET, Probes, make_probes
from memjax.data.sources import load_dataset

__all__ = [
    "DATASETS",
    "PROBE_DATASET",
    "SPLITS",
    "STATS",
    "Dataset",
    "Probes",
    "image_shape",
    "load_dataset",
    "make_probes",
    "standardise",
]
