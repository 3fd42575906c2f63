"""Exact multiplication and addition counts of a convolution layer, Winograd vs direct.

"F(m, r) needs only α² multiplications per m×m output tile instead of m²·r²" counts the
element-wise products of *one* tile and *one* channel pair.  A layer also pays the
transforms, and pruning changes the products.  This module counts everything, exactly,
from the actual transform matrices of :func:`magma_wino.transforms.winograd`, so the claim
can be checked with numbers (``magma-wino cost``; docs/cost.md).

How counts are made
-------------------
*One 1-D transform* ``y = T x`` (T of shape out×in) is counted as a plain matrix–vector
product with the coefficients of T (no common-subexpression elimination, no shifts for
powers of two — the kernels multiply by every coefficient that is not ±1):

* multiplications = number of entries of T not in {0, +1, −1};
* additions       = Σ over rows of max(nonzeros in the row − 1, 0).

*An n-D transform* applies the 1-D transform along each axis in turn, axis 0 first; when
axis k is transformed, axes < k already have their output length and axes > k still have
their input length, so axis k needs ``out^k · in^(nd−1−k)`` 1-D transforms.  In 2D:

* input  ``Bᵀ d B``  (Bᵀ α×α): α + α = 2α 1-D transforms per tile and input channel;
* output ``Aᵀ M A``  (Aᵀ m×α): α (columns, α long → m) + m (rows) = α + m per tile and
  output channel (reducing first is the cheaper order, and what the kernels do);
* filter ``G g Gᵀ`` (G α×r):  r + α per (output, input) channel pair.

*Amortisation* is that of the algorithm: the input transform runs once per tile and input
channel (``P·C`` times, P = N · tiles), the output transform once per tile and output
channel (``P·K`` times), for whole tiles (edge tiles are computed in full and clipped when
written, as the kernels do).  The filter transform runs once per layer and is free at
inference (the layer stores U): it is reported separately and not in the totals.

*The products* ``M[b] = U[b] · V[b]`` (K×C times C×P, for each of the α^nd positions b):
a row k of U[b] with n nonzeros costs, per tile, n multiplications and n − 1 additions
(0 and 0 for an empty row, whose output is the constant 0).  So over the layer

    mults = P · nnz(U),      adds = P · Σ_b Σ_k max(n_bk − 1, 0).

Dense U has n_bk = C: mults = α^nd·K·C·P, adds = α^nd·K·(C−1)·P.

*Winograd-ReLU* products also skip zero activations of V = ReLU(Bᵀ d B): a nonzero
U[b,k,c] is multiplied with V[b,c,p] only when that is nonzero.  With a per-position
activation density a_b (fraction of nonzero entries of V[b]) and activations independent
of the weight pattern, the *expected* counts are

    mults = P · Σ_b a_b · nnz(U[b]),
    adds  = P · Σ_b Σ_k (n_bk · a_b − 1 + (1 − a_b)^n_bk)

(the number of products in a row is Binomial(n_bk, a_b) and E[max(X − 1, 0)] =
E[X] − 1 + P(X = 0)).  At a_b = 1 these are exactly the Winograd-pruned counts.  If the
actual V (α^nd×C×P) and U are given, the counts are exact instead:
``mults = Σ_b Σ_c colnnz(U[b])_c · rownnz(V[b])_c`` and
``adds = Σ_b Σ_{k,p} max(#{c: U[b,k,c] ≠ 0 ≠ V[b,c,p]} − 1, 0)``.

*Direct convolution*: ``mults = N·K·C·r^nd·Πo``, ``adds = N·K·(C·r^nd − 1)·Πo`` (Πo = the
number of output positions), both + N·K·Πo additions with a bias.  Winograd adds the bias
once per output actually written (N·K·Πo).  ReLU (a comparison) costs nothing here.

Weight sparsity without the actual U: ``weight_density`` d gives every position
``round(d·K·C)`` nonzeros (what ``prune_winograd(..., per_position=True)`` keeps), and
``nnz=`` gives a total spread evenly over positions; within a position the nonzeros are
spread evenly over the K rows (floor/ceil), which fixes the number of nonempty rows.
Pass ``U=`` (array, mask or :class:`~magma_wino.sparse.BatchedCSR`) for exact row counts.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from ._backend import to_host
from .reference import tile_m
from .transforms import winograd

__all__ = [
    "separable_cost",
    "C3D_LAYERS",
    "LayerCost",
    "VARIANTS",
    "VGG16_LAYERS",
    "conv_cost",
    "cost_table",
    "format_table",
    "layer_cost",
    "matvec_cost",
    "transform_cost",
]

VARIANTS = ("dense", "spatial", "winograd", "winograd_relu")

#: The 13 3×3 convolution layers of VGG-16 (padding 1): (C, K, H, W).
VGG16_LAYERS: tuple[tuple[int, int, int, int], ...] = (
    (3, 64, 224, 224),
    (64, 64, 224, 224),
    (64, 128, 112, 112),
    (128, 128, 112, 112),
    (128, 256, 56, 56),
    (256, 256, 56, 56),
    (256, 256, 56, 56),
    (256, 512, 28, 28),
    (512, 512, 28, 28),
    (512, 512, 28, 28),
    (512, 512, 14, 14),
    (512, 512, 14, 14),
    (512, 512, 14, 14),
)

#: The 8 3×3×3 convolution layers of C3D (Tran et al. 2015; padding 1, input
#: 3×16×112×112, pool1 1×2×2, later pools 2×2×2): (C, K, D, H, W).
C3D_LAYERS: tuple[tuple[int, int, int, int, int], ...] = (
    (3, 64, 16, 112, 112),  # conv1a
    (64, 128, 16, 56, 56),  # conv2a
    (128, 256, 8, 28, 28),  # conv3a
    (256, 256, 8, 28, 28),  # conv3b
    (256, 512, 4, 14, 14),  # conv4a
    (512, 512, 4, 14, 14),  # conv4b
    (512, 512, 2, 7, 7),  # conv5a
    (512, 512, 2, 7, 7),  # conv5b
)

Number = int | float


# --------------------------------------------------------------------------- transforms


def _coef(v: Any, i: int, j: int) -> Fraction:
    """One matrix entry ``T[i][j]`` as an exact Fraction (finite real numbers only)."""
    where = f"T[{i}][{j}]"
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, str):
        try:
            return Fraction(v)
        except ValueError:
            raise ValueError(f"{where} = {v!r} is not a number") from None
    if isinstance(v, float) and not math.isfinite(v):
        raise ValueError(f"{where} must be finite, got {v!r}")
    if isinstance(v, numbers.Real):
        return Fraction(v)  # type: ignore[arg-type]
    raise TypeError(f"{where} must be a real number, got {type(v).__name__}")


def _entries(T: Any) -> list[list[Fraction]]:
    """The entries of a matrix ``T`` (a 2-D array or nested sequences), validated."""
    if isinstance(T, np.ndarray):
        if T.ndim != 2:
            raise ValueError(f"T must be a 2-D matrix, got shape {T.shape}")
        if T.dtype.kind not in "biuf":
            raise TypeError(f"T must have real numeric entries, got dtype {T.dtype}")
        if T.size == 0:
            raise ValueError(f"T must be a non-empty matrix, got shape {T.shape}")
    elif isinstance(T, (str, bytes)) or not isinstance(T, Iterable):
        raise TypeError(f"T must be a matrix (a 2-D array or nested sequences of numbers), got {type(T).__name__}")
    rows = []
    for i, row in enumerate(T):
        if isinstance(row, (str, bytes)) or not isinstance(row, Iterable):
            raise TypeError(f"T[{i}] must be a row (a sequence of numbers), got {type(row).__name__}")
        rows.append(list(row))
    if not rows or not rows[0] or len({len(r) for r in rows}) != 1:
        raise ValueError(f"T must be a non-empty rectangular matrix, got row lengths {[len(r) for r in rows]}")
    return [[_coef(v, i, j) for j, v in enumerate(row)] for i, row in enumerate(rows)]


def matvec_cost(T: Any) -> tuple[int, int]:
    """(multiplications, additions) of one 1-D transform ``y = T x``.

    ``T`` is a matrix (nested sequences of numbers / Fractions, or a 2-D array).
    Multiplications: entries not in {0, +1, −1}.  Additions: Σ_rows max(nonzeros − 1, 0).
    """
    rows = _entries(T)
    mults = sum(1 for row in rows for v in row if v not in (0, 1, -1))
    adds = sum(max(sum(1 for v in row if v != 0) - 1, 0) for row in rows)
    return mults, adds


def transform_cost(T: Any, ndim: int) -> tuple[int, int, int]:
    """(multiplications, additions, number of 1-D transforms) of the n-D transform by T.

    T (out×in) is applied along axis 0, then 1, …: axis k needs ``out^k · in^(nd−1−k)``
    1-D transforms.  E.g. 2D ``Bᵀ d B`` (Bᵀ α×α): 2α; ``Aᵀ M A`` (Aᵀ m×α): α + m.
    """
    ndim = _choice(ndim, "ndim", (1, 2, 3))
    return separable_cost([T] * ndim)


def separable_cost(Ts: Sequence[Any]) -> tuple[int, int, int]:
    """(multiplications, additions, number of 1-D transforms) of the separable transform
    applying ``Ts[k]`` (out_k × in_k) along axis k, axis 0 first: axis k needs
    ``Π_{j<k} out_j · Π_{j>k} in_j`` 1-D transforms.  The transforms of a rectangular tile
    F(m_h×m_w, r_h×r_w), one matrix per axis; :func:`transform_cost` is the square case."""
    if isinstance(Ts, (str, bytes)) or not isinstance(Ts, Sequence) or not 1 <= len(Ts) <= 3:
        raise ValueError(f"Ts must be 1 to 3 matrices (one per axis), got {Ts!r}")
    rows = [_entries(T) for T in Ts]
    shapes = [(len(r), len(r[0])) for r in rows]
    mults = adds = count = 0
    for k, r in enumerate(rows):
        n = math.prod(o for o, _ in shapes[:k]) * math.prod(i for _, i in shapes[k + 1:])
        mk, ak = matvec_cost(r)
        mults, adds, count = mults + mk * n, adds + ak * n, count + n
    return mults, adds, count


# --------------------------------------------------------------------------- the cost


@dataclass(frozen=True)
class LayerCost:
    """Counts of one layer (see the module docstring for exactly what is counted).

    Counts are ints when exact; the Winograd-ReLU products with a *stated* activation
    density are expectations (floats).  ``mults``/``adds`` are the inference totals
    (input transform + products + output transform + bias); the filter transform is
    reported separately (``filter_mults``/``filter_adds``, once per layer).
    """

    variant: str
    ndim: int
    N: int
    C: int
    K: int
    spatial_size: tuple[int, ...]
    out_size: tuple[int, ...]
    r: int
    m: int
    alpha: int
    padding: tuple[int, ...]
    tiles: tuple[int, ...]
    P: int
    weight_nnz: int
    weight_density: float
    activation_density: float
    input_mults: Number
    input_adds: Number
    product_mults: Number
    product_adds: Number
    output_mults: Number
    output_adds: Number
    bias_adds: Number
    filter_mults: Number
    filter_adds: Number
    direct_mults: int
    direct_adds: int
    direct_sparse_mults: int | None = None
    per_tile: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def outputs(self) -> int:
        """Output values computed and written: N·K·Πo."""
        return self.N * self.K * math.prod(self.out_size)

    @property
    def mults(self) -> Number:
        """Inference multiplications: transforms + products."""
        return self.input_mults + self.product_mults + self.output_mults

    @property
    def adds(self) -> Number:
        """Inference additions: transforms + products + bias."""
        return self.input_adds + self.product_adds + self.output_adds + self.bias_adds

    @property
    def mults_per_output(self) -> float:
        return self.mults / self.outputs

    @property
    def adds_per_output(self) -> float:
        return self.adds / self.outputs

    @property
    def direct_mults_per_output(self) -> float:
        """``C·r^nd``."""
        return self.direct_mults / self.outputs

    @property
    def mult_ratio(self) -> float:
        """Winograd multiplications / direct-convolution multiplications (< 1: fewer)."""
        return self.mults / self.direct_mults

    @property
    def add_ratio(self) -> float:
        return self.adds / self.direct_adds

    @property
    def transform_mult_share(self) -> float:
        """Fraction of the inference multiplications spent in the two tile transforms."""
        return (self.input_mults + self.output_mults) / self.mults if self.mults else 0.0


def _pos_int(v: Any, name: str, minimum: int = 1) -> int:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(v).__name__}")
    if v < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {v}")
    return int(v)


def _choice(v: Any, name: str, allowed: tuple[int, ...]) -> int:
    """An int that must be one of ``allowed`` (TypeError for non-ints and bools)."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{name} must be an int ({', '.join(map(str, allowed))}), got {type(v).__name__}")
    if v not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {v!r}")
    return int(v)


