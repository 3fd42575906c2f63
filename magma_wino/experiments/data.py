"""Data sets for the experiments, all read from local files: nothing is downloaded.

* :func:`load_digits` — scikit-learn's 8×8 handwritten digits (1797 images, 10 classes), which
  ship inside the scikit-learn wheel, upsampled to ``size``×``size`` so that a network of 3×3
  convolutions and two 2×2 poolings has room for several Winograd tiles per layer;
* :func:`load_cifar10` — CIFAR-10 in its standard "python version" pickle format
  (``data_batch_1`` … ``data_batch_5`` and ``test_batch`` in one directory, as unpacked from
  ``cifar-10-python.tar.gz``), from a local path.

Both return a :class:`Dataset` of float32 NCHW images standardised with the training set's
per-channel mean and standard deviation, and int64 labels.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["CIFAR10_FILES", "Dataset", "load", "load_cifar10", "load_digits"]

#: The files :func:`load_cifar10` reads from its directory.
CIFAR10_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)


@dataclass(frozen=True)
class Dataset:
    """Images (float32, N×C×H×W) and labels (int64) of a training and a test split."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: int

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        return tuple(self.x_train.shape[1:])  # type: ignore[return-value]

    def subset(self, train: int | None, test: int | None) -> Dataset:
        """The first ``train`` / ``test`` images of each split (None: all)."""
        return Dataset(self.name, self.x_train[:train], self.y_train[:train], self.x_test[:test],
                       self.y_test[:test], self.classes)


def _standardise(x_train: np.ndarray, x_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both splits standardised per channel with the training split's statistics (float32)."""
    mean = x_train.mean(axis=(0, 2, 3), keepdims=True)
    std = x_train.std(axis=(0, 2, 3), keepdims=True)
    std[std == 0] = 1.0
    return ((x_train - mean) / std).astype(np.float32), ((x_test - mean) / std).astype(np.float32)


def _split(n: int, test_fraction: float, labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A stratified, seeded split of ``range(n)``: (train indices, test indices), each class
    contributing ``round(test_fraction · its count)`` test images."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        k = int(round(test_fraction * idx.size))
        test.append(idx[:k])
        train.append(idx[k:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def load_digits(size: int = 16, *, test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """scikit-learn's handwritten digits, each 8×8 image upsampled to ``size``×``size``
    (a multiple of 8, by pixel replication) and split stratified (``test_fraction`` of each
    class, seeded) into training and test sets.

    Raises:
        ImportError: scikit-learn is not installed (``pip install 'magma-wino[experiments]'``).
        ValueError: ``size`` not a positive multiple of 8, ``test_fraction`` not in (0, 1).
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 8 or size % 8:
        raise ValueError(f"size must be a positive multiple of 8 (the digits are 8×8), got {size!r}")
    if not 0.0 < float(test_fraction) < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    try:
        from sklearn.datasets import load_digits as _sk_digits  # noqa: PLC0415
    except ImportError as exc:
        raise ImportError("the digits data set ships with scikit-learn: pip install 'magma-wino[experiments]'"
                          ) from exc
    bunch = _sk_digits()
    images = bunch.images.astype(np.float64) / 16.0  # 1797×8×8, values 0..16
    f = size // 8
    images = np.kron(images, np.ones((1, f, f)))[:, None]  # N×1×size×size
    labels = bunch.target.astype(np.int64)
    tr, te = _split(len(labels), float(test_fraction), labels, seed)
    x_train, x_test = _standardise(images[tr], images[te])
    return Dataset("digits", x_train, labels[tr], x_test, labels[te], 10)


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 pickle: (uint8 N×3×32×32 images, int64 labels)."""
    if not path.is_file():
        raise FileNotFoundError(f"CIFAR-10 file {path} not found: --path must be the directory holding "
                                f"{', '.join(CIFAR10_FILES)} (cifar-10-python.tar.gz, unpacked)")
    with path.open("rb") as fh:
        try:
            batch = pickle.load(fh, encoding="bytes")
        except Exception as exc:  # corrupt or not a pickle: say which file
            raise ValueError(f"{path} is not a CIFAR-10 python pickle: {exc}") from None
    if not isinstance(batch, dict):
        raise ValueError(f"{path} is not a CIFAR-10 batch (a dict with b'data' and b'labels')")
    data = batch.get(b"data", batch.get("data"))
    labels = batch.get(b"labels", batch.get("labels"))
    if data is None or labels is None:
        raise ValueError(f"{path} is not a CIFAR-10 batch: it has no 'data' and 'labels' entries")
    data = np.asarray(data)
    labels = np.asarray(labels, dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
        raise ValueError(f"{path}: expected uint8 data of shape (N, 3072) and N labels, got {data.dtype} "
                         f"{data.shape} and {len(labels)} labels")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"{path}: labels must be in 0..9, got {labels.min()}..{labels.max()}")
    return data.reshape(-1, 3, 32, 32), labels


def load_cifar10(path: str | Path) -> Dataset:
    """CIFAR-10 from ``path``, the directory of the python-version pickles (``data_batch_1`` …
    ``data_batch_5``, ``test_batch``): 50 000 training and 10 000 test images, 3×32×32.

    Raises:
        FileNotFoundError: the directory or one of the files is missing (the message lists them).
        ValueError: a file is not a CIFAR-10 batch.
    """
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"path {str(path)!r} is not a directory: it must hold the CIFAR-10 python "
                                f"batches ({', '.join(CIFAR10_FILES)})")
    parts = [_read_batch(root / name) for name in CIFAR10_FILES]
    x_train = np.concatenate([p[0] for p in parts[:-1]]).astype(np.float64) / 255.0
    y_train = np.concatenate([p[1] for p in parts[:-1]])
    x_test = parts[-1][0].astype(np.float64) / 255.0
    x_train, x_test = _standardise(x_train, x_test)
    return Dataset("cifar10", x_train, y_train, x_test, parts[-1][1], 10)


def load(name: str, path: str | Path | None = None, *, seed: int = 0) -> Dataset:
    """The data set ``name`` ("digits" or "cifar10"; cifar10 needs ``path``)."""
    if name == "digits":
        if path is not None:
            raise ValueError("the digits data set ships with scikit-learn: it takes no path")
        return load_digits(seed=seed)
    if name == "cifar10":
        if path is None:
            raise ValueError("data 'cifar10' needs path= (--path DIR): the directory of the python batches")
        return load_cifar10(path)
    raise ValueError(f"data must be 'digits' or 'cifar10', got {name!r}")
