"""Experiments built on the library: ``magma-wino experiment prune`` (docs/experiments.md).

* :mod:`magma_wino.experiments.data` — the data sets, read offline (scikit-learn's digits,
  CIFAR-10 pickles from a local path);
* :mod:`magma_wino.experiments.network` — the small VGG-style network of Winograd layers;
* :mod:`magma_wino.experiments.prune` — the pruning methods, fine-tuning, exact counts, the run;
* :mod:`magma_wino.experiments.report` — the table, JSON and plots.

Needs the ``[experiments]`` extra (PyTorch, scikit-learn, matplotlib, rich).
"""

from .data import Dataset, load, load_cifar10, load_digits
from .prune import FIXED_DENSITY, METHODS, PruneConfig, PruneResult, run

__all__ = ["FIXED_DENSITY", "METHODS", "Dataset", "PruneConfig", "PruneResult", "load", "load_cifar10", "load_digits", "run"]