def _bool(v: Any, name: str) -> bool:
    if not isinstance(v, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(v).__name__}")
    return bool(v)


def _int_tuple(v: Any, name: str, ndim: int, minimum: int) -> tuple[int, ...]:
    """An int (the same on every axis) or ``ndim`` ints, each >= ``minimum``."""
    if isinstance(v, (bool, np.bool_)):
        raise TypeError(f"{name} must be an int or a sequence of {ndim} ints, got bool")
    if isinstance(v, (int, np.integer)):
        vals: Sequence[Any] = (v,) * ndim
    elif isinstance(v, (Sequence, np.ndarray)) and not isinstance(v, (str, bytes)):
        vals = tuple(v)
        if len(vals) != ndim:
            raise ValueError(f"{name} must have {ndim} entries for ndim={ndim}, got {vals}")
    else:
        raise TypeError(f"{name} must be an int or a sequence of {ndim} ints, got {type(v).__name__}")
    return tuple(_pos_int(x, name, minimum) for x in vals)


def _density(v: Any, name: str) -> float:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number in [0, 1], got {type(v).__name__}")
    d = float(v)
    if not 0.0 <= d <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {v!r}")
    return d


#: Nonzeros per row of one position's K×C matrix, as (nonzeros in a row, number of such rows)
#: pairs: a histogram, so that a layer's counts need no K-sized array (K may be huge).
RowHist = list[tuple[int, int]]


