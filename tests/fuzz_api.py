"""Fuzz driver of the public API: bad (and good) arguments must give clear exceptions.

Run one batch (what ``tests/test_fuzz.py`` does, in a subprocess, several times)::

    python tests/fuzz_api.py --seed 1 --calls 300 --backend emulator
    python tests/fuzz_api.py --replay "cost.matvec_cost(5)"     # one call, its outcome

Hypothesis (``@given``, a fixed ``@seed``, no database, generation only) draws one 64-bit
seed per call, from which a uniform generator builds a call of the public functions of
:mod:`magma_wino.transforms`, ``reference``, ``pruning``, ``sparse``, ``cost``,
``accuracy``, ``conv2d``/``conv3d`` and the plans ``WinogradConv2d``/``3d`` (constructor,
``from_spatial``, ``from_winograd``, ``__call__``, the three phases, ``out_shape``,
``activation_density``) on one backend: the targets in turn, shapes, dtypes and values at
random.  One call in four is valid; the others have exactly one argument broken, the bad
values of every target taken round robin (wrong types, bools for ints, NaN/Inf, empty and
zero-size arrays, wrong ranks, negative or huge sizes, non-contiguous and read-only arrays,
wrong dtypes, strings, None, lists), so that batches of consecutive seeds try all of them.
Every call is a Python expression (``src``) evaluated in this module's namespace, so a
failing call can be replayed as printed.

A call fails when

* a valid call raises, or returns a wrong result (checked against the NumPy references:
  no silent wrong answer);
* a broken call returns instead of raising ("bad" values), or raises anything but
  ``TypeError`` / ``ValueError`` (exactly, not a subclass such as NumPy's ``AxisError``)
  or magma_wino's ``InvalidArgumentError`` / ``UnsupportedError`` /
  ``BackendUnavailableError`` — never ``IndexError``, ``AttributeError``,
  ``ZeroDivisionError``, NumPy internals, ``MemoryError`` or CuPy's ``CUDARuntimeError``;
* its message does not name the broken argument (as a word);
* for values whose kind is clear, it raises the wrong one of the two: ``TypeError`` for
  wrong types (None, strings, lists where arrays are needed, bools for ints, wrong dtypes),
  ``ValueError`` for wrong values (ranges, shapes, NaN, contiguity);
* it takes longer than ``--call-timeout`` seconds (a hang), or the process dies (the
  caller counts a crash).  Memory is capped (``RLIMIT_AS``) so that a huge size must be
  refused, not allocated.

"odd" values (e.g. NaN in the input of a convolution) may succeed or raise; if they
raise, the same rules apply.  The last line of stdout is a JSON summary
``{"calls": n, "failures": [...], ...}``; before each call its source goes to stderr
(``> src``), so a crash or hang shows the call that caused it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import signal
import sys
import time
import traceback
import warnings
from fractions import Fraction
from typing import Any

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

import magma_wino  # noqa: F401  (replay namespace)
from magma_wino import (  # noqa: F401
    WinogradConv2d,
    WinogradConv3d,
    accuracy,
    conv2d,
    conv3d,
    cost,
    pruning,
    reference,
    sparse,
    transforms,
)
from magma_wino.errors import BackendUnavailableError, InvalidArgumentError, UnsupportedError
from magma_wino.sparse import BatchedCSR

nan = float("nan")
inf = float("inf")
ALLOWED = (TypeError, ValueError, InvalidArgumentError, UnsupportedError, BackendUnavailableError)
BACKENDS = ("numpy", "emulator")


# --------------------------------------------------------------------------- values in calls
# Every argument is written as source code built from these helpers, so that a call can be
# replayed from its printed source alone.


def arr(shape, dtype="float64", seed=0, fill=None):
    """A fixed-seed standard-normal array (or ``fill``-ed), C-contiguous and writable."""
    shape = tuple(shape)
    a = np.random.default_rng(seed).standard_normal(shape) if fill is None else np.full(shape, fill)
    return np.ascontiguousarray(a.astype(dtype))


def full(shape, value, dtype="float64"):
    return np.full(tuple(shape), value, dtype=dtype)


def ints(shape, lo, hi, seed=0, dtype="int64"):
    return np.random.default_rng(seed).integers(lo, hi, tuple(shape)).astype(dtype)


def nc(shape, dtype="float64", seed=0):
    """A non-C-contiguous view of the given shape: every other element along the last axis
    longer than 1 (NumPy calls arrays contiguous whatever the strides of length-1 axes)."""
    shape = tuple(shape)
    ax = max(i for i, s in enumerate(shape) if s > 1)
    base = arr(shape[:ax] + (2 * shape[ax],) + shape[ax + 1:], dtype, seed)
    return base[(slice(None),) * ax + (slice(None, None, 2),)]


def nc_bad(shape, dtype) -> list:
    """[a non-contiguous array of this shape] when one exists (some axis longer than 1)."""
    return [Vb(f"nc({tuple(shape)}, {dtype!r})")] if math.prod(shape) > 1 else []


def ro(shape, dtype="float64", seed=0):
    """A read-only array."""
    a = arr(shape, dtype, seed)
    a.setflags(write=False)
    return a


def huge(shape, dtype="float64"):
    """A zero-stride view of an enormous shape: nothing allocated, must never be copied."""
    return np.broadcast_to(np.zeros((), dtype), tuple(shape))


def sparse_U(shape, dtype="float64", seed=0, density=0.5):
    """A dense array with about ``density`` of its entries nonzero."""
    a = arr(shape, dtype, seed)
    keep = np.random.default_rng(seed + 1).random(tuple(shape)) < density
    return np.where(keep, a, 0).astype(dtype)


def csr_of(shape, dtype="float64", seed=0, density=0.5):
    return BatchedCSR.from_dense(sparse_U(shape, dtype, seed, density))


def csr_parts(shape, dtype="float64", seed=0, density=0.5):
    c = csr_of(shape, dtype, seed, density)
    return c.row_ptr, c.col_idx, c.values


def shifted(a, delta, index=-1):
    """A copy of ``a`` with ``a.flat[index] += delta`` (corrupts one entry)."""
    b = a.copy()
    b.flat[index] += delta
    return b


class _Obj:
    """An object with no array protocol at all."""

    def __repr__(self) -> str:
        return "_Obj()"


NAMESPACE: dict[str, Any] = {}  # filled at the end of the module: globals()


# --------------------------------------------------------------------------- calls


class Bad:
    """A broken value of one argument: its source, the exception kind expected
    (TypeError, ValueError or None for either), the names a message may use for it, and
    whether it must raise ("bad") or may also succeed ("odd")."""

    __slots__ = ("src", "expect", "names", "kind")

    def __init__(self, src: str, expect: type | None = None, names: tuple[str, ...] | None = None,
                 kind: str = "bad") -> None:
        self.src, self.expect, self.names, self.kind = src, expect, names, kind


def T(src: str, names: tuple[str, ...] | None = None) -> Bad:
    return Bad(src, TypeError, names)


def Vb(src: str, names: tuple[str, ...] | None = None) -> Bad:
    return Bad(src, ValueError, names)


def E(src: str, names: tuple[str, ...] | None = None) -> Bad:
    """Must raise, TypeError or ValueError."""
    return Bad(src, None, names)


def Odd(src: str, names: tuple[str, ...] | None = None) -> Bad:
    return Bad(src, None, names, "odd")


OMIT = object()  # a good value that is "leave the argument out"


class Case:
    """One call: ``src`` and how to judge its outcome."""

    def __init__(self, target: str, src: str, broken: str | None, bad: Bad | None, check=None) -> None:
        self.target, self.src, self.broken, self.bad, self.check = target, src, broken, bad, check

    @property
    def kind(self) -> str:
        return "good" if self.bad is None else self.bad.kind


def ev(src: str) -> Any:
    return eval(src, NAMESPACE)  # noqa: S307 - our own generated source


class Draw:
    """The choices of one call, from one 64-bit seed that hypothesis draws per example.

    (Drawing every choice from hypothesis itself skews the calls towards the first
    entries of every list and repeats them; a uniform generator seeded by hypothesis keeps
    the calls varied, deterministic for a given ``--seed`` and replayable.)"""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def int(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)

    def pick(self, seq):
        return self.rng.choice(list(seq))

    def bool(self) -> bool:
        return self.rng.random() < 0.5

    def uniform(self) -> float:
        return self.rng.random()

    def seed(self) -> int:
        return self.rng.randint(0, 999)


#: Per target, how many calls it has had (the round robin over its bad values), and where
#: a batch starts counting (``--seed`` k starts at (k − 1)·calls/targets, so that batches of
#: consecutive seeds try different bad values).
ROUNDS: dict[str, int] = {}
ROUND_START = [0]


def _choose(target: str, bads: dict[str, list[Bad]]) -> tuple[str | None, Bad | None]:
    """Round robin: every 4th call of a target is valid; the others break the arguments in
    turn (argument 0 with its first bad value, argument 1 with its first, …, then every
    argument's second bad value, …), so that every bad value is tried, not only likely ones."""
    names = [n for n in bads if bads[n]]
    k = ROUNDS.get(target, ROUND_START[0])
    ROUNDS[target] = k + 1
    if not names or k % 4 == 0:
        return None, None
    j = k - k // 4 - 1
    name = names[j % len(names)]
    return name, bads[name][(j // len(names)) % len(bads[name])]


def make_case(d: Draw, func: str, params: list[tuple[str, str | object, bool]], bads: dict[str, list[Bad]],
              check=None, target: str | None = None) -> Case:
    """Build a call of ``func`` with ``params`` = [(name, good source or OMIT, keyword?)];
    three calls in four replace one argument by one of its ``bads`` (round robin over the
    bad values, :func:`_choose`).  ``check(result, vals)`` judges a valid call (vals: name
    -> value)."""
    broken, bad = _choose(target or func, bads)
    parts = []
    for name, src, kw in params:
        if name == broken:
            src = bad.src
        elif src is OMIT:
            continue
        parts.append(f"{name}={src}" if kw else str(src))
    call_src = f"{func}({', '.join(parts)})"
    chk = None
    if broken is None and check is not None:
        good = {n: s for n, s, _ in params}

        def chk(result, _check=check, _good=good):
            vals = {n: (None if s is OMIT else ev(s)) for n, s in _good.items()}
            return _check(result, vals)

    return Case(target or func, call_src, broken, bad, chk)


# --------------------------------------------------------------------------- common bad values


def not_arrays(strict: bool) -> list[Bad]:
    """Non-array values; ``strict``: the function needs an array object (lists refused)."""
    out = [T("None"), T("'abc'"), T("_Obj()")]
    out += [T("3"), T("2.5"), T("[[1.0, 2.0], [3.0, 4.0]]")] if strict else [E("3"), E("2.5")]
    return out


def rank_bads(shape: tuple[int, ...], dtype: str, lo: int | None = None, hi: int | None = None) -> list[Bad]:
    out = []
    if lo is None or len(shape) - 1 >= lo:
        out.append(Vb(f"arr({shape[1:]}, {dtype!r})"))
    if hi is None or len(shape) + 1 <= hi:
        out.append(Vb(f"arr({shape + (2,)}, {dtype!r})"))
    return out


def empty_bads(shape: tuple[int, ...], dtype: str, axes=None) -> list[Bad]:
    axes = range(len(shape)) if axes is None else axes
    return [Vb(f"arr({tuple(0 if i == a else s for i, s in enumerate(shape))}, {dtype!r})") for a in axes]


def dtype_bads(shape: tuple[int, ...], extra: tuple[str, ...] = ()) -> list[Bad]:
    return [T(f"arr({shape}, {dt!r})") for dt in ("complex64", "bool", "U3", "object") + extra]


def int_bads(lo: int = 1, huge_ok: bool = False) -> list[Bad]:
    """Bad values of an int argument >= lo."""
    out = [T("True"), T("2.5"), T("'3'"), T("None"), T("[2]"), Vb(str(lo - 1)), Vb(str(lo - 5))]
    if not huge_ok:
        out.append(Vb("10**12"))
    return out


def density_bads() -> list[Bad]:
    return [Vb("1.5"), Vb("-0.1"), Vb("nan"), Vb("inf"), T("'0.5'"), T("True"), T("None"), T("[0.5]")]


def prune_bads() -> list[Bad]:
    """Bad ``prune=`` densities (None is valid: no pruning)."""
    return [b for b in density_bads() if b.src != "None"]


def bool_bads() -> list[Bad]:
    return [T("'yes'"), T("2"), T("None"), T("[True]")]


# --------------------------------------------------------------------------- checks


def fail_unless(cond: bool, msg: str) -> str | None:
    return None if cond else msg


def close(a, b, tol: float, what: str = "result") -> str | None:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return f"{what}: shape {a.shape}, expected {b.shape}"
    err = accuracy.rel_err(a, b) if b.size else 0.0
    return None if err <= tol else f"{what}: rel. error {err:.3g} > {tol:.3g}"


def tol_of(dtype) -> float:
    return 2e-3 if np.dtype(dtype) == np.float32 else 1e-9


# --------------------------------------------------------------------------- transforms


def t_winograd(d: Draw, backend: str) -> Case:
    m, r = d.int(1, 4), d.int(1, 4)
    alpha = m + r - 1
    pts = OMIT
    if d.bool():
        pts = repr([str(p) for p in transforms.default_points(alpha - 1)][::-1])
    bads = {
        "m": int_bads() + [Vb("20")],
        "r": int_bads() + [Vb("17")],
        "points": [T("'abc'"), T("5"), Vb(repr([0] * alpha) if alpha > 2 else "[0, 1, 2, 3, 4, 5, 6]"),
                   Vb(repr(list(range(alpha)))), E(f"[nan] + list(range(1, {alpha - 1}))"),
                   E(f"[inf] + list(range(1, {alpha - 1}))"), T(f"[None] + list(range(1, {alpha - 1}))"),
                   T(f"[True] + list(range(1, {alpha - 1}))"), E(f"['x'] + list(range(1, {alpha - 1}))")],
    }

    def check(t, v):
        at, g, bt = t.matrices(np.float64)
        rng = np.random.default_rng(0)
        dd, gg = rng.standard_normal(alpha), rng.standard_normal(v["r"])
        y = at @ ((g @ gg) * (bt @ dd))
        ref = np.array([dd[i:i + v["r"]] @ gg for i in range(v["m"])])
        return close(y, ref, 1e-9, "F(m, r) identity")

    return make_case(d, "transforms.winograd", [("m", str(m), False), ("r", str(r), False),
                                                ("points", pts, True)], bads, check)


def t_default_points(d: Draw, backend: str) -> Case:
    n = d.int(0, 15)
    bads = {"count": [T("True"), T("2.5"), T("'3'"), T("None"), Vb("-1"), Vb("10**12")]}
    return make_case(d, "transforms.default_points", [("count", str(n), False)], bads,
                     lambda res, v: fail_unless(len(res) == v["count"] and len(set(res)) == len(res), "points"))


def t_matrices(d: Draw, backend: str) -> Case:
    m, r = d.int(1, 4), d.int(1, 4)
    dt = d.pick(["'float32'", "'float64'", "np.float32", "'float16'"])
    bads = {"dtype": [T("'abc'"), T("np.int32"), T("'int64'"), T("5"), T("_Obj()"), Odd("None"),
                      Odd("np.complex128")]}

    def check(res, v):
        a = m + r - 1
        return fail_unless([x.shape for x in res] == [(m, a), (a, r), (a, a)], "matrix shapes")

    return make_case(d, f"transforms.winograd({m}, {r}).matrices", [("dtype", dt, False)], bads, check,
                     target="WinogradTransform.matrices")


# --------------------------------------------------------------------------- reference


def _conv_cfg(d: Draw, ndim: int, *, small: bool = False):
    r = d.pick([1, 2, 3])
    m = d.pick([mm for mm in (1, 2, 3, 4) if mm + r - 1 <= (4 if ndim == 3 else 6)])
    N = 1 if ndim == 3 else d.int(1, 2)
    C, K = d.int(1, 2 if ndim == 3 else 3), d.int(1, 2 if ndim == 3 else 3)
    pad = d.int(0, r - 1)
    sp = tuple(d.int(max(1, r - 2 * pad), r + (1 if ndim == 3 else 3)) for _ in range(ndim))
    dt = d.pick(["float32", "float64"])
    return dict(r=r, m=m, N=N, C=C, K=K, pad=pad, sp=sp, dt=dt, seed=d.seed())


def _direct(x, w, bias=None, padding=0):
    x = np.asarray(x)
    f = reference.conv2d_direct if x.ndim == 4 else reference.conv3d_direct
    return f(x, w, bias, padding)


def x_bads(c, strict: bool, kernel: bool = False, name_alt: tuple[str, ...] | None = None,
           any_rank: bool = False) -> list[Bad]:
    """Bad inputs x for config c (``any_rank``: the function takes 2D and 3D inputs)."""
    nd = len(c["sp"])
    shape = (c["N"], c["C"]) + c["sp"]
    dt = c["dt"]
    ranks = [Vb(f"arr({shape[:3]}, {dt!r})"), Vb(f"arr({shape[:2] + (2,) * 4}, {dt!r})")] if any_rank else rank_bads(shape, dt)
    out = not_arrays(strict) + ranks + empty_bads(shape, dt, (0, 1, 2))
    out += dtype_bads(shape)
    # too small for the filter: spatial 1 with no padding (only if r > 1)
    if c["r"] - 2 * c["pad"] >= 2:
        small = shape[:2] + (1,) * nd
        out.append(Vb(f"arr({small}, {dt!r})"))
    if not strict:
        out.append(T("[[[[1.0, 2.0], [3.0]]]]"))  # ragged
    if kernel:
        out += nc_bad(shape, dt) + [Vb(f"huge({shape[:2] + (2 ** (40 // nd),) * nd}, {dt!r})")]
    if name_alt:
        for b in out:
            b.names = name_alt
    return out


def w_bads(c, strict: bool, kernel: bool = False, layer: bool = False, any_rank: bool = False) -> list[Bad]:
    nd = len(c["sp"])
    shape = (c["K"], c["C"]) + (c["r"],) * nd
    dt = c["dt"]
    ranks = [Vb(f"arr({shape[:3]}, {dt!r})"), Vb(f"arr({shape[:2] + (2,) * 4}, {dt!r})")] if any_rank else rank_bads(shape, dt)
    out = not_arrays(strict) + ranks + empty_bads(shape, dt, (0, 1, 2))
    out += dtype_bads(shape)
    # rectangular filters are valid (rectangular tiles); an axis of 18 taps is not: alpha =
    # m + 17 > 16, and wider than the fuzzer's inputs
    out.append(Vb(f"arr({shape[:-1] + (18,)}, {dt!r})"))
    if layer:
        out += [T(f"arr({shape}, 'int32')", ("w", "weights")), T(f"arr({shape}, 'float16')", ("w", "weights"))]
    if kernel:
        out += nc_bad(shape, dt)
    return out


def bias_bads(c, strict: bool, kernel: bool = False) -> list[Bad]:
    dt = c["dt"]
    out = [T("'abc'"), T("_Obj()"), Vb(f"arr(({c['K'] + 1},), {dt!r})"), Vb(f"arr(({c['K']}, 1), {dt!r})"),
           T(f"arr(({c['K']},), 'complex64')")]
    out += [T("3.0"), T(repr([0.0] * c["K"]))] if strict else []
    if kernel:
        out += nc_bad((c["K"],), dt)
    return out


def padding_bads(c, nd: int, strict_max: bool) -> list[Bad]:
    out = [T("1.5"), T("True"), Vb("'1'"), T("None"), Vb("-1"), Vb(repr((0,) * (nd + 1))), T(repr((0.5,) * nd)),
           Vb(repr((-1,) * nd))]
    if strict_max:
        out += [Vb(str(c["r"])), Vb("10**9")]
    return out


def m_bads(lo_alpha_r: int) -> list[Bad]:
    return [T("True"), T("2.5"), T("'2'"), T("[2]"), Vb("0"), Vb("-3"), Vb(str(18 - lo_alpha_r)), Vb("10**9")]


def points_bads(alpha: int) -> list[Bad]:
    n = alpha - 1
    out = [T("'abc'"), T("5"), Vb(repr(list(range(n + 1)))), T(repr([None] * max(n, 1)))]
    if n >= 2:
        out.append(Vb(repr([0] * n)))
    if n >= 1:
        out += [E(repr([inf] + list(range(1, n)))), E(f"[nan] + list(range(1, {n}))")]
    return out


def chk_conv(c, nd, relu=None, U=None):
    def check(y, v):
        x, w = v.get("x"), v.get("w")
        bias = v.get("bias")
        if not isinstance(y, np.ndarray):
            return f"result is {type(y).__name__}, not an ndarray"
        xx = np.asarray(x, dtype=np.float64)
        if relu == "spatial":
            xx = np.maximum(xx, 0)
        if U is not None or relu == "winograd":
            UU = v["U"] if U is None else U(v)
            ref = reference.winograd_conv_from_U(xx, np.asarray(UU, np.float64), c["m"], c["r"], c["pad"],
                                                 None if bias is None else np.asarray(bias, np.float64),
                                                 relu=relu == "winograd", points=v.get("points"))
        else:
            ref = _direct(xx, np.asarray(w, np.float64), bias, c["pad"])
        if "out" in v and v["out"] is not None and y.shape != v["out"].shape:
            return "out has another shape"
        return close(y, ref, tol_of(c["dt"]))

    return check


def t_ref_conv_direct(d: Draw, backend: str) -> Case:
    nd = d.pick([2, 3])
    c = _conv_cfg(d, nd)
    xs = (c["N"], c["C"]) + c["sp"]
    ws = (c["K"], c["C"]) + (c["r"],) * nd
    dt = c["dt"]
    bias = f"arr(({c['K']},), {dt!r}, 5)" if d.bool() else OMIT
    pad = str(c["pad"])
    x_src = f"arr({xs}, {dt!r}, {c['seed']})"
    if d.pick([0, 0, 1]):
        x_src += ".tolist()"  # the references take lists
    bads = {"x": x_bads(c, False), "w": w_bads(c, False), "bias": bias_bads(c, False),
            "padding": padding_bads(c, nd, False)}
    f = "reference.conv2d_direct" if nd == 2 else "reference.conv3d_direct"

    def check(y, v):
        xx = np.asarray(v["x"], np.float64)
        ww = np.asarray(v["w"], np.float64)
        p = c["pad"]
        xp = np.pad(xx, [(0, 0), (0, 0)] + [(p, p)] * nd)
        ref = np.zeros(y.shape)
        for idx in np.ndindex(*y.shape[2:]):
            win = xp[(slice(None), slice(None)) + tuple(slice(i, i + c["r"]) for i in idx)]
            ref[(slice(None), slice(None)) + idx] = np.tensordot(win, ww, axes=(list(range(1, 2 + nd)),
                                                                                 list(range(1, 2 + nd))))
        if v["bias"] is not None:
            ref += np.asarray(v["bias"], np.float64).reshape((1, -1) + (1,) * nd)
        return close(y, ref, 1e-12) or fail_unless(y.dtype == np.float64, "direct result not float64")

    return make_case(d, f, [("x", x_src, False), ("w", f"arr({ws}, {dt!r}, {c['seed'] + 1})", False),
                            ("bias", bias, True), ("padding", pad, True)], bads, check)


def t_ref_winograd_conv(d: Draw, backend: str) -> Case:
    nd = d.pick([2, 3])
    c = _conv_cfg(d, nd)
    xs = (c["N"], c["C"]) + c["sp"]
    ws = (c["K"], c["C"]) + (c["r"],) * nd
    dt = c["dt"]
    bias = f"arr(({c['K']},), {dt!r}, 5)" if d.bool() else OMIT
    bads = {"x": x_bads(c, False), "w": w_bads(c, False), "bias": bias_bads(c, False),
            "padding": padding_bads(c, nd, False), "m": m_bads(c["r"]), "points": points_bads(c["m"] + c["r"] - 1)}
    f = "reference.winograd_conv2d" if nd == 2 else "reference.winograd_conv3d"
    return make_case(d, f, [("x", f"arr({xs}, {dt!r}, {c['seed']})", False),
                            ("w", f"arr({ws}, {dt!r}, {c['seed'] + 1})", False),
                            ("m", str(c["m"]), False), ("padding", str(c["pad"]), True), ("bias", bias, True),
                            ("points", OMIT, True)], bads, chk_conv(c, nd))


def t_ref_filter_transform(d: Draw, backend: str) -> Case:
    nd = d.pick([2, 3])
    c = _conv_cfg(d, nd)
    ws = (c["K"], c["C"]) + (c["r"],) * nd
    dt = c["dt"]
    bads = {"w": w_bads(c, False, any_rank=True), "m": m_bads(c["r"]), "points": points_bads(c["m"] + c["r"] - 1)}

    def check(U, v):
        g = transforms.winograd(c["m"], c["r"]).matrices(np.float64)[1]
        ww = np.asarray(v["w"], np.float64)
        if nd == 2:
            ref = np.einsum("ia,jb,kcab->ijkc", g, g, ww)
        else:
            ref = np.einsum("ia,jb,lq,kcabq->ijlkc", g, g, g, ww)
        a = c["m"] + c["r"] - 1
        return close(U, ref.reshape(a**nd, c["K"], c["C"]), tol_of(dt))

    return make_case(d, "reference.filter_transform", [("w", f"arr({ws}, {dt!r}, {c['seed']})", False),
                                                       ("m", str(c["m"]), False), ("points", OMIT, True)],
                     bads, check)


def _pipeline_ref(c, nd, x, w, relu=False):
    """y from the reference's three transforms (checks input_transform / output_transform)."""
    U = reference.filter_transform(np.asarray(w, np.float64), c["m"])
    V = reference.input_transform(np.asarray(x, np.float64), c["m"], c["r"], c["pad"], relu=relu)
    return U, V


def t_ref_input_transform(d: Draw, backend: str) -> Case:
    nd = d.pick([2, 3])
    c = _conv_cfg(d, nd)
    xs = (c["N"], c["C"]) + c["sp"]
    dt = c["dt"]
    relu = d.pick(["False", "True", OMIT])
    bads = {"x": x_bads(c, False, any_rank=True), "m": m_bads(c["r"]), "r": m_bads(c["m"]),
            "padding": padding_bads(c, nd, False), "points": points_bads(c["m"] + c["r"] - 1), "relu": bool_bads()}

    def check(V, v):
        w = arr((c["K"], c["C"]) + (c["r"],) * nd, "float64", 3)
        U = reference.filter_transform(w, c["m"])
        x = np.asarray(v["x"], np.float64)
        if v["relu"] is True:  # compare with the formula: ReLU after the transform
            V64 = reference.input_transform(x, c["m"], c["r"], c["pad"])
            return close(V, np.maximum(V64, 0), tol_of(dt))
        out = (c["N"], c["K"]) + tuple(s + 2 * c["pad"] - c["r"] + 1 for s in c["sp"])
        y = reference.output_transform(U @ np.asarray(V, np.float64), c["m"], c["r"], out)
        return close(y, _direct(x, w, None, c["pad"]), tol_of(dt))

    return make_case(d, "reference.input_transform", [
        ("x", f"arr({xs}, {dt!r}, {c['seed']})", False), ("m", str(c["m"]), False), ("r", str(c["r"]), False),
        ("padding", str(c["pad"]), True), ("points", OMIT, True), ("relu", relu, True)], bads, check)


def t_ref_output_transform(d: Draw, backend: str) -> Case:
    nd = d.pick([2, 3])
    c = _conv_cfg(d, nd)
    dt = c["dt"]
    out = (c["N"], c["K"]) + tuple(s + 2 * c["pad"] - c["r"] + 1 for s in c["sp"])
    a = c["m"] + c["r"] - 1
    P = c["N"] * math.prod(-(-o // c["m"]) for o in out[2:])
    Ms = (a**nd, c["K"], P)
    bias = f"arr(({c['K']},), {dt!r}, 5)" if d.bool() else OMIT
    bads = {
        "M": not_arrays(False) + rank_bads(Ms, dt) + [Vb(f"arr({(a**nd, c['K'], P + 1)}, {dt!r})"),
                                                     Vb(f"arr({(a**nd + 1, c['K'], P)}, {dt!r})")] + dtype_bads(Ms),
        "out_shape": [T("'abc'"), T("None"), T("5"), Vb(repr(out[:3])), Vb(repr(out + (1, 1))),
                      Vb(repr((0,) + out[1:])), E(repr(out[:2] + (10**9,) * nd), ("M", "out_shape")),
                      E(repr(out[:2] + (-1,) * nd)), T(repr(out[:2] + (2.5,) * nd)), T(repr(out[:2] + ("a",) * nd))],
        "m": [T("True"), T("2.5"), Vb("0"), E("10**9")],
        "r": [T("True"), T("2.5"), Vb("0"), E("10**9")],
        "bias": bias_bads(c, False),
        "points": points_bads(a),
    }

    def check(y, v):
        x = arr((c["N"], c["C"]) + c["sp"], "float64", 11)
        w = arr((c["K"], c["C"]) + (c["r"],) * nd, "float64", 12)
        U, V = _pipeline_ref(c, nd, x, w)
        M = U @ V
        y2 = reference.output_transform(M, c["m"], c["r"], out, v["bias"])
        # the call's M is random: compare with the formula on the same M instead
        Mv = np.asarray(v["M"], np.float64)
        yv = reference.output_transform(Mv, c["m"], c["r"], out, None if v["bias"] is None else
                                        np.asarray(v["bias"], np.float64))
        ref = _direct(x, w, v["bias"], c["pad"])
        return close(y2, ref, 1e-9, "pipeline") or close(y, yv, tol_of(dt))

    return make_case(d, "reference.output_transform", [
        ("M", f"arr({Ms}, {dt!r}, {c['seed']})", False), ("m", str(c["m"]), False), ("r", str(c["r"]), False),
        ("out_shape", repr(out), False), ("bias", bias, True), ("points", OMIT, True)], bads, check)


def t_ref_tile_grid(d: Draw, backend: str) -> Case:
    sp = tuple(d.int(1, 9) for _ in range(d.pick([2, 3])))
    m = d.int(1, 5)
    bads = {"spatial_out": [T("None"), T("5"), T("'ab'"), Vb(repr((0,) + sp[1:])), Vb(repr((-2,) + sp[1:])),
                            T(repr((2.5,) + sp[1:])), T(repr((True,) + sp[1:])), Odd("()")],
            "m": m_bads(1)[:6]}
    return make_case(d, "reference.tile_grid", [("spatial_out", repr(sp), False), ("m", str(m), False)], bads,
                     lambda res, v: fail_unless(res == tuple(-(-s // m) for s in sp), f"tiles {res}"))


def t_ref_from_U(d: Draw, backend: str) -> Case:
    nd = d.pick([2, 3])
    c = _conv_cfg(d, nd)
    xs = (c["N"], c["C"]) + c["sp"]
    dt = c["dt"]
    a = c["m"] + c["r"] - 1
    Us = (a**nd, c["K"], c["C"])
    bias = f"arr(({c['K']},), {dt!r}, 5)" if d.bool() else OMIT
    relu = d.pick(["False", "True", OMIT])
    bads = {"x": x_bads(c, False, any_rank=True), "U": not_arrays(False) + rank_bads(Us, dt) + dtype_bads(Us) + [
                Vb(f"arr({(a**nd + 1, c['K'], c['C'])}, {dt!r})"), Vb(f"arr({(a**nd, c['K'], c['C'] + 1)}, {dt!r})"),
                Vb(f"arr({(a**nd, 0, c['C'])}, {dt!r})")],
            "m": m_bads(c["r"]), "r": m_bads(c["m"]), "padding": padding_bads(c, nd, False), "bias": bias_bads(c, False),
            "relu": bool_bads(), "points": points_bads(a)}

    def check(y, v):
        x = np.asarray(v["x"], np.float64)
        V = reference.input_transform(x, c["m"], c["r"], c["pad"], relu=v["relu"] is True)
        M = np.asarray(v["U"], np.float64) @ V
        out = (c["N"], c["K"]) + tuple(s + 2 * c["pad"] - c["r"] + 1 for s in c["sp"])
        b = v["bias"]
        ref = reference.output_transform(M, c["m"], c["r"], out, None if b is None else np.asarray(b, np.float64))
        return close(y, ref, tol_of(dt))

    return make_case(d, "reference.winograd_conv_from_U", [
        ("x", f"arr({xs}, {dt!r}, {c['seed']})", False), ("U", f"arr({Us}, {dt!r}, {c['seed'] + 1})", False),
        ("m", str(c["m"]), False), ("r", str(c["r"]), False), ("padding", str(c["pad"]), True),
        ("bias", bias, True), ("relu", relu, True), ("points", OMIT, True)], bads, check)


# --------------------------------------------------------------------------- pruning


def _arr_bads_pruning(shape, dt="float64", nan_bad=True) -> list[Bad]:
    out = not_arrays(True) + dtype_bads(shape)
    if nan_bad:
        out += [Vb(f"full({shape}, nan)"), Vb(f"full({shape}, inf)"), Vb(f"shifted(arr({shape}), nan)")]
    return out


def t_magnitude_mask(d: Draw, backend: str) -> Case:
    shape = tuple(d.int(1, 4) for _ in range(d.int(1, 3)))
    dt = d.pick(["float64", "float32", "int32", "uint8"])
    dens = d.pick(["0.0", "0.3", "0.5", "1.0", "1"])
    ax = d.pick([OMIT, "None", "0", "-1", repr(tuple(range(len(shape))))])
    nd = len(shape)
    bads = {"a": _arr_bads_pruning(shape), "density": density_bads(),
            "axis_groups": [T("True"), T("2.5"), T("'0'"), Vb(str(nd)), Vb(str(-nd - 1)), Vb("(0, 0)"),
                            T("(0.5,)"), T("(True,)")]}

    def check(mask, v):
        a = np.asarray(v["a"])
        if mask.shape != a.shape or mask.dtype != np.bool_:
            return "mask shape/dtype"
        axes = v["axis_groups"]
        axes = () if axes is None else ((axes,) if isinstance(axes, int) else tuple(axes))
        axes = tuple(sorted(x % nd for x in axes))
        rest = tuple(i for i in range(nd) if i not in axes)
        gsize = math.prod(a.shape[i] for i in rest)
        k = pruning.kept_count(float(v["density"]), gsize)
        kept = mask.sum(axis=rest) if rest else mask.astype(int)
        if not np.all(kept == k):
            return f"kept {kept} != {k}"
        mag = np.abs(a.astype(np.float64))
        moved_m = np.transpose(mag, axes + rest).reshape(-1, gsize)
        moved_k = np.transpose(mask, axes + rest).reshape(-1, gsize)
        for gm, gk in zip(moved_m, moved_k):
            if gk.any() and (~gk).any() and gm[gk].min() < gm[~gk].max():
                return "a dropped entry is larger than a kept one"
        return None

    return make_case(d, "pruning.magnitude_mask", [("a", f"arr({shape}, {dt!r}, {d.seed()})", False),
                                                   ("density", dens, False), ("axis_groups", ax, True)],
                     bads, check)


def t_apply_mask(d: Draw, backend: str) -> Case:
    shape = tuple(d.int(1, 4) for _ in range(d.int(1, 3)))
    s = d.seed()
    bads = {"a": not_arrays(True) + dtype_bads(shape), "mask": [
        T("None"), T("'abc'"), T(repr(np.ones(shape, bool).tolist())), T(f"arr({shape})"), T(f"ints({shape}, 0, 2)"),
        Vb(f"ints({shape[:-1] + (shape[-1] + 1,)}, 0, 2).astype(bool)"), Vb("np.ones((), bool)")]}

    def check(res, v):
        return fail_unless(np.array_equal(res, np.where(v["mask"], v["a"], 0)) and res.dtype == v["a"].dtype,
                           "masked array")

    return make_case(d, "pruning.apply_mask", [("a", f"arr({shape}, 'float64', {s})", False),
                                               ("mask", f"ints({shape}, 0, 2, {s}).astype(bool)", False)],
                     bads, check)


def t_measured_density(d: Draw, backend: str) -> Case:
    shape = tuple(d.int(0 if d.bool() else 1, 4) for _ in range(d.int(1, 3)))
    nd = len(shape)
    ax = d.pick([OMIT, "None", "0", repr(tuple(range(nd)))])
    bads = {"a": not_arrays(True) + dtype_bads(shape),
            "axis_groups": [T("True"), T("'0'"), Vb(str(nd)), Vb("(0, 0)"), T("(1.5,)")]}

    def check(res, v):
        a = v["a"]
        if v["axis_groups"] is None:
            return fail_unless(res == ((a != 0).mean() if a.size else 0.0), "density")
        return None

    return make_case(d, "pruning.measured_density", [("a", f"sparse_U({shape}, seed={d.seed()})", False),
                                                     ("axis_groups", ax, True)], bads, check)


def t_kept_count(d: Draw, backend: str) -> Case:
    dens, size = d.pick(["0.0", "0.25", "0.5", "1.0", "np.float32(0.5)"]), d.int(0, 50)
    bads = {"density": density_bads(), "size": [T("True"), T("2.5"), T("'3'"), T("None"), Vb("-1"), T("np.float64(3)")]}
    return make_case(d, "pruning.kept_count", [("density", dens, False), ("size", str(size), False)], bads,
                     lambda res, v: fail_unless(res == math.floor(float(v["density"]) * size + 0.5), f"count {res}"))


def t_prune_spatial(d: Draw, backend: str) -> Case:
    shape = (d.int(1, 3), d.int(1, 3)) + (d.pick([1, 3]),) * d.pick([2, 3])
    bads = {"w": _arr_bads_pruning(shape) + [Vb("arr((3, 3))"), Vb("arr((3,))")], "density": density_bads()}

    def check(res, v):
        wp, mask = res
        k = pruning.kept_count(v["density"], v["w"].size)
        return fail_unless(mask.sum() == k and np.array_equal(wp, np.where(mask, v["w"], 0)), "pruned w")

    return make_case(d, "pruning.prune_spatial", [("w", f"arr({shape}, seed={d.seed()})", False),
                                                  ("density", d.pick(["0.3", "0.5", "1.0", "0.0"]), False)],
                     bads, check)


def t_prune_winograd(d: Draw, backend: str) -> Case:
    shape = (d.pick([4, 9, 16]), d.int(1, 3), d.int(1, 3))
    pp = d.pick([OMIT, "False", "True", "np.True_"])
    bads = {"U": _arr_bads_pruning(shape) + [Vb("arr((3, 3))"), Vb("arr((2, 2, 2, 2))")], "density": density_bads(),
            "per_position": bool_bads() + [T("1")]}

    def check(res, v):
        Up, mask = res
        if v["per_position"]:
            k = pruning.kept_count(v["density"], shape[1] * shape[2])
            ok = np.all(mask.sum(axis=(1, 2)) == k)
        else:
            ok = mask.sum() == pruning.kept_count(v["density"], v["U"].size)
        return fail_unless(ok and np.array_equal(Up, np.where(mask, v["U"], 0)), "pruned U")

    return make_case(d, "pruning.prune_winograd", [("U", f"arr({shape}, seed={d.seed()})", False),
                                                   ("density", d.pick(["0.3", "0.5", "1.0"]), False),
                                                   ("per_position", pp, True)], bads, check)


def t_prune_filters(d: Draw, backend: str) -> Case:
    K = d.int(1, 5)
    shape = (K, d.int(1, 3), 3, 3)
    use_keep = d.bool()
    keep = str(d.int(1, K)) if use_keep else OMIT
    frac = OMIT if use_keep else d.pick(["0.5", "1.0", "0.01"])
    bads = {"w": _arr_bads_pruning(shape) + [Vb("arr((3,))"), Vb(f"arr({(0,) + shape[1:]})"),
                                             Vb(f"arr({(K, 0, 3, 3)})")],
            "keep": [T("True"), T("2.5"), T("'2'"), Vb("0"), Vb(str(K + 1)), Vb("-1")] if use_keep else [
                E("2")],  # both given
            "keep_fraction": [Vb("0.0"), Vb("1.5"), Vb("nan"), T("'0.5'"), T("True")] if not use_keep else [E("0.5")]}

    def check(res, v):
        wk, idx = res
        w = v["w"]
        n = int(v["keep"]) if v["keep"] is not None else max(1, pruning.kept_count(v["keep_fraction"], K))
        norms = np.sqrt((w.reshape(K, -1) ** 2).sum(1))
        ok = (len(idx) == n and np.array_equal(wk, w[idx]) and list(idx) == sorted(idx)
              and (n == K or norms[idx].min() >= np.delete(norms, idx).max()))
        return fail_unless(ok, "kept filters")

    return make_case(d, "pruning.prune_filters", [("w", f"arr({shape}, seed={d.seed()})", False),
                                                  ("keep", keep, False), ("keep_fraction", frac, True)], bads, check)


def t_drop_input_channels(d: Draw, backend: str) -> Case:
    C = d.int(1, 5)
    shape = (d.int(1, 3), C, 3, 3)
    idx = sorted(set(d.int(0, C - 1) for _ in range(d.int(1, C))))
    idx_src = d.pick([repr(idx), f"np.array({idx})", f"np.array({idx}, 'int32')"])
    bads = {"w_next": not_arrays(True) + dtype_bads(shape) + [Vb("arr((3,))")],
            "kept_indices": [T("None"), T("'abc'"), T("[0.5]"), T("np.array([True])"), Vb("[[0]]"), Vb(f"[{C}]"),
                             Vb("[-1]"), Vb("[0, 0]"), E("_Obj()")]}
    return make_case(d, "pruning.drop_input_channels", [("w_next", f"arr({shape}, seed={d.seed()})", False),
                                                        ("kept_indices", idx_src, False)], bads,
                     lambda res, v: fail_unless(np.array_equal(res, v["w_next"][:, idx]), "channels"))


# --------------------------------------------------------------------------- sparse


def t_csr_init(d: Draw, backend: str) -> Case:
    shape = (d.int(1, 4), d.int(1, 3), d.int(1, 3))
    dt = d.pick(["float32", "float64"])
    s = d.seed()
    parts = f"csr_parts({shape}, {dt!r}, {s})"
    rp, ci, va = (f"{parts}[{i}]" for i in range(3))
    bads = {
        "row_ptr": [T("None"), T(f"{rp}.tolist()"), T(f"{rp}.astype('int64')"), Vb(f"{rp}[:, :-1].copy()"),
                    Vb(f"{rp}.ravel()"), Vb(f"shifted({rp}, 1, 0)"), Vb(f"shifted({rp}, -1)"), Vb(f"shifted({rp}, 5)"),
                    Vb(f"np.repeat({rp}, 2, axis=1)[:, ::2]")],
        "col_idx": [T("None"), T(f"{ci}.astype('int64')"), T(f"{ci}.tolist()"), Vb(f"{ci}[:, None]"),
                    Vb(f"np.append({ci}, np.int32(0))"), E(f"shifted({ci}, {shape[2] + 3}) if {ci}.size else "
                                                           f"np.array([0], 'int32')", ("col_idx", "values", "row_ptr")),
                    Vb(f"shifted({ci}, -100) if {ci}.size else np.array([-1], 'int32')",
                       ("col_idx", "values", "row_ptr"))],
        "values": [T("None"), T(f"{va}.astype('int32')"), T(f"{va}.astype('complex64')"), T(f"{va}.tolist()"),
                   Vb(f"{va}[:, None]"), Vb(f"np.append({va}, {va}.dtype.type(1))"),
                   Odd(f"np.full_like({va}, nan)")],
        "shape": [T(repr(list(shape))), E(repr(shape[:2])), T(repr(shape[:2] + (2.5,))), T(repr((True,) + shape[1:])),
                  Vb(repr((-1,) + shape[1:])), E(repr((shape[0] + 1,) + shape[1:]), ("row_ptr", "shape")),
                  Vb(repr((10**6, 10**6, 10))), Vb(repr((1, 1, 2**40))), T("None"), T("'abc'")],
    }

    def check(c, v):
        U = ev(f"sparse_U({shape}, {dt!r}, {s})")
        return fail_unless(np.array_equal(c.to_dense(), U) and c.dtype == np.dtype(dt), "to_dense")

    return make_case(d, "BatchedCSR", [("row_ptr", rp, False), ("col_idx", ci, False), ("values", va, False),
                                       ("shape", repr(shape), False)], bads, check)


def t_csr_from_dense(d: Draw, backend: str) -> Case:
    shape = (d.int(1, 4), d.int(1, 3), d.int(1, 3))
    dt = d.pick(["float32", "float64", "float16", "int32", "bool"])
    s = d.seed()
    use_mask = d.bool()
    mask = f"ints({shape}, 0, 2, {s + 7}).astype(bool)" if use_mask else OMIT
    bads = {"U": not_arrays(True) + rank_bads(shape, "float64") + [T(f"arr({shape}, 'complex64')"),
                                                                    T(f"arr({shape}, 'U3')"), T(f"arr({shape}, 'longdouble')")],
            "mask": [T("'abc'"), T(f"ints({shape}, 0, 2)"), T(f"arr({shape})"), Vb(f"np.ones({shape[:2]}, bool)"),
                     T(repr(np.ones(shape, bool).tolist()))]}

    def check(c, v):
        U = v["U"]
        M = v["mask"] if v["mask"] is not None else U != 0
        ref = np.where(M, U, 0).astype(np.float64)
        exp_dt = {"float32": np.float32, "float16": np.float32}.get(dt, np.float64)
        return fail_unless(np.array_equal(c.to_dense().astype(np.float64), ref) and c.dtype == exp_dt
                           and c.nnz == int(M.sum()), "from_dense")

    return make_case(d, "BatchedCSR.from_dense", [("U", f"sparse_U({shape}, {dt!r}, {s})", False),
                                                  ("mask", mask, True)], bads, check)


def t_csr_methods(d: Draw, backend: str) -> Case:
    shape = (d.int(1, 4), d.int(1, 3), d.int(1, 3))
    s = d.seed()
    base = f"csr_of({shape}, 'float64', {s})"
    meth = d.pick(["astype", "to_dense", "to_host", "validate", "nnz_per_position", "density_per_position",
                   "row_nnz", "to_device"])
    U = ev(f"sparse_U({shape}, 'float64', {s})")
    if meth == "astype":
        bads = {"dtype": [T("'abc'"), T("'int32'"), T("np.complex64"), T("_Obj()"), Odd("None")]}
        return make_case(d, f"{base}.astype", [("dtype", d.pick(["'float32'", "np.float64"]), False)], bads, target="BatchedCSR.astype", check=
                         lambda c, v: fail_unless(np.allclose(c.to_dense(), U) and c.dtype == np.dtype(v["dtype"]),
                                                  "astype"))
    if meth == "to_device":  # no GPU here: a clear BackendUnavailableError; with one, a device copy
        kind = "odd" if _cuda_ok() else "bad"
        return Case("BatchedCSR.to_device", f"{base}.to_device()", "(no GPU)", Bad("", None, ("to_device", "CuPy", "GPU"),
                                                                                     kind))
    checks = {
        "to_dense": lambda r: np.array_equal(r, U),
        "to_host": lambda r: np.array_equal(r.to_dense(), U),
        "validate": lambda r: r is None,
        "nnz_per_position": lambda r: np.array_equal(r, (U != 0).sum(axis=(1, 2))),
        "density_per_position": lambda r: np.allclose(r, (U != 0).mean(axis=(1, 2))),
        "row_nnz": lambda r: np.array_equal(r, (U != 0).sum(axis=2)),
    }
    return Case("BatchedCSR." + meth, f"{base}.{meth}()", None, None,
                lambda r, f=checks[meth]: fail_unless(f(r), meth))


def _cuda_ok() -> bool:
    from magma_wino import _backend

    cp = _backend.cupy_module()
    try:
        return bool(cp is not None and cp.is_available())
    except Exception:
        return False


# --------------------------------------------------------------------------- cost


def _brute_matvec(T_) -> tuple[int, int]:
    rows = [[Fraction(v) for v in row] for row in T_]
    return (sum(v not in (0, 1, -1) for row in rows for v in row),
            sum(max(sum(v != 0 for v in row) - 1, 0) for row in rows))


def t_matvec_cost(d: Draw, backend: str) -> Case:
    n, k = d.int(1, 4), d.int(1, 4)
    vals = [[d.pick([0, 1, -1, 2, "1/2"]) for _ in range(k)] for _ in range(n)]
    good = d.pick([repr([[Fraction(v) for v in row] for row in vals]),
                   f"np.array({[[float(Fraction(v)) for v in row] for row in vals]})"])
    bads = {"T": [T("5"), T("None"), E("'abc'"), Vb("[]"), Vb("[[]]"), Vb("[[1, 2], [3]]"), E("[[1, nan]]"),
                  E("[[inf]]"), T("[[None]]"), T("[[1+2j]]"), E("np.array([[nan, 1.0]])"), Vb("np.zeros((0, 3))"),
                  Vb("np.zeros((2, 2, 2))"), Vb("np.zeros(3)"), T("np.ones((2, 2), complex)"), T("[5, 6]"),
                  T("np.array([['a']])"), Odd("[[True, False]]"), Odd("[['1/2']]")]}
    return make_case(d, "cost.matvec_cost", [("T", good, False)], bads,
                     lambda res, v: fail_unless(tuple(res) == _brute_matvec(np.asarray(v["T"], dtype=object)),
                                                f"counts {res}"))


def t_transform_cost(d: Draw, backend: str) -> Case:
    m, r = d.int(1, 4), d.int(1, 3)
    which = d.pick([0, 1, 2])
    good = f"transforms.winograd({m}, {r}).exact()[{which}]"
    nd = d.pick([1, 2, 3])
    bads = {"T": [T("5"), T("None"), Vb("[]"), Vb("[[1, 2], [3]]"), E("[[nan]]"), Vb("np.zeros((0, 2))"),
                  Vb("np.zeros(3)")],
            "ndim": [T("True"), T("2.0"), T("'2'"), T("None"), Vb("0"), Vb("4"), Vb("-1")]}

    def check(res, v):
        mat = v["T"]
        o, i = len(mat), len(mat[0])
        cnt = sum(o**j * i ** (nd - 1 - j) for j in range(nd))
        mu, ad = _brute_matvec(mat)
        return fail_unless(tuple(res) == (mu * cnt, ad * cnt, cnt), f"counts {res}")

    return make_case(d, "cost.transform_cost", [("T", good, False), ("ndim", str(nd), False)], bads, check)


def t_layer_cost(d: Draw, backend: str) -> Case:
    nd = d.pick([2, 3])
    r = d.pick([1, 3])
    m = d.pick([2, 4] if r == 3 else [1, 2])
    a = m + r - 1
    N, C, K = d.int(1, 3), d.int(1, 4), d.int(1, 4)
    s = d.int(r, 8)
    pad = d.int(0, r - 1)
    variant = d.pick(["dense", "spatial", "winograd", "winograd_relu"])
    params = [("N", str(N), False), ("C", str(C), False), ("K", str(K), False), ("spatial_size", str(s), False),
              ("r", str(r), False), ("m", str(m), False), ("padding", str(pad), False),
              ("variant", repr(variant), True), ("ndim", str(nd), True)]
    wd = OMIT
    if variant != "dense":
        wd = d.pick(["0.3", "1.0", "0.0"])
    ad = d.pick(["0.5", "1.0"]) if variant == "winograd_relu" else OMIT
    params += [("weight_density", wd, True), ("activation_density", ad, True), ("bias", d.pick([OMIT, "True", "False"]),
                                                                               True)]
    winovar = variant in ("winograd", "winograd_relu")
    bads = {"N": int_bads(huge_ok=True), "C": int_bads(huge_ok=True), "K": int_bads(huge_ok=True),
            "spatial_size": [T("None"), T("2.5"), T("'abc'"), Vb("0"), Vb("-3"), Vb(repr((s,) * (nd + 1))),
                             T(repr((2.5,) * nd)), T("True")] + (
                [E(f"(1,) * {nd}", ("spatial_size", "r"))] if 2 * pad < r - 1 else []),
            "r": [T("True"), T("2.5"), T("'3'"), Vb("0"), E("10**9", ("r", "spatial_size"))],
            "m": [T("True"), T("2.5"), Vb("0"), Vb("10**9")],
            "padding": [T("None"), T("1.5"), T("'1'"), Vb("-1"), Vb(repr((0,) * (nd + 1))), T("True")],
            "variant": [Vb("'sparse'"), E("None"), E("5")],
            "ndim": [T("True"), T("2.0"), T("'2'"), Vb("1"), Vb("4"), T("None")],
            "weight_density": density_bads() + ([Vb("0.5")] if variant == "dense" else []),
            "activation_density": [Vb("1.5"), Vb("nan"), E("'abc'"), E("None"), Vb("[0.5, 0.5]")] + (
                [Vb("0.5")] if variant != "winograd_relu" else []),
            "bias": [T("'yes'"), T("2"), T("None")],
            "points": points_bads(a) if a > 2 else [T("'abc'"), T("5")],
            "nnz": ([Vb("-1"), Vb(str(a**nd * K * C + 1)), E("True"), E("2.5"), E("'abc'"), E("[1, [2]]"),
                     E(repr([1] * (a**nd + 1))), Vb(repr([-1] * a**nd)), E(repr([0.5] * a**nd))]
                    if winovar else [Vb("3")]),
            "U": ([E("'abc'"), E("5"), Vb(f"arr({(a**nd, K, C + 1)})"), Vb(f"arr({(a**nd, K)})"), E("_Obj()")]
                  if winovar else [Vb(f"arr({(a**nd, K, C)})")]),
            "V": [Vb(f"arr({(a**nd, C, 5)})")]}
    if variant == "dense":
        bads["weight_density"] = [Vb("0.5"), Vb("1.5"), T("'x'")]
    if not winovar:
        bads["nnz"] = [Vb("3")]
    bads = {k: v for k, v in bads.items() if v}

    def check(lc, v):
        sp = (s,) * nd
        out = tuple(x + 2 * pad - r + 1 for x in sp)
        P = N * math.prod(-(-o // m) for o in out)
        ok = (lc.direct_mults == N * K * C * r**nd * math.prod(out) and lc.P == P and lc.alpha == a)
        if variant in ("dense", "spatial"):
            ok = ok and lc.product_mults == a**nd * K * C * P
        return fail_unless(ok, "counts")

    params += [("nnz", OMIT, True), ("U", OMIT, True), ("V", OMIT, True), ("points", OMIT, True)]
    return make_case(d, "cost.layer_cost", params, bads, check)


def t_cost_table(d: Draw, backend: str) -> Case:
    nd = d.pick([2, 3])
    layers = [tuple([d.int(1, 4), d.int(1, 4)] + [d.int(3, 6)] * nd) for _ in range(d.int(1, 3))]
    ms = d.pick(["[2]", "(2, 4)", "[2, 3]"])
    bads = {"layers": [Vb("[]"), T("5"), T("None"), E("[(3,)]"), E("[(3, 4)]"), E("[(3, 4, 5, 6, 7, 8)]"),
                       T("['abc']"), E("[(0, 4, 8, 8)]"), T("[(3.5, 4, 8, 8)]"), E("[(3, 4, 0, 0)]"),
                       T("[(True, 4, 8, 8)]"), T("[None]"), T("[5]")],
            "ms": [T("5"), T("None"), E("[0]"), T("[2.5]"), T("['a']"), T("[True]"), Vb("[20]")],
            "configs": [T("5"), E("[('dense', 1.0)]"), E("[('sparse', 1.0, 1.0)]"), E("[('winograd', 1.5, 1.0)]"),
                        T("[None]"), T("[('dense', 'x', 1.0)]")],
            "N": [T("True"), Vb("0"), T("2.5")], "r": [T("True"), Vb("0"), T("'3'")], "padding": [Vb("-1"), T("None")],
            "ndim": [T("True"), Vb("4"), T("'2'")],
            "per_layer": bool_bads(), "total": bool_bads()}

    def check(rows, v):
        nrow = len(ev(ms)) * len(cost.DEFAULT_CONFIGS) * (len(layers) + 1)
        return fail_unless(len(rows) == nrow, f"{len(rows)} rows, expected {nrow}")

    return make_case(d, "cost.cost_table", [("layers", repr(layers), False), ("ms", ms, False),
                                            ("configs", OMIT, True), ("N", OMIT, True), ("r", OMIT, True),
                                            ("padding", OMIT, True), ("ndim", OMIT, True),
                                            ("per_layer", OMIT, True), ("total", OMIT, True)], bads, check)


def t_format_table(d: Draw, backend: str) -> Case:
    rows = "cost.cost_table([(3, 4, 8, 8)], [2])"
    cols = d.pick([OMIT, "['layer', 'F', 'mults/out']", "('layer',)"])
    bads = {"rows": [T("'abc'"), T("5"), T("None"), T("['abc']"), T("[None]"), T("[{'a': 1}, 5]"), T("{'a': 1}")],
            "columns": [T("5"), T("'layer'"), T("[1, 2]"), T("[None]")],
            "markdown": bool_bads()}
    return make_case(d, "cost.format_table", [("rows", rows, False), ("columns", cols, True),
                                              ("markdown", d.pick([OMIT, "True", "False"]), True)], bads,
                     lambda res, v: fail_unless(isinstance(res, str) and "total" in res, "table text"))


# --------------------------------------------------------------------------- accuracy


def _mr_bads(other: int) -> list[Bad]:
    return [T("True"), T("2.5"), T("'2'"), T("None"), Vb("0"), Vb("-1")]


def t_tolerance(d: Draw, backend: str) -> Case:
    m, r = d.int(1, 4), d.pick([1, 2, 3])
    dt = d.pick(["np.float32", "'float64'", "np.dtype('float32')"])
    nd = d.pick([OMIT, "2", "3", "1"])
    bads = {"dtype": [T("'abc'"), T("np.int32"), T("'int64'"), T("5"), T("_Obj()"), T("'complex64'")],
            "m": _mr_bads(r), "r": _mr_bads(m), "reduction_len": [Vb("-9"), Vb("0"), T("True"), T("2.5"), T("'9'"),
                                                                 T("None")],
            "ndim": [T("True"), T("2.5"), T("'2'"), Vb("0"), Vb("4")], "points": [T("'abc'"), Vb("[0, 1, 2, 3, 4, 5, 6]")]}

    def check(t, v):
        return fail_unless(isinstance(t, float) and 0 < t < 1, f"tolerance {t}")

    return make_case(d, "accuracy.tolerance", [("dtype", dt, False), ("m", str(m), False), ("r", str(r), False),
                                               ("reduction_len", str(d.int(1, 100)), False), ("ndim", nd, False),
                                               ("points", OMIT, True)], bads, check)


def t_growth_rounding(d: Draw, backend: str) -> Case:
    m, r = d.int(1, 4), d.pick([1, 2, 3])
    f = d.pick(["accuracy.growth_factor", "accuracy.rounding_depth"])
    bads = {"m": _mr_bads(r), "r": _mr_bads(m), "ndim": [T("True"), T("2.5"), T("'2'"), Vb("0"), Vb("4"), T("None")]}
    check = (lambda res, v: fail_unless(res >= 1, f"{res}")) if f.endswith("factor") else (
        lambda res, v: fail_unless(res == v["ndim"] * (r + 2 * (m + r - 1)) + 1, f"{res}"))
    return make_case(d, f, [("m", str(m), False), ("r", str(r), False), ("ndim", str(d.pick([1, 2, 3])), False)],
                     bads, check)


def t_rel_err(d: Draw, backend: str) -> Case:
    f = d.pick(["accuracy.rel_err", "accuracy.mean_rel_err", "accuracy.elementwise_rel_err"])
    shape = tuple(d.int(1, 4) for _ in range(d.int(1, 3)))
    s = d.seed()
    y = f"arr({shape}, seed={s})"
    yr = f"arr({shape}, seed={s + 1})"
    if d.bool():
        y += ".tolist()"
    bads = {}
    for name in ("y", "y_ref"):
        bads[name] = [T("None"), T("'abc'"), T("_Obj()"), T(f"arr({shape}, 'complex64')"),
                      Vb(f"arr({shape[:-1] + (shape[-1] + 1,)})", ("y", "y_ref")), Vb("arr((5, 7, 3, 2))", ("y", "y_ref")),
                      T(f"arr({shape}, 'U3')"), Odd(f"full({shape}, nan)"), Odd(f"arr({tuple(0 for _ in shape)})",
                                                                                 ("y", "y_ref"))]

    def check(res, v):
        a, b = np.asarray(v["y"], np.float64), np.asarray(v["y_ref"], np.float64)
        if f.endswith(".rel_err"):
            ref = np.abs(a - b).max() / np.abs(b).max()
        elif f.endswith("mean_rel_err"):
            ref = np.abs(a - b).mean() / np.abs(b).mean()
        else:
            ref = (np.abs(a - b) / np.maximum(np.abs(b), np.finfo(np.float32).tiny)).max()
        return fail_unless(math.isclose(res, ref, rel_tol=1e-12), f"{res} != {ref}")

    return make_case(d, f, [("y", y, False), ("y_ref", yr, False)], bads, check)


def t_point_set(d: Draw, backend: str) -> Case:
    m, r = d.int(1, 4), d.pick([1, 2, 3])
    name = d.pick(accuracy.POINT_SETS)
    bads = {"name": [Vb("'chebyshev'"), T("None"), T("5"), T("['default']")],
            "m": _mr_bads(r) + [Vb("20")], "r": _mr_bads(m) + [Vb("20")]}

    def check(res, v):
        if v["name"] == "default":
            return fail_unless(res is None, "default")
        return fail_unless(len(res) == m + r - 2 and len(set(res)) == len(res), f"{res}")

    return make_case(d, "accuracy.point_set", [("name", repr(name), False), ("m", str(m), False),
                                               ("r", str(r), False)], bads, check)


def t_vgg16_layers(d: Draw, backend: str) -> Case:
    sp = d.pick(["28", "14", "224", OMIT])
    names = d.pick([OMIT, "None", "['conv1_1', 'conv5_3']"])
    bads = {"spatial": [T("'a'"), T("None"), T("2.5"), T("True"), Vb("0"), Vb("-5")],
            "names": [T("'conv1_1'"), T("5"), Vb("['conv9_9']"), T("[1]")]}

    def check(res, v):
        return fail_unless(isinstance(res, list) and res and all(lay["H"] >= 1 for lay in res), "layers")

    return make_case(d, "accuracy.vgg16_layers", [("spatial", sp, False), ("names", names, True)], bads, check)


# --------------------------------------------------------------------------- conv / plans


def _layer_cfg(d: Draw, nd: int):
    c = _conv_cfg(d, nd)
    c["xs"] = (c["N"], c["C"]) + c["sp"]
    c["ws"] = (c["K"], c["C"]) + (c["r"],) * nd
    c["out"] = (c["N"], c["K"]) + tuple(s + 2 * c["pad"] - c["r"] + 1 for s in c["sp"])
    c["alpha"] = c["m"] + c["r"] - 1
    c["P"] = c["N"] * math.prod(-(-o // c["m"]) for o in c["out"][2:])
    return c


def backend_bads() -> list[Bad]:
    return [Vb("'gpu'"), Vb("None", ("backend",)), Vb("0"), Vb("'CUDA'"),
            Bad("'cuda'", None, ("backend", "w", "x", "U", "bias", "csr"))]


def out_bads(c, shape, kernel: bool, names=("out",)) -> list[Bad]:
    dt = c["dt"]
    other = "float64" if dt == "float32" else "float32"
    out = [E(f"full({shape[:-1] + (shape[-1] + 1,)}, nan, {dt!r})"), T(f"full({shape}, nan, {other!r})"),
           Vb(f"ro({shape}, {dt!r})"), E("'abc'"), E("5"), E(f"full({shape}, nan, {dt!r}).tolist()"),
           E(f"full({shape[:-1]}, nan, {dt!r})")]
    if kernel:
        out += nc_bad(shape, dt)
    for b in out:
        b.names = names
    return out


def t_conv(d: Draw, backend: str) -> Case:
    nd = d.pick([2, 3])
    c = _layer_cfg(d, nd)
    dt, kern = c["dt"], backend != "numpy"
    bias = f"arr(({c['K']},), {dt!r}, 5)" if d.bool() else OMIT
    out = f"full({c['out']}, nan, {dt!r})" if d.bool() else OMIT
    other = "float64" if dt == "float32" else "float32"
    bads = {"x": x_bads(c, True, kern) + [T(f"arr({c['xs']}, {other!r})"),
                                           Vb(f"arr({(c['N'], c['C'] + 1) + c['sp']}, {dt!r})", ("x", "w"))],
            "w": w_bads(c, True, kern, layer=True) + [E(f"arr({c['ws']}, {other!r})", ("w", "x", "weights"))],
            "bias": bias_bads(c, True, kern) + [T(f"arr(({c['K']},), {other!r})")],
            "padding": padding_bads(c, nd, True), "m": m_bads(c["r"]), "backend": backend_bads(),
            "out": out_bads(c, c["out"], kern), "points": points_bads(c["alpha"])}
    f = "conv2d" if nd == 2 else "conv3d"
    return make_case(d, f, [("x", f"arr({c['xs']}, {dt!r}, {c['seed']})", False),
                            ("w", f"arr({c['ws']}, {dt!r}, {c['seed'] + 1})", False), ("bias", bias, True),
                            ("padding", str(c["pad"]), True), ("m", str(c["m"]), True),
                            ("backend", repr(backend), True), ("out", out, True), ("points", OMIT, True)],
                     bads, chk_conv(c, nd))


def _cls(nd: int) -> str:
    return "WinogradConv2d" if nd == 2 else "WinogradConv3d"


def t_plan_init(d: Draw, backend: str) -> Case:
    nd = d.pick([2, 3])
    c = _layer_cfg(d, nd)
    dt, kern = c["dt"], backend != "numpy"
    bias = f"arr(({c['K']},), {dt!r}, 5)" if d.bool() else OMIT
    relu = d.pick([OMIT, "None", "'spatial'", "'winograd'"])
    pts = OMIT
    if d.pick([0, 0, 1]) and c["alpha"] > 2:
        pts = repr([str(p) for p in accuracy.point_set("reciprocals", c["m"], c["r"])][::-1])
    gen = d.pick([OMIT, "True", "False"])
    other = "float64" if dt == "float32" else "float32"
    bads = {"w": w_bads(c, True, kern, layer=True), "bias": bias_bads(c, True, kern) + [T(f"arr(({c['K']},), {other!r})")],
            "padding": padding_bads(c, nd, True), "m": m_bads(c["r"]), "backend": backend_bads(),
            "relu": [Vb("'before'"), E("True"), Vb("'SPATIAL'"), E("[None]")], "points": points_bads(c["alpha"]),
            "generic": bool_bads()}
    xsrc = f"arr({c['xs']}, {dt!r}, {c['seed'] + 2})"

    def check(y, v):
        v = dict(v, x=ev(xsrc))
        rl = ev(relu) if relu is not OMIT else None
        return chk_conv(c, nd, relu=rl, U=(lambda vv: reference.filter_transform(
            np.asarray(vv["w"], np.float64), c["m"], vv.get("points"))) if rl == "winograd" else None)(y, v)

    case = make_case(d, _cls(nd), [("w", f"arr({c['ws']}, {dt!r}, {c['seed'] + 1})", False), ("bias", bias, True),
                                   ("padding", str(c["pad"]), True), ("m", str(c["m"]), True),
                                   ("backend", repr(backend), True), ("relu", relu, True), ("points", pts, True),
                                   ("generic", gen, True)], bads, check)
    case.src = f"{case.src}({xsrc})"  # run the plan once (a valid x)
    return case


def t_from_spatial(d: Draw, backend: str) -> Case:
    nd = d.pick([2, 3])
    c = _layer_cfg(d, nd)
    dt, kern = c["dt"], backend != "numpy"
    prune = d.pick([OMIT, "None", "0.5", "0.3", "1.0"])
    bads = {"w": w_bads(c, True, kern, layer=True) + [Vb(f"full({c['ws']}, nan, {dt!r})")],
            "prune": prune_bads(), "m": m_bads(c["r"]), "backend": backend_bads(),
            "padding": padding_bads(c, nd, True)}
    if prune in (OMIT, "None"):  # NaN in w is only refused when pruning
        bads["w"] = bads["w"][:-1]
    xsrc = f"arr({c['xs']}, {dt!r}, {c['seed'] + 2})"

    def check(y, v):
        w = v["w"]
        if v["prune"] is not None:
            w = pruning.prune_spatial(w, v["prune"])[0]
        return chk_conv(c, nd)(y, dict(v, x=ev(xsrc), w=w))

    case = make_case(d, f"{_cls(nd)}.from_spatial", [
        ("w", f"arr({c['ws']}, {dt!r}, {c['seed'] + 1})", False), ("prune", prune, True),
        ("padding", str(c["pad"]), True), ("m", str(c["m"]), True), ("backend", repr(backend), True)], bads, check)
    case.src = f"{case.src}({xsrc})"
    return case


def t_from_winograd(d: Draw, backend: str) -> Case:
    nd = d.pick([2, 3])
    c = _layer_cfg(d, nd)
    dt, kern = c["dt"], backend != "numpy"
    a = c["alpha"]
    Us = (a**nd, c["K"], c["C"])
    s = c["seed"]
    Usrc = f"sparse_U({Us}, {dt!r}, {s})"
    how = d.pick(["U", "mask", "prune", "csr"])
    U = Usrc if how != "csr" else OMIT
    csr = f"csr_of({Us}, {dt!r}, {s})" if how == "csr" else OMIT
    mask = f"ints({Us}, 0, 2, {s + 3}).astype(bool)" if how == "mask" else OMIT
    prune = d.pick(["0.3", "0.5", "1.0"]) if how == "prune" else OMIT
    pp = d.pick(["True", "False"]) if how == "prune" else OMIT
    sp = d.pick([OMIT, "True", "False", "'auto'"])
    relu = d.pick([OMIT, "None", "'winograd'", "'spatial'"])
    bias = f"arr(({c['K']},), {dt!r}, 5)" if d.bool() else OMIT
    bads = {"r": [T("None", ("r",)), T("2.5"), T("'3'"), T("True"), Vb("0"),
                  E(str(c["r"] + 1), ("r", "U", "csr"))],
            "m": [Vb("0"), T("2.5"), E(str(c["m"] + 1), ("m", "U", "csr"))],
            "sparse": [Vb("'yes'"), Vb("None"), Odd("1")],
            "relu": [Vb("'before'")], "backend": backend_bads(), "padding": padding_bads(c, nd, True),
            "bias": bias_bads(c, True, kern)}
    if how != "csr":
        bads["U"] = not_arrays(True) + rank_bads(Us, dt) + dtype_bads(Us) + [
            Vb(f"arr({(a**nd + 1, c['K'], c['C'])}, {dt!r})"), T(f"arr({Us}, 'int32')", ("U", "weights")),
            Vb(f"arr({(a**nd, 0, c['C'])}, {dt!r})")]
        if kern:
            bads["U"] += nc_bad(Us, dt)
        bads["csr"] = [Vb(f"csr_of({Us}, {dt!r})", ("U", "csr"))]
    else:
        bads["csr"] = [T("'abc'"), T(f"arr({Us})"), E(f"csr_of({(a**nd + 1, c['K'], c['C'])}, {dt!r})", ("csr", "U")),
                       E(f"csr_of({(a**nd, c['K'], c['C'] + 1)}, {dt!r})", ("csr", "C", "x"))]
        bads["U"] = [Vb(Usrc, ("U", "csr"))]
        bads["mask"] = [Vb(f"np.ones({Us}, bool)", ("mask", "csr"))]
        bads["prune"] = [Vb("0.5", ("prune", "csr"))]
    if how == "mask":
        bads["mask"] = [T(f"ints({Us}, 0, 2)"), Vb(f"np.ones({Us[:-1] + (Us[-1] + 1,)}, bool)"), E("'abc'"),
                        T(f"arr({Us})")]
        bads["prune"] = [Vb("0.5", ("prune", "mask"))]
    if how == "prune":
        bads["prune"] = prune_bads()
        bads["per_position"] = bool_bads()
        bads["mask"] = [Vb(f"np.ones({Us}, bool)", ("prune", "mask"))]
        bads["U"] = bads["U"] + [Vb(f"full({Us}, nan, {dt!r})")]
    xsrc = f"arr({c['xs']}, {dt!r}, {s + 2})"

    def check(y, v):
        UU = ev(Usrc)
        if how == "mask":
            UU = np.where(v["mask"], UU, 0)
        elif how == "prune":
            UU = pruning.prune_winograd(UU, v["prune"], per_position=v["per_position"])[0]
        return chk_conv(c, nd, relu=v["relu"], U=lambda vv: UU)(y, dict(v, x=ev(xsrc)))

    case = make_case(d, f"{_cls(nd)}.from_winograd", [
        ("U", U, True), ("r", str(c["r"]), True), ("mask", mask, True), ("csr", csr, True), ("prune", prune, True),
        ("per_position", pp, True), ("bias", bias, True), ("padding", str(c["pad"]), True), ("m", str(c["m"]), True),
        ("backend", repr(backend), True), ("relu", relu, True), ("sparse", sp, True)], bads, check)
    case.src = f"{case.src}({xsrc})"
    return case


def _plan_src(c, nd, backend, bias=True) -> str:
    dt = c["dt"]
    b = f"arr(({c['K']},), {dt!r}, 5)" if bias else "None"
    return (f"(p := {_cls(nd)}(arr({c['ws']}, {dt!r}, {c['seed'] + 1}), {b}, {c['pad']}, {c['m']}, "
            f"{backend!r}))")


def t_plan_call(d: Draw, backend: str) -> Case:
    nd = d.pick([2, 3])
    c = _layer_cfg(d, nd)
    dt, kern = c["dt"], backend != "numpy"
    has_bias = d.bool()
    plan = _plan_src(c, nd, backend, has_bias)
    other = "float64" if dt == "float32" else "float32"
    meth = d.pick(["__call__", "transform_input", "activation_density", "multiply", "transform_output",
                   "out_shape"])
    xsrc = f"arr({c['xs']}, {dt!r}, {c['seed']})"
    xb = x_bads(c, True, kern) + [T(f"arr({c['xs']}, {other!r})"),
                                  Vb(f"arr({(c['N'], c['C'] + 1) + c['sp']}, {dt!r})")]
    wsrc = f"arr({c['ws']}, {dt!r}, {c['seed'] + 1})"
    bsrc = f"arr(({c['K']},), {dt!r}, 5)" if has_bias else None

    def ref_y(x):
        return _direct(np.asarray(x, np.float64), ev(wsrc), None if bsrc is None else ev(bsrc), c["pad"])

    a, P = c["alpha"] ** nd, c["P"]
    if meth == "__call__":
        out = f"full({c['out']}, nan, {dt!r})" if d.bool() else OMIT
        return make_case(d, plan, [("x", xsrc, False), ("out", out, True)],
                         {"x": xb, "out": out_bads(c, c["out"], kern)},
                         lambda y, v: close(y, ref_y(v["x"]), tol_of(dt)), target=f"{_cls(nd)}.__call__")
    if meth == "transform_input":
        return make_case(d, f"{plan}.transform_input", [("x", xsrc, False)], {"x": xb},
                         lambda V, v: close(V, reference.input_transform(v["x"], c["m"], c["r"], c["pad"]), tol_of(dt)),
                         target=f"{_cls(nd)}.transform_input")
    if meth == "activation_density":
        return make_case(d, f"{plan}.activation_density", [("x", xsrc, False)], {"x": xb},
                         lambda res, v: fail_unless(0 <= res <= 1, f"{res}"), target=f"{_cls(nd)}.activation_density")
    if meth == "out_shape":
        xs = c["xs"]
        bads = {"x_shape": [T("'abc'"), T("None"), T("5"), Vb(repr(xs[:2])), Vb(repr(xs + (3,))),
                            Vb(repr((xs[0], xs[1] + 1) + xs[2:])), T(repr(xs[:2] + (2.5,) * nd)),
                            Vb(repr(xs[:2] + (-10,) * nd)), Vb(repr((0,) + xs[1:])), T(repr((True,) + xs[1:]))]}
        if c["r"] > 1:
            bads["x_shape"].append(Vb(repr(xs[:2] + (1,) * nd)) if c["pad"] == 0 else Vb(repr(xs[:2] + (0,) * nd)))
        return make_case(d, f"{plan}.out_shape", [("x_shape", repr(xs), False)], bads,
                         lambda res, v: fail_unless(tuple(res) == c["out"], f"{res}"), target=f"{_cls(nd)}.out_shape")
    Vsrc = f"p.transform_input({xsrc})"
    if meth == "multiply":
        Vs = (a, c["C"], P)
        out = f"full({(a, c['K'], P)}, nan, {dt!r})" if d.bool() else OMIT
        bads = {"V": not_arrays(True) + rank_bads(Vs, dt) + [Vb(f"arr({(a + 1,) + Vs[1:]}, {dt!r})"),
                                                              Vb(f"arr({(a, c['C'] + 1, P)}, {dt!r})"),
                                                              T(f"arr({Vs}, {other!r})"), T(f"arr({Vs}, 'int32')"),
                                                              T(f"arr({Vs}, 'complex64')")]
                + (nc_bad(Vs, dt) + [Vb(f"huge({(a, c['C'], 2**40)}, {dt!r})")] if kern else []),
                "out": out_bads(c, (a, c["K"], P), kern)}

        def check(M, v):
            U = reference.filter_transform(ev(wsrc).astype(np.float64), c["m"])
            V = reference.input_transform(ev(xsrc).astype(np.float64), c["m"], c["r"], c["pad"])
            return close(M, U @ V, tol_of(dt))

        return make_case(d, f"{plan}.multiply", [("V", Vsrc, False), ("out", out, True)], bads, check,
                         target=f"{_cls(nd)}.multiply")
    # transform_output
    Msrc = f"p.multiply({Vsrc})"
    Ms = (a, c["K"], P)
    out = f"full({c['out']}, nan, {dt!r})" if d.bool() else OMIT
    xs = c["xs"]
    bads = {"M": not_arrays(True) + rank_bads(Ms, dt) + [Vb(f"arr({(a + 1,) + Ms[1:]}, {dt!r})"),
                                                          Vb(f"arr({(a, c['K'], P + 1)}, {dt!r})", ("M", "x_shape")),
                                                          T(f"arr({Ms}, {other!r})")]
            + (nc_bad(Ms, dt) if kern else []),
            "x_shape": [T("'abc'"), T("None"), Vb(repr(xs[:2])), Vb(repr((xs[0], xs[1] + 1) + xs[2:])),
                        T(repr(xs[:2] + (2.5,) * nd)), E(repr((10**9,) + xs[1:]), ("M", "x_shape")),
                        E(repr(xs[:2] + (10**9,) * nd), ("M", "x_shape")), T(repr((True,) + xs[1:]))],
            "out": out_bads(c, c["out"], kern)}
    return make_case(d, f"{plan}.transform_output", [("M", Msrc, False), ("x_shape", repr(xs), False),
                                                     ("out", out, True)], bads,
                     lambda y, v: close(y, ref_y(ev(xsrc)), tol_of(dt)), target=f"{_cls(nd)}.transform_output")


TARGETS = [t_winograd, t_default_points, t_matrices, t_ref_conv_direct, t_ref_winograd_conv, t_ref_filter_transform,
           t_ref_input_transform, t_ref_output_transform, t_ref_tile_grid, t_ref_from_U, t_magnitude_mask,
           t_apply_mask, t_measured_density, t_kept_count, t_prune_spatial, t_prune_winograd, t_prune_filters,
           t_drop_input_channels, t_csr_init, t_csr_from_dense, t_csr_methods, t_matvec_cost, t_transform_cost,
           t_layer_cost, t_cost_table, t_format_table, t_tolerance, t_growth_rounding, t_rel_err, t_point_set,
           t_vgg16_layers, t_conv, t_conv, t_plan_init, t_from_spatial, t_from_winograd, t_plan_call, t_plan_call,
           t_plan_call]


# --------------------------------------------------------------------------- running and judging


class Hang(BaseException):
    """A call ran past its time limit."""


def _on_alarm(signum, frame):
    raise Hang()


_WORD = "(?<![A-Za-z0-9_]){}(?![A-Za-z0-9_])"


def names_ok(msg: str, names: tuple[str, ...]) -> bool:
    return not names or any(re.search(_WORD.format(re.escape(n)), msg) for n in names)


def where(exc: BaseException) -> str:
    """file:line of the innermost frame inside magma_wino (where the exception was raised)."""
    loc = "?"
    for fr in traceback.extract_tb(exc.__traceback__):
        if f"{os.sep}magma_wino{os.sep}" in fr.filename:
            loc = f"magma_wino/{fr.filename.rsplit(os.sep + 'magma_wino' + os.sep, 1)[1]}:{fr.lineno}"
    return loc


def judge(case: Case, call_timeout: float) -> dict[str, Any] | None:
    """Run one call; None if it behaved, else a failure record."""
    bad = case.bad
    names = (bad.names if bad.names is not None else (case.broken,)) if bad else ()
    signal.setitimer(signal.ITIMER_REAL, call_timeout)
    t0 = time.perf_counter()
    try:
        try:
            result = ev(case.src)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    except Hang:
        return _record(case, f"hang: still running after {call_timeout} s", "?")
    except BaseException as exc:  # noqa: BLE001 - judging every exception is the point
        if isinstance(exc, KeyboardInterrupt):
            raise
        text = f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}"
        if bad is None:
            return _record(case, f"valid call raised {text}", where(exc))
        if not (type(exc) in (TypeError, ValueError) or isinstance(exc, ALLOWED[2:])):
            return _record(case, f"wrong exception type {text}", where(exc))
        if not names_ok(str(exc), names):
            return _record(case, f"message does not name {' / '.join(names)}: {text}", where(exc))
        if bad.expect is not None and not isinstance(exc, bad.expect):
            return _record(case, f"expected {bad.expect.__name__}, got {text}", where(exc))
        return None
    dt = time.perf_counter() - t0
    if bad is not None and bad.kind == "bad":
        return _record(case, f"accepted a bad {case.broken}: returned {_short(result)}", "-")
    if bad is None and case.check is not None:
        try:
            msg = case.check(result)
        except Exception as exc:  # noqa: BLE001
            msg = f"check of the result raised {type(exc).__name__}: {exc}"
        if msg:
            return _record(case, f"wrong result: {msg}", "-")
    if dt > call_timeout:
        return _record(case, f"slow: {dt:.1f} s", "-")
    return None


def _short(v: Any) -> str:
    if isinstance(v, np.ndarray):
        return f"ndarray{v.shape} {v.dtype}"
    s = repr(v)
    return s if len(s) < 80 else s[:77] + "..."


def _record(case: Case, why: str, loc: str) -> dict[str, Any]:
    return {"target": case.target, "broken": case.broken, "src": case.src, "why": why[:600], "where": loc}


def run_batch(seed: int, calls: int, backend: str, call_timeout: float = 20.0) -> dict[str, Any]:
    results: dict[str, Any] = {"seed": seed, "backend": backend, "calls": 0, "valid": 0, "broken": 0,
                               "failures": [], "targets": {}}

    ROUNDS.clear()
    ROUND_START[0] = max(seed - 1, 0) * math.ceil(calls / len(TARGETS))
    count = [0]

    @hypothesis_seed(seed)
    @settings(max_examples=calls, database=None, deadline=None, phases=[Phase.generate], derandomize=False,
              suppress_health_check=list(HealthCheck), print_blob=False)
    @given(st.integers(0, 2**64 - 1))
    def fuzz(call_seed):
        d = Draw(call_seed)
        builder = TARGETS[(count[0] + seed) % len(TARGETS)]  # every target in turn
        count[0] += 1
        case = builder(d, backend)
        print(f"> {case.src}", file=sys.stderr, flush=True)
        results["calls"] += 1
        results["valid" if case.bad is None else "broken"] += 1
        results["targets"][case.target] = results["targets"].get(case.target, 0) + 1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fail = judge(case, call_timeout)
        if fail is not None:
            results["failures"].append(fail)

    old = signal.signal(signal.SIGALRM, _on_alarm)
    try:
        fuzz()
    finally:
        signal.signal(signal.SIGALRM, old)
    return results


def _limit_memory(gib: float) -> None:
    try:
        import resource

        lim = int(gib * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (lim, lim))
    except (ImportError, ValueError, OSError):  # not on this platform
        pass


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--calls", type=int, default=200)
    p.add_argument("--backend", choices=BACKENDS, default="numpy")
    p.add_argument("--call-timeout", type=float, default=20.0, help="seconds before a call counts as a hang")
    p.add_argument("--memory-gib", type=float, default=6.0, help="address-space limit (0: none)")
    p.add_argument("--replay", metavar="SRC", help="run one call's source and print its outcome")
    a = p.parse_args(argv)
    if a.memory_gib and not _cuda_ok():  # CUDA reserves far more address space than it uses
        _limit_memory(a.memory_gib)
    if a.replay:
        try:
            print(_short(ev(a.replay)))
        except Exception as exc:  # noqa: BLE001
            print(f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}  [{where(exc)}]")
        return 0
    t0 = time.perf_counter()
    res = run_batch(a.seed, a.calls, a.backend, a.call_timeout)
    res["seconds"] = round(time.perf_counter() - t0, 2)
    for f in res["failures"]:
        print(f"FAIL [{f['where']}] {f['src']}\n     {f['why']}")
    print(json.dumps(res))
    return 1 if res["failures"] else 0


NAMESPACE.update(globals())

if __name__ == "__main__":
    sys.exit(main())