def _even_split(total: int, parts: int) -> RowHist:
    """``total`` spread over ``parts`` rows as evenly as possible (some rows get one more)."""
    q, rem = divmod(int(total), int(parts))
    return [(n, c) for n, c in ((q + 1, rem), (q, parts - rem)) if c]


def _hist(counts: np.ndarray) -> RowHist:
    vals, cnts = np.unique(counts, return_counts=True)
    return [(int(n), int(c)) for n, c in zip(vals, cnts)]


def _row_counts_from_U(U: Any, positions: int, K: int, C: int) -> np.ndarray:
    """positions×K array of nonzeros per row of U (array, mask or BatchedCSR)."""
    from .sparse import BatchedCSR  # noqa: PLC0415  (keep import light)

    if isinstance(U, BatchedCSR):
        if U.shape != (positions, K, C):
            raise ValueError(f"U must have shape (α^nd, K, C) = {(positions, K, C)}, got {U.shape}")
        return U.row_nnz()
    if not hasattr(U, "shape"):
        raise TypeError(f"U must be an array, a boolean mask or a BatchedCSR, got {type(U).__name__}")
    a = to_host(U)
    if a.shape != (positions, K, C):
        raise ValueError(f"U must have shape (α^nd, K, C) = {(positions, K, C)}, got {a.shape}")
    return (a != 0).sum(axis=2).astype(np.int64)


def layer_cost(
    N: int,
    C: int,
    K: int,
    spatial_size: int | Sequence[int],
    r: int = 3,
    m: int = 2,
    padding: int | Sequence[int] = 0,
    *,
    variant: str = "dense",
    weight_density: float = 1.0,
    nnz: int | Sequence[int] | None = None,
    U: Any = None,
    activation_density: float | Sequence[float] = 1.0,
    V: Any = None,
    bias: bool = False,
    ndim: int = 2,
    points: Sequence[Any] | None = None,
) -> LayerCost:
    """Exact operation counts of one stride-1 convolution layer computed with F(m, r).

    Args:
        N, C, K: batch, input channels, output channels.
        spatial_size: input size per spatial axis (an int for a square / cubic input).
        r, m: filter size and output tile size; ``points``: interpolation points.
        padding: zero padding per axis (int or tuple).
        variant: ``"dense"``; ``"spatial"`` (spatially pruned weights: U is dense, so the
            products cost what dense ones cost; ``weight_density`` is the density of w
            and only enters ``direct_sparse_mults``); ``"winograd"`` (pruned U);
            ``"winograd_relu"`` (pruned U and ReLU'd V).
        weight_density: density of U (Winograd variants) or of w (``"spatial"``).
        nnz: instead of ``weight_density``, the nonzeros of U: a total (spread evenly
            over positions) or one count per position.
        U: instead, the actual U (α^nd×K×C array or mask, or a BatchedCSR): exact rows.
        activation_density: ``"winograd_relu"`` only: density of V, a number or one per
            position (expected counts, module docstring).
        V: ``"winograd_relu"`` only: the actual V (α^nd×C×P) — exact counts, needs ``U``.
        bias: count the bias additions.
        ndim: 2 or 3 spatial axes.

    Returns:
        A :class:`LayerCost`.

    Raises:
        TypeError / ValueError naming the argument for inconsistent or bad arguments.
    """
    N = _pos_int(N, "N")
    C = _pos_int(C, "C")
    K = _pos_int(K, "K")
    r = _pos_int(r, "r")
    m = _pos_int(m, "m")
    ndim = _choice(ndim, "ndim", (2, 3))
    if not isinstance(variant, str):
        raise TypeError(f"variant must be one of {VARIANTS}, got {type(variant).__name__}")
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    bias = _bool(bias, "bias")
    size = _int_tuple(spatial_size, "spatial_size", ndim, 1)
    pads = _int_tuple(padding, "padding", ndim, 0)
    out = tuple(s + 2 * p - r + 1 for s, p in zip(size, pads))
    if any(o < 1 for o in out):
        raise ValueError(f"spatial_size {size} with padding {pads} is smaller than r = {r}")

    t = winograd(m, r, points)
    AT, G, BT = t.exact()
    alpha = t.alpha
    tiles = tuple(math.ceil(o / m) for o in out)
    P = N * math.prod(tiles)
    positions = alpha**ndim
    n_out = math.prod(out)

    in_m, in_a, _ = transform_cost(BT, ndim)
    out_m, out_a, _ = transform_cost(AT, ndim)
    f_m, f_a, _ = transform_cost(G, ndim)

    # ---- weights: nonzeros per (position, row), as one histogram per position
    w_density = _density(weight_density, "weight_density")
    given = [name for name, v in (("nnz", nnz), ("U", U)) if v is not None]
    if len(given) > 1 or (given and w_density != 1.0):
        raise ValueError("give at most one of weight_density, nnz and U")
    direct_sparse = None
    if variant in ("dense", "spatial"):
        if given:
            raise ValueError(f"variant={variant!r} has a dense U; nnz/U apply to 'winograd' variants")
        if variant == "dense" and w_density != 1.0:
            raise ValueError("variant='dense' needs weight_density=1.0 (use 'spatial' or 'winograd')")
        rows: list[RowHist] = [[(C, K)]] * positions
        w_nnz_spatial = math.floor(w_density * K * C * r**ndim + 0.5)
        if variant == "spatial":
            direct_sparse = N * n_out * w_nnz_spatial
    elif U is not None:
        rows = [_hist(rc) for rc in _row_counts_from_U(U, positions, K, C)]
    else:
        per_pos: list[int]
        if nnz is None:
            per_pos = [math.floor(w_density * K * C + 0.5)] * positions
        elif isinstance(nnz, (bool, np.bool_)):
            raise TypeError("nnz must be an int or a sequence of ints (one per position), got bool")
        elif isinstance(nnz, (int, np.integer)):
            if not 0 <= nnz <= positions * K * C:
                raise ValueError(f"nnz must be in [0, α^nd·K·C] = [0, {positions * K * C}], got {nnz}")
            per_pos = [n for n, c in _even_split(int(nnz), positions) for _ in range(c)]
        else:
            what = f"nnz must be an int or {positions} ints (one per position)"
            arr = _numeric_sequence(nnz, what, "iu")
            if arr.shape != (positions,):
                raise ValueError(f"{what}, got shape {arr.shape}")
            if arr.min() < 0 or arr.max() > K * C:
                raise ValueError(f"nnz per position must be in [0, K·C] = [0, {K * C}], got {arr.min()}..{arr.max()}")
            per_pos = [int(n) for n in arr]
        rows = [_even_split(n, K) for n in per_pos]
    w_nnz = sum(n * c for hist in rows for n, c in hist)

    # ---- activations
    ad = _activation_density(activation_density, positions)
    if variant != "winograd_relu":
        if V is not None or not np.all(ad == 1.0):
            raise ValueError("activation_density / V apply to variant='winograd_relu' only")
    a_b: np.ndarray
    if V is not None:
        if U is None:
            raise ValueError("V (exact activation counts) needs the actual U as well")
        Va = to_host(V)
        if Va.shape != (positions, C, P):
            raise ValueError(f"V must have shape (α^nd, C, P) = {(positions, C, P)}, got {Va.shape}")
        from .sparse import BatchedCSR  # noqa: PLC0415

        Um = U.to_host().to_dense() != 0 if isinstance(U, BatchedCSR) else np.asarray(U) != 0
        Vm = Va != 0
        prod_m: Number = 0
        prod_a: Number = 0
        for b in range(positions):
            cnt = Um[b].astype(np.int64) @ Vm[b].astype(np.int64)  # K×P products per output
            prod_m += int(cnt.sum())
            prod_a += int(np.maximum(cnt - 1, 0).sum())
        a_b = Vm.reshape(positions, -1).mean(axis=1)
    else:
        a_b = ad
        if np.all(ad == 1.0):  # exact integer counts
            prod_m = P * w_nnz
            prod_a = P * sum(max(n - 1, 0) * c for hist in rows for n, c in hist)
        else:
            prod_m = float(P * sum(float(a) * n * c for a, hist in zip(ad, rows) for n, c in hist))
            prod_a = float(P * sum((n * float(a) - 1.0 + (1.0 - float(a)) ** n) * c
                                   for a, hist in zip(ad, rows) for n, c in hist))

    def direct_counts() -> tuple[int, int]:
        per = C * r**ndim
        return N * K * n_out * per, N * K * n_out * (per - 1) + (N * K * n_out if bias else 0)

    d_m, d_a = direct_counts()
    return LayerCost(
        variant=variant,
        ndim=ndim,
        N=N,
        C=C,
        K=K,
        spatial_size=size,
        out_size=out,
        r=r,
        m=m,
        alpha=alpha,
        padding=pads,
        tiles=tiles,
        P=P,
        weight_nnz=w_nnz,
        weight_density=w_density if variant == "spatial" else w_nnz / (positions * K * C),
        activation_density=float(np.mean(a_b)),
        input_mults=P * C * in_m,
        input_adds=P * C * in_a,
        product_mults=prod_m,
        product_adds=prod_a,
        output_mults=P * K * out_m,
        output_adds=P * K * out_a,
        bias_adds=N * K * n_out if bias else 0,
        filter_mults=K * C * f_m,
        filter_adds=K * C * f_a,
        direct_mults=d_m,
        direct_adds=d_a,
        direct_sparse_mults=direct_sparse,
        per_tile={"input": (in_m, in_a), "output": (out_m, out_a), "filter": (f_m, f_a)},
    )


def _numeric_sequence(v: Any, what: str, kinds: str) -> np.ndarray:
    """``v`` (a sequence or array) as a NumPy array whose dtype kind is one of ``kinds``;
    TypeError for other types and dtypes, ValueError for ragged sequences, each ``what``."""
    if isinstance(v, (str, bytes)) or not isinstance(v, (Sequence, np.ndarray)):
        raise TypeError(f"{what}, got {type(v).__name__}")
    try:
        arr = np.asarray(v)
    except ValueError as exc:  # ragged
        raise ValueError(f"{what}: {exc}") from None
    if arr.dtype.kind not in kinds:
        raise TypeError(f"{what}, got dtype {arr.dtype}")
    return arr


def _activation_density(v: Any, positions: int) -> np.ndarray:
    """``activation_density``: a number in [0, 1], or one per position, as a float64 array."""
    what = f"activation_density must be a number in [0, 1] or {positions} of them"
    if isinstance(v, (bool, np.bool_)):
        raise TypeError(f"{what}, got bool")
    if isinstance(v, (int, float, np.integer, np.floating)):
        return np.full(positions, _density(v, "activation_density"))
    ad = _numeric_sequence(v, what, "iuf").astype(np.float64)
    if ad.shape != (positions,) or not np.all((ad >= 0) & (ad <= 1)):
        raise ValueError(f"{what}, got {v!r}")
    return ad


# --------------------------------------------------------------------------- tables

#: Configurations of :func:`cost_table`: (variant, weight density, activation density).
DEFAULT_CONFIGS: tuple[tuple[str, float, float], ...] = (
    ("dense", 1.0, 1.0),
    ("spatial", 0.3, 1.0),
    ("winograd", 0.3, 1.0),
    ("winograd", 0.1, 1.0),
    ("winograd_relu", 0.3, 0.5),
    ("winograd_relu", 0.1, 0.5),
)


def _layer_name(i: int, layer: Sequence[int]) -> str:
    c, k, *sp = layer
    return f"L{i + 1:<2d} {c}->{k} {'x'.join(map(str, sp))}"


def cost_table(
    layers: Iterable[Sequence[int]],
    ms: Sequence[int] = (2, 4, 6),
    configs: Sequence[tuple[str, float, float]] = DEFAULT_CONFIGS,
    *,
    N: int = 1,
    r: int = 3,
    padding: int = 1,
    ndim: int | None = None,
    per_layer: bool = True,
    total: bool = True,
) -> list[dict[str, Any]]:
    """Rows of counts for a network: per layer and/or network totals.

    Args:
        layers: ``(C, K, *spatial)`` tuples, e.g. :data:`VGG16_LAYERS` (2D) or
            :data:`C3D_LAYERS` (3D); ``ndim`` defaults to ``len(spatial)``.
        ms: output tile sizes m (F(m, r) for each).
        configs: ``(variant, weight_density, activation_density)`` triples.
        per_layer / total: emit one row per layer and/or one "total" row per (m, config).

    Returns:
        A list of dicts with keys ``layer, F, variant, w_dens, a_dens, mults/out,
        in_tf/out, prod/out, out_tf/out, adds/out, direct/out, mult_ratio, filter_mults``.
        Per-output numbers divide by the outputs N·K·Πo (network totals: Σ counts / Σ outputs).
    """
    layers = _check_layers(layers, ndim)
    ms = _check_seq(ms, "ms", lambda v, name: _pos_int(v, name))
    configs = _check_seq(configs, "configs", _check_config)
    N, r = _pos_int(N, "N"), _pos_int(r, "r")
    per_layer, total = _bool(per_layer, "per_layer"), _bool(total, "total")
    rows: list[dict[str, Any]] = []
    for j, m in enumerate(ms):
        for q, (variant, wd, ad) in enumerate(configs):
            costs = []
            for i, layer in enumerate(layers):
                c, k, *sp = layer
                try:
                    lc = layer_cost(
                        N, c, k, tuple(sp), r, m, padding, variant=variant, weight_density=wd,
                        activation_density=ad, ndim=len(sp),
                    )
                except (TypeError, ValueError) as exc:
                    if type(exc) in (TypeError, ValueError) and not _names_a_table_argument(str(exc)):
                        raise type(exc)(f"layers[{i}] = {layer} with ms[{j}] = {m} and configs[{q}] = "
                                        f"{configs[q]}: {exc}") from exc
                    raise
                costs.append(lc)
                if per_layer:
                    rows.append(_row(_layer_name(i, layer), lc, variant, wd, ad, [lc]))
            if total:
                rows.append(_row("total", costs[0], variant, wd, ad, costs))
    return rows


def _names_a_table_argument(msg: str) -> bool:
    """Whether a message of layer_cost starts with an argument cost_table passes through."""
    return msg.split(" ", 1)[0] in ("N", "r", "padding", "ndim")


def _check_seq(v: Any, name: str, check: Any) -> list[Any]:
    """A list of the entries of the sequence ``v``, each checked by ``check(entry, "name[i]")``."""
    if isinstance(v, (str, bytes, Mapping)) or not isinstance(v, Iterable):
        raise TypeError(f"{name} must be a sequence, got {type(v).__name__}")
    return [check(x, f"{name}[{i}]") for i, x in enumerate(v)]


def _check_config(cfg: Any, name: str) -> tuple[str, float, float]:
    if isinstance(cfg, (str, bytes)) or not isinstance(cfg, (Sequence, np.ndarray)):
        raise TypeError(f"{name} must be a (variant, weight_density, activation_density) triple, "
                        f"got {type(cfg).__name__}")
    if len(cfg) != 3:
        raise ValueError(f"{name} must be a (variant, weight_density, activation_density) triple, got {cfg!r}")
    variant, wd, ad = cfg
    if not isinstance(variant, str):
        raise TypeError(f"{name}: variant must be one of {VARIANTS}, got {type(variant).__name__}")
    if variant not in VARIANTS:
        raise ValueError(f"{name}: variant must be one of {VARIANTS}, got {variant!r}")
    return variant, _density(wd, f"{name}: weight_density"), _density(ad, f"{name}: activation_density")


def _check_layers(layers: Any, ndim: Any) -> list[tuple[int, ...]]:
    """``layers``: a non-empty sequence of (C, K, *spatial) int tuples, 2 or 3 spatial axes
    (``ndim`` of them when given)."""
    if ndim is not None:
        ndim = _choice(ndim, "ndim", (2, 3))
    if isinstance(layers, (str, bytes, Mapping)) or not isinstance(layers, Iterable):
        raise TypeError(f"layers must be a sequence of (C, K, *spatial) tuples, got {type(layers).__name__}")
    out = []
    for i, layer in enumerate(layers):
        name = f"layers[{i}]"
        if isinstance(layer, (str, bytes)) or not isinstance(layer, (Sequence, np.ndarray)):
            raise TypeError(f"{name} must be a (C, K, *spatial) tuple of ints, got {type(layer).__name__}")
        layer = tuple(layer)
        lengths = (2 + ndim,) if ndim is not None else (4, 5)
        if len(layer) not in lengths:
            want = f"{2 + ndim}" if ndim is not None else "4 (2D) or 5 (3D)"
            raise ValueError(f"{name} must be (C, K, *spatial) with {want} entries, got {layer!r}")
        out.append(tuple(_pos_int(v, f"{name}[{j}]") for j, v in enumerate(layer)))
    if not out:
        raise ValueError("layers must not be empty")
    return out


def _row(name: str, lc: LayerCost, variant: str, wd: float, ad: float, costs: list[LayerCost]) -> dict[str, Any]:
    outs = sum(c.outputs for c in costs)
    s = lambda attr: sum(getattr(c, attr) for c in costs)  # noqa: E731
    return {
        "layer": name,
        "F": f"F({lc.m},{lc.r})" if lc.ndim == 2 else f"F({lc.m}^3,{lc.r}^3)",
        "variant": variant,
        "w_dens": wd,
        "a_dens": ad if variant == "winograd_relu" else 1.0,
        "mults/out": s("mults") / outs,
        "in_tf/out": s("input_mults") / outs,
        "prod/out": s("product_mults") / outs,
        "out_tf/out": s("output_mults") / outs,
        "adds/out": s("adds") / outs,
        "direct/out": s("direct_mults") / outs,
        "mult_ratio": s("mults") / s("direct_mults"),
        "filter_mults": s("filter_mults"),
    }


def _fmt_cell(v: Any) -> str:
    if isinstance(v, float):
        if v == 0:
            return "0"
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        if abs(v) >= 10:
            return f"{v:.1f}"
        return f"{v:.3f}"
    if isinstance(v, (int, np.integer)):
        return f"{v:,d}"
    return str(v)


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None, markdown: bool = False) -> str:
    """A readable fixed-width (or Markdown, ``markdown=True``) text table of ``rows``.

    ``rows``: a sequence of dicts (column -> value), e.g. from :func:`cost_table`;
    ``columns``: the column names to show (default: the keys of the first row).
    """
    if isinstance(rows, (str, bytes, Mapping)) or not isinstance(rows, Sequence):
        raise TypeError(f"rows must be a sequence of dicts, got {type(rows).__name__}")
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise TypeError(f"rows[{i}] must be a dict (column -> value), got {type(row).__name__}")
    if columns is not None:
        if isinstance(columns, (str, bytes)) or not isinstance(columns, Sequence):
            raise TypeError(f"columns must be a sequence of column names (str), got {type(columns).__name__}")
        for i, c in enumerate(columns):
            if not isinstance(c, str):
                raise TypeError(f"columns[{i}] must be a column name (str), got {type(c).__name__}")
    markdown = _bool(markdown, "markdown")
    if not rows:
        return "(no rows)"
    cols = list(columns) if columns is not None else [str(c) for c in rows[0].keys()]
    cells = [[_fmt_cell(r.get(c, "")) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    left = {"layer", "F", "variant"}

    def line(vals: Sequence[str]) -> str:
        parts = [v.ljust(w) if c in left else v.rjust(w) for v, w, c in zip(vals, widths, cols)]
        return ("| " + " | ".join(parts) + " |") if markdown else "  ".join(parts)

    out = [line(cols)]
    if markdown:
        out.append("|" + "|".join(
            (":" + "-" * (w + 1)) if c in left else ("-" * (w + 1) + ":") for c, w in zip(cols, widths)
        ) + "|")
    else:
        out.append("  ".join("-" * w for w in widths))
    out += [line(row) for row in cells]
    return "\n".join(out)


def conv_cost(N: int, C: int, K: int, spatial_size: Sequence[int], kernel: Sequence[int], stride: Any = 1,
              padding: Any = 0, dilation: Any = 1, groups: int = 1, m: int = 2) -> dict[str, Any]:
    """Exact counts of any convolution as the library runs it (docs/limitations.md): the
    stride-1 convolution :mod:`magma_wino.decompose` rewrites it into (a rectangular inner
    filter L_h×L_w runs the rectangular tile F(m_h×m_w, L_h×L_w), an axis of one tap F(1, 1), as
    the plans do), ``groups`` times the layer of one group (C/g input, K/g output channels: the
    block-diagonal products), dense.

    Args are PyTorch's (``kernel`` one size per axis, ``padding`` every form of
    :func:`magma_wino._checks.as_padding`).  Returns a dict: ``mults`` / ``adds`` (transforms and
    products of the inner layer, the outputs it computes past the layer's edge included),
    ``direct_mults`` (N·K·Πout·(C/g)·Π kernel), ``mult_ratio``, ``gathered`` (elements of x copied
    into the phases, 0 when nothing moves) and ``scattered`` (elements of y put back from output
    phases), and ``inner``: (N', C', K, spatial', L) of the convolution the plans run (L: an
    int, or one per axis for a rectangular inner filter)."""
    from .decompose import decompose  # decompose imports nothing of the cost model

    nd = len(tuple(kernel))
    size = _int_tuple(spatial_size, "spatial_size", nd, 1)
    dec = decompose(nd, tuple(kernel), stride, padding, dilation, groups, rectangular=True)
    out = dec.out_spatial(size, "spatial_size")
    C, K, N, m = _pos_int(C, "C"), _pos_int(K, "K"), _pos_int(N, "N"), _pos_int(m, "m")
    g = dec.groups
    if C % g or K % g:
        raise ValueError(f"C = {C} and K = {K} must be multiples of groups = {g}")
    Ls = dec.inner_kernel
    if dec.direct:  # the padding goes to the kernels
        inner = tuple(s + ax.lo + ax.hi for s, ax in zip(size, dec.axes))
    else:  # the gathered phases: inner_out + L - 1 per axis
        inner = tuple(ax.inner_out(s) + L - 1 for s, ax, L in zip(size, dec.axes, Ls))
    n_in, c_in = N * dec.out_phases, C * dec.in_phases
    mults, adds = dense_counts(n_in, c_in // g, K // g, inner, Ls, m)
    direct = N * K * math.prod(out) * (C // g) * math.prod(tuple(kernel))
    return {
        "mults": g * mults, "adds": g * adds, "direct_mults": direct, "mult_ratio": g * mults / direct,
        "gathered": 0 if dec.direct else n_in * c_in * math.prod(inner),
        "scattered": N * K * math.prod(out) if dec.out_phases > 1 else 0,
        "inner": (n_in, c_in, K, inner, Ls[0] if len(set(Ls)) == 1 else Ls),
    }


def dense_counts(N: int, C: int, K: int, padded_size: Sequence[int], r: Sequence[int], m: int) -> tuple[int, int]:
    """(multiplications, additions) of the dense three-phase layer on a zero-padded input of
    ``padded_size`` with an r_1×… filter, as the plans run it: the square F(m, r) when every
    axis has the same r (what :func:`layer_cost` counts, ``variant="dense"``), else the
    rectangular tile with F(m, r_i) per axis (F(1, 1) on an axis of one tap): input transforms
    of C·P tiles, Π α_i products of K×C by C×P, output transforms of K·P tiles."""
    rs = tuple(int(q) for q in r)
    ts = [winograd(mi, ri) for mi, ri in zip(tile_m(m, rs), rs)]
    out = [s - t.r + 1 for s, t in zip(padded_size, ts)]
    P = N * math.prod(math.ceil(o / t.m) for o, t in zip(out, ts))
    positions = math.prod(t.alpha for t in ts)
    in_m, in_a, _ = separable_cost([t.exact()[2] for t in ts])
    out_m, out_a, _ = separable_cost([t.exact()[0] for t in ts])
    mults = P * C * in_m + P * positions * K * C + P * K * out_m
    adds = P * C * in_a + P * positions * K * (C - 1) + P * K * out_a
    return mults, adds

