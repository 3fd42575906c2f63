"""The emulator's 16-bit and TF32 numerics (kernels/emu/include/cuda_fp16.h, cuda_bf16.h,
mw_emu_tf32.h), bit for bit.

tests/emu/half_numerics.cpp is compiled with g++ into a shared library at test time and every
conversion and operation is compared with references that share no code with the headers:

* binary16: NumPy's float16 (conversions and arithmetic), and the same arithmetic done in
  float64 and rounded once by NumPy (exact for + - *, and innocuous double rounding for /,
  since 53 >= 2*11 + 2);
* bfloat16: round-to-nearest-even on the float32 bit patterns in integer arithmetic
  (u + 0x7FFF + lsb) >> 16, and float64 arithmetic rounded to bfloat16 with np.rint;
* TF32: cvt.rna.tf32.f32 (ties away from zero) on the bit patterns, and truncation;
* fma, integer conversions, division samples: exact rational arithmetic (fractions.Fraction)
  rounded by a pure-Python rounding routine.

NaN results must be CUDA's canonical NaN (0x7FFF) wherever the headers document it. A last group
compiles one kernel that uses the whole emulated API twice: with g++ against the emulator's
headers, and with nvcc against the CUDA toolkit's (so the emulated API is a subset of CUDA's).
"""

from __future__ import annotations

import ctypes
import math
import os
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
KERNELS = ROOT / "kernels"
EMU_INCLUDE = KERNELS / "emu" / "include"
SOURCE = ROOT / "tests" / "emu" / "half_numerics.cpp"
CXX = os.environ.get("CXX") or shutil.which("g++")
NVCC = shutil.which("nvcc")
CXXFLAGS = ["-std=c++20", "-Wall", "-Wextra", "-Werror"]

needs_cxx = pytest.mark.skipif(CXX is None, reason="no C++ compiler (g++) on PATH")
# NaN and overflow inputs are the point here; NumPy's floating-point warnings about them are not.
pytestmark = pytest.mark.filterwarnings(
    "ignore:invalid value encountered:RuntimeWarning", "ignore:overflow encountered:RuntimeWarning"
)

CANONICAL_NAN16 = 0x7FFF
FP16 = (5, 10)
BF16 = (8, 7)


# ---- the library --------------------------------------------------------------------------------


class Numerics:
    """ctypes front end of tests/emu/half_numerics.cpp."""

    def __init__(self, path: Path):
        self.dll = ctypes.CDLL(str(path))
        self.dll.mw_test_mma_dot.restype = ctypes.c_float
        self.dll.mw_test_mma_dot.argtypes = [
            ctypes.c_float,
            ctypes.c_void_p,
            ctypes.c_void_p,
            ctypes.c_int,
        ]

    def _run(self, entry: str, op: str, inputs, out: np.ndarray, n: int) -> np.ndarray:
        inputs = [np.ascontiguousarray(a) for a in inputs]
        pointers = [ctypes.c_void_p(a.ctypes.data) for a in inputs]
        status = getattr(self.dll, entry)(
            op.encode(), *pointers, ctypes.c_void_p(out.ctypes.data), ctypes.c_size_t(n)
        )
        assert status == 0, f"{entry}: unknown operation {op!r}"
        return out

    def from_f32(self, op, x):
        x = np.asarray(x, np.float32)
        return self._run("mw_test_from_f32", op, [x], np.empty(x.size, np.uint16), x.size)

    def from_f64(self, op, x):
        x = np.asarray(x, np.float64)
        return self._run("mw_test_from_f64", op, [x], np.empty(x.size, np.uint16), x.size)

    def from_i64(self, op, x):
        x = np.asarray(x, np.int64)
        return self._run("mw_test_from_i64", op, [x], np.empty(x.size, np.uint16), x.size)

    def to_f32(self, op, h):
        h = np.asarray(h, np.uint16)
        return self._run("mw_test_to_f32", op, [h], np.empty(h.size, np.float32), h.size)

    def to_i64(self, op, h):
        h = np.asarray(h, np.uint16)
        return self._run("mw_test_to_i64", op, [h], np.empty(h.size, np.int64), h.size)

    def unary(self, op, a):
        a = np.asarray(a, np.uint16)
        return self._run("mw_test_unary", op, [a], np.empty(a.size, np.uint16), a.size)

    def binary(self, op, a, b):
        a, b = np.asarray(a, np.uint16), np.asarray(b, np.uint16)
        return self._run("mw_test_binary", op, [a, b], np.empty(a.size, np.uint16), a.size)

    def compare(self, op, a, b):
        a, b = np.asarray(a, np.uint16), np.asarray(b, np.uint16)
        return self._run("mw_test_compare", op, [a, b], np.empty(a.size, np.int32), a.size)

    def ternary(self, op, a, b, c):
        a, b, c = (np.asarray(v, np.uint16) for v in (a, b, c))
        return self._run("mw_test_ternary", op, [a, b, c], np.empty(a.size, np.uint16), a.size)

    def pair(self, op, a, b):
        a, b = np.asarray(a, np.uint16), np.asarray(b, np.uint16)
        out = np.empty(2 * a.size, np.uint16)
        return self._run("mw_test_pair", op, [a, b], out, a.size).reshape(-1, 2)

    def floats_to_pair(self, op, a, b):
        a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
        out = np.empty(2 * a.size, np.uint16)
        return self._run("mw_test_floats_to_pair", op, [a, b], out, a.size).reshape(-1, 2)

    def pair_to_floats(self, op, a, b):
        a, b = np.asarray(a, np.uint16), np.asarray(b, np.uint16)
        out = np.empty(2 * a.size, np.float32)
        return self._run("mw_test_pair_to_floats", op, [a, b], out, a.size).reshape(-1, 2)

    def tf32(self, op, x):
        x = np.asarray(x, np.float32)
        return self._run("mw_test_tf32", op, [x], np.empty(x.size, np.float32), x.size)

    def mma_dot(self, c, a, b):
        a, b = np.ascontiguousarray(a, np.float32), np.ascontiguousarray(b, np.float32)
        return self.dll.mw_test_mma_dot(c, a.ctypes.data, b.ctypes.data, a.size)


@pytest.fixture(scope="module")
def lib(tmp_path_factory) -> Numerics:
    if CXX is None:
        pytest.skip("no C++ compiler (g++) on PATH")
    output = tmp_path_factory.mktemp("half_numerics") / "libhalf_numerics.so"
    command = [CXX, *CXXFLAGS, "-O1", "-fPIC", "-shared", f"-I{EMU_INCLUDE}", str(SOURCE)]
    result = subprocess.run(
        command + ["-o", str(output)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stderr[-6000:]}"
    return Numerics(output)


@pytest.fixture
def rng():
    return np.random.default_rng(20240611)


# ---- references ---------------------------------------------------------------------------------


def as_f32(bits) -> np.ndarray:
    return np.asarray(bits, np.uint32).view(np.float32)


def f32_bits(x) -> np.ndarray:
    return np.ascontiguousarray(x, np.float32).view(np.uint32)


def half_values(h) -> np.ndarray:
    """float64 values of binary16 bit patterns."""
    return np.asarray(h, np.uint16).view(np.float16).astype(np.float64)


def bf16_values(h) -> np.ndarray:
    """float64 values of bfloat16 bit patterns (bits << 16 is the float32)."""
    return as_f32(np.asarray(h, np.uint32) << 16).astype(np.float64)


def canonical(bits: np.ndarray, values: np.ndarray) -> np.ndarray:
    bits = np.array(bits, np.uint16)
    bits[np.isnan(values)] = CANONICAL_NAN16
    return bits


def half_rn_ref(x) -> np.ndarray:
    """NumPy's float32/float64 -> float16 (round to nearest even), NaN canonical."""
    x = np.asarray(x)
    with np.errstate(over="ignore", invalid="ignore"):
        h = x.astype(np.float16).view(np.uint16)
    return canonical(h, x)


def half_rz_ref(x) -> np.ndarray:
    """Toward zero: NumPy's nearest, stepped one ulp toward zero where it rounded away."""
    x = np.asarray(x, np.float64)
    h = half_rn_ref(x)
    away = np.isfinite(x) & (np.abs(half_values(h)) > np.abs(x))
    h[away] -= 1  # magnitude - 1 ulp (infinity 0x7C00 becomes the largest finite 0x7BFF)
    return h


def bf16_rn_ref(x) -> np.ndarray:
    """float32 -> bfloat16 round to nearest even on the bit patterns: (u + 0x7FFF + lsb) >> 16."""
    u = f32_bits(x).astype(np.uint64)
    h = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    return canonical(h, np.asarray(x, np.float32))


def bf16_rz_ref(x) -> np.ndarray:
    return canonical((f32_bits(x) >> 16).astype(np.uint16), np.asarray(x, np.float32))


def round_f64_ref(x, fmt) -> np.ndarray:
    """float64 -> a binary format, round to nearest even with np.rint on the scaled value."""
    exp_bits, frac_bits = fmt
    bias = (1 << (exp_bits - 1)) - 1
    qmin = 1 - bias - frac_bits
    x = np.asarray(x, np.float64)
    a = np.abs(x)
    finite_nonzero = np.isfinite(x) & (a > 0)
    _, e = np.frexp(np.where(finite_nonzero, a, 1.0))  # a = m 2^e, m in [0.5, 1)
    quantum = np.maximum(e - 1 - frac_bits, qmin)
    n = np.rint(np.ldexp(np.where(finite_nonzero, a, 0.0), -quantum)).astype(np.int64)
    enc = ((quantum - qmin).astype(np.int64) << frac_bits) + n
    inf = ((1 << exp_bits) - 1) << frac_bits
    enc = np.where(enc >= inf, inf, enc)
    enc = np.where(np.isinf(x), inf, enc)
    enc = np.where(a == 0, 0, enc)
    sign = np.signbit(x).astype(np.int64) << (exp_bits + frac_bits)
    out = (sign | enc).astype(np.uint16)
    out[np.isnan(x)] = CANONICAL_NAN16
    return out


def round_fraction(q: Fraction, fmt, negative_zero: bool = False) -> int:
    """Exact rational -> a binary format, round to nearest even, in Python integers."""
    exp_bits, frac_bits = fmt
    bias = (1 << (exp_bits - 1)) - 1
    qmin = 1 - bias - frac_bits
    inf = ((1 << exp_bits) - 1) << frac_bits
    sign_bit = 1 << (exp_bits + frac_bits)
    if q == 0:
        return sign_bit if negative_zero else 0
    sign = sign_bit if q < 0 else 0
    a = abs(q)
    e = a.numerator.bit_length() - a.denominator.bit_length()  # floor(log2 a) is e or e - 1
    if (a.numerator << max(0, -e)) < (a.denominator << max(0, e)):
        e -= 1
    quantum = max(e - frac_bits, qmin)
    scaled = a / (Fraction(2) ** quantum)
    n = scaled.numerator // scaled.denominator
    rest = scaled - n
    if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and n % 2 == 1):
        n += 1
    return sign | min(((quantum - qmin) << frac_bits) + n, inf)


def tf32_rna_ref(bits) -> np.ndarray:
    """cvt.rna.tf32.f32 as documented in mw_emu_tf32.h, on uint32 bit patterns."""
    u = np.asarray(bits, np.uint64)
    sign = u & 0x80000000
    mag = u & 0x7FFFFFFF
    nan = mag > 0x7F800000
    rounded = np.minimum((mag + 0x1000) & 0xFFFFE000, 0x7FFFE000)
    still_nan = rounded > 0x7F800000
    rounded = np.where(nan & ~still_nan, rounded | 0x00400000, rounded)
    return (sign | rounded).astype(np.uint32)


def tf32_trunc_ref(bits) -> np.ndarray:
    u = np.asarray(bits, np.uint32)
    r = u & np.uint32(0xFFFFE000)
    lost_nan = ((u & 0x7FFFFFFF) > 0x7F800000) & ((r & 0x7FFFFFFF) == 0x7F800000)
    return np.where(lost_nan, r | np.uint32(0x00400000), r).astype(np.uint32)


def assert_bits_equal(got, want, inputs=None, what=""):
    got, want = np.asarray(got), np.asarray(want)
    bad = np.flatnonzero(got.reshape(-1) != want.reshape(-1))
    if bad.size:
        shown = []
        for i in bad[:8]:
            where = (
                ""
                if inputs is None
                else " for " + ", ".join(f"{v.reshape(-1)[i]!r}" for v in inputs)
            )
            shown.append(f"[{i}] got {got.reshape(-1)[i]:#x}, want {want.reshape(-1)[i]:#x}{where}")
        raise AssertionError(f"{what}: {bad.size} of {got.size} differ:\n  " + "\n  ".join(shown))


# ---- inputs --------------------------------------------------------------------------------------

ALL16 = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)

# fmt: off
SPECIAL_F32 = np.array(
    [
        0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan, -np.nan, 65504.0, 65519.996, 65520.0,
        -65520.0, 65536.0, 1e10, -1e30, 2.0**-24, 2.0**-25, -(2.0**-25), 2.0**-25 * 1.0000001,
        3 * 2.0**-26,
        2.0**-14, 2.0**-14 - 2.0**-25, 2.0**-26, 1e-8, 1e-30, 1e-45, 3.4028235e38, -3.4028235e38,
        3.3895314e38, 1.0 + 2.0**-11, 1.0 + 3 * 2.0**-11, 1.0 + 2.0**-8, 1.0 + 3 * 2.0**-8, 2049.0,
        2051.0, 257.0, 259.0, 0.1, 1 / 3
    ],
    dtype=np.float32,
)

SPECIAL_NAN_BITS = np.array(
    [
        0x7FC00000, 0xFFC00000, 0x7F800001, 0xFF800001, 0x7FBFFFFF, 0x7FFFFFFF, 0xFFFFFFFF,
        0x7F801000, 0x7F802000, 0x7FC01000, 0x7F800FFF, 0x7FFFE000, 0x7FFFF000
    ],
    dtype=np.uint32,
)
# fmt: on


def float_cases(rng, images: np.ndarray) -> np.ndarray:
    """float32 inputs for a 16-bit format whose values (as float32) are `images`: every value,
    every midpoint between neighbours and one float32 ulp either side of it, specials, NaNs,
    random bit patterns and random floats of every magnitude."""
    finite = np.sort(images[np.isfinite(images)].astype(np.float64))
    mid = ((finite[1:] + finite[:-1]) / 2).astype(np.float32)  # exact: 1 bit more than the format
    mids = np.concatenate(
        [mid, np.nextafter(mid, np.float32(np.inf)), np.nextafter(mid, np.float32(-np.inf))]
    )
    random_bits = as_f32(rng.integers(0, 1 << 32, size=1 << 18, dtype=np.uint64).astype(np.uint32))
    magnitudes = np.exp2(rng.uniform(-150, 129, size=1 << 16)).astype(np.float32)
    signs = rng.choice(np.array([-1, 1], np.float32), size=magnitudes.size)
    return np.concatenate(
        [images, mids, SPECIAL_F32, as_f32(SPECIAL_NAN_BITS), random_bits, signs * magnitudes]
    ).astype(np.float32)


HALF_IMAGES = ALL16.view(np.float16).astype(np.float32)
BF16_IMAGES = as_f32(ALL16.astype(np.uint32) << 16)


def random16(rng, size):
    return rng.integers(0, 1 << 16, size=size, dtype=np.uint32).astype(np.uint16)


def pairs(rng, special_bits, unit) -> tuple[np.ndarray, np.ndarray]:
    """Operand pairs: every 16-bit pattern against 11 special operands, all pairs of specials,
    random pairs, and random pairs of close exponents (where sums round). `unit` is (mask, one):
    bits & mask | one is a random value of magnitude in [1, 2)."""
    mask, one = unit
    a1 = np.repeat(ALL16, 11)
    b1 = np.tile(special_bits[:11], ALL16.size)
    a2, b2 = (v.reshape(-1) for v in np.meshgrid(special_bits, special_bits))
    a3, b3 = random16(rng, 1 << 19), random16(rng, 1 << 19)
    near_a = random16(rng, 1 << 18) & mask | one
    exponent_step = one & -one  # the lowest exponent bit
    shift = (random16(rng, 1 << 18) % 12) * exponent_step
    near_b = (random16(rng, 1 << 18) & mask | one) - shift  # 2^0 ... 2^-11 times [1, 2)
    return (
        np.concatenate([a1, a2, a3, near_a]),
        np.concatenate([b1, b2, b3, near_b]).astype(np.uint16),
    )


HALF_UNIT = (0x83FF, 0x3C00)
BF16_UNIT = (0x807F, 0x3F80)


# fmt: off
SPECIAL_HALF_BITS = np.array(
    [
        0x0000, 0x8000, 0x0001, 0x8001, 0x03FF, 0x0400, 0x3C00, 0xBC00, 0x3C01, 0x7BFF, 0xFBFF,
        0x7C00, 0xFC00, 0x7E00, 0xFFFF, 0x7C01, 0x4000, 0x3800, 0x5BFF, 0x1400
    ],
    dtype=np.uint16,
)

SPECIAL_BF16_BITS = np.array(
    [
        0x0000, 0x8000, 0x0001, 0x8001, 0x007F, 0x0080, 0x3F80, 0xBF80, 0x3F81, 0x7F7F, 0xFF7F,
        0x7F80, 0xFF80, 0x7FC0, 0xFFFF, 0x7F81, 0x4000, 0x3F00, 0x1F80, 0x5F80
    ],
    dtype=np.uint16,
)
# fmt: on

HALF_OPS = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide}


# ---- float32 / float64 -> binary16 ---------------------------------------------------------------


@pytest.mark.parametrize("op", ["float2half", "float2half_rn", "half_ctor", "half_assign"])
def test_float_to_half_nearest_even_matches_numpy(lib, rng, op):
    x = float_cases(rng, HALF_IMAGES)
    assert_bits_equal(lib.from_f32(op, x), half_rn_ref(x), [x], op)


def test_float_to_half_nan_is_canonical_and_every_half_round_trips(lib):
    nans = as_f32(SPECIAL_NAN_BITS)
    assert (lib.from_f32("float2half_rn", nans) == CANONICAL_NAN16).all()
    finite = ALL16[np.isfinite(HALF_IMAGES)]
    assert_bits_equal(lib.from_f32("float2half_rn", HALF_IMAGES[np.isfinite(HALF_IMAGES)]), finite)


def test_float_to_half_toward_zero(lib, rng):
    x = float_cases(rng, HALF_IMAGES)
    got = lib.from_f32("float2half_rz", x)
    assert_bits_equal(got, half_rz_ref(x), [x], "float2half_rz")
    # and the defining property, where the value is finite: |h| <= |x| < |next(h)|
    finite = np.isfinite(x) & (np.abs(x) <= 65504)
    h = got[finite]
    assert (np.abs(half_values(h)) <= np.abs(x[finite])).all()
    assert (np.abs(half_values((h & 0x7FFF) + 1)) > np.abs(x[finite])).all()


@pytest.mark.parametrize("op", ["double2half", "half_ctor"])
def test_double_to_half_rounds_once(lib, rng, op):
    x32 = float_cases(rng, HALF_IMAGES).astype(np.float64)
    # doubles just off binary16 ties, closer than a float32 ulp: one rounding, not two
    finite = np.sort(HALF_IMAGES[np.isfinite(HALF_IMAGES)].astype(np.float64))
    mid = (finite[1:] + finite[:-1]) / 2
    x = np.concatenate(
        [
            x32,
            mid,
            np.nextafter(mid, np.inf),
            np.nextafter(mid, -np.inf),
            rng.normal(0, 1000, 1 << 16),
            [1e300, -1e300, 5e-324, -5e-324],
        ]
    )
    assert_bits_equal(lib.from_f64(op, x), half_rn_ref(x), [x], op)


# ---- float32 / float64 -> bfloat16 ---------------------------------------------------------------


@pytest.mark.parametrize("op", ["float2bfloat16", "float2bfloat16_rn", "bfloat16_ctor"])
def test_float_to_bfloat16_nearest_even(lib, rng, op):
    x = float_cases(rng, BF16_IMAGES)
    assert_bits_equal(lib.from_f32(op, x), bf16_rn_ref(x), [x], op)


def test_float_to_bfloat16_toward_zero(lib, rng):
    x = float_cases(rng, BF16_IMAGES)
    assert_bits_equal(
        lib.from_f32("float2bfloat16_rz", x), bf16_rz_ref(x), [x], "float2bfloat16_rz"
    )


def test_float_to_bfloat16_edges():
    """The integer reference itself on hand-checked values (ties, overflow, subnormals)."""
    x = as_f32(
        np.array(
            [
                0x3F808000,
                0x3F818000,
                0x3F808001,
                0x7F7F8000,
                0x7F7F7FFF,
                0x00008000,
                0x00018000,
                0x80008000,
                0x7F800000,
                0xFF800000,
            ],
            np.uint32,
        )
    )
    want = [0x3F80, 0x3F82, 0x3F81, 0x7F80, 0x7F7F, 0x0000, 0x0002, 0x8000, 0x7F80, 0xFF80]
    assert bf16_rn_ref(x).tolist() == want


@pytest.mark.parametrize("op", ["double2bfloat16", "bfloat16_ctor"])
def test_double_to_bfloat16_rounds_once(lib, rng, op):
    finite = np.sort(BF16_IMAGES[np.isfinite(BF16_IMAGES)].astype(np.float64))
    mid = (finite[1:] + finite[:-1]) / 2
    x = np.concatenate(
        [
            float_cases(rng, BF16_IMAGES).astype(np.float64),
            mid,
            np.nextafter(mid, np.inf),
            np.nextafter(mid, -np.inf),
            rng.normal(0, 1e20, 1 << 16),
            [1e300, -1e300, 5e-324, 2.0**-134 * (1 + 2.0**-40)],
        ]
    )
    got = lib.from_f64(op, x)
    assert_bits_equal(got, round_f64_ref(x, BF16), [x], op)
    # exact rational rounding on a sample
    sample = rng.choice(np.flatnonzero(np.isfinite(x)), size=3000, replace=False)
    exact = [round_fraction(Fraction(float(v)), BF16, math.copysign(1, v) < 0) for v in x[sample]]
    assert_bits_equal(got[sample], np.array(exact, np.uint16), [x[sample]], op + " (exact)")


# ---- integers -> 16 bits -------------------------------------------------------------------------


def integer_cases(rng, lo, hi):
    """Small integers, ties of both formats, the extremes, and random integers of every size."""
    special = [
        0,
        1,
        -1,
        2049,
        2051,
        4097,
        4099,
        -2049,
        65504,
        65519,
        65520,
        65535,
        65536,
        257,
        259,
        513,
        -515,
        2**24 + 1,
        2**31 - 1,
        -(2**31),
        2**32 - 1,
        2**53 + 1,
        (1 << 60) + (1 << 52) + 1,
        (1 << 60) + (1 << 52),
        (1 << 62) + (1 << 54) - 1,
        -(2**63),
        2**63 - 1,
    ]
    magnitude = rng.integers(0, 2**62, 3000, dtype=np.int64) >> rng.integers(0, 62, 3000)
    sign = rng.choice(np.array([-1, 1], np.int64), 3000) if lo < 0 else 1
    values = np.concatenate(
        [
            np.array([v for v in special if lo <= v <= hi], np.int64),
            np.arange(max(lo, -70000), min(hi, 70000), 97, dtype=np.int64),
            magnitude * sign,
            rng.integers(lo, hi, 2000, dtype=np.int64, endpoint=True),
        ]
    )
    return values[(values >= lo) & (values <= hi)]


INT_OPS = [
    # op, format, argument range (the C++ side casts to the parameter type)
    ("int2half_rn", FP16, -(2**31), 2**31 - 1),
    ("uint2half_rn", FP16, 0, 2**32 - 1),
    ("ll2half_rn", FP16, -(2**63), 2**63 - 1),
    ("half_ctor_int", FP16, -(2**31), 2**31 - 1),
    ("half_ctor_ll", FP16, -(2**63), 2**63 - 1),
    ("half_ctor_ull", FP16, 0, 2**63 - 1),
    ("int2bfloat16_rn", BF16, -(2**31), 2**31 - 1),
    ("uint2bfloat16_rn", BF16, 0, 2**32 - 1),
    ("ll2bfloat16_rn", BF16, -(2**63), 2**63 - 1),
    ("bfloat16_ctor_ll", BF16, -(2**63), 2**63 - 1),
    ("bfloat16_ctor_ull", BF16, 0, 2**63 - 1),
]


@pytest.mark.parametrize("op,fmt,lo,hi", INT_OPS, ids=[o[0] for o in INT_OPS])
def test_integer_to_16bit_rounds_exactly(lib, rng, op, fmt, lo, hi):
    x = integer_cases(rng, lo, hi)
    want = np.array([round_fraction(Fraction(int(v)), fmt) for v in x], np.uint16)
    assert_bits_equal(lib.from_i64(op, x), want, [x], op)


# ---- 16 bits -> float32 / integers ---------------------------------------------------------------


def test_half_to_float_is_exact_with_canonical_nan(lib):
    want = f32_bits(HALF_IMAGES).copy()
    want[np.isnan(HALF_IMAGES)] = 0x7FFFFFFF
    for op in ["half2float", "half_to_float", "low2float", "high2float"]:
        assert_bits_equal(f32_bits(lib.to_f32(op, ALL16)), want, [ALL16], op)
    got = lib.pair_to_floats("half22float2", ALL16, ALL16[::-1])
    assert_bits_equal(f32_bits(got[:, 0]), want, [ALL16], "half22float2.x")
    assert_bits_equal(f32_bits(got[:, 1]), want[::-1], [ALL16], "half22float2.y")
    got = lib.pair_to_floats("low_high2float", ALL16, ALL16[::-1])
    assert_bits_equal(f32_bits(got[:, 1]), want[::-1], [ALL16], "__high2float")


def test_bfloat16_to_float_shifts_the_bits(lib):
    want = ALL16.astype(np.uint32) << 16  # NaN payloads too, as CUDA's
    for op in ["bfloat162float", "bfloat16_to_float", "bf_low2float", "bf_high2float"]:
        assert_bits_equal(f32_bits(lib.to_f32(op, ALL16)), want, [ALL16], op)
    got = lib.pair_to_floats("bfloat1622float2", ALL16, ALL16[::-1])
    assert_bits_equal(f32_bits(got.reshape(-1)), np.stack([want, want[::-1]], 1), None, "bf1622f2")


def int_ref(values, bits, signed, nearest=False):
    """CUDA's float -> integer: NaN -> 0 (64-bit: 1 << 63), saturate, truncate (or nearest even)."""
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    out = []
    for v in values:
        if math.isnan(v):
            out.append(-(2**63) if bits == 64 else 0)
            continue
        if math.isinf(v):
            r = hi if v > 0 else lo
        else:
            r = round(v) if nearest else math.trunc(v)  # Python's round() is to nearest even
            r = min(max(r, lo), hi)
        if not signed and bits == 64 and r >= 2**63:
            r -= 2**64
        out.append(r)
    return np.array(out, np.int64)


TO_INT_OPS = [
    ("half2int_rz", FP16, 32, True, False),
    ("half2int_rn", FP16, 32, True, True),
    ("half2uint_rz", FP16, 32, False, False),
    ("half2ll_rz", FP16, 64, True, False),
    ("half_to_int", FP16, 32, True, False),
    ("half_to_short", FP16, 16, True, False),
    ("half_to_uchar", FP16, 8, False, False),
    ("half_to_uint", FP16, 32, False, False),
    ("half_to_ll", FP16, 64, True, False),
    ("bfloat162int_rz", BF16, 32, True, False),
    ("bfloat162int_rn", BF16, 32, True, True),
    ("bfloat162uint_rz", BF16, 32, False, False),
    ("bf_to_int", BF16, 32, True, False),
    ("bf_to_ll", BF16, 64, True, False),
]


@pytest.mark.parametrize("op,fmt,bits,signed,nearest", TO_INT_OPS, ids=[o[0] for o in TO_INT_OPS])
def test_16bit_to_integer_saturates_like_cuda(lib, op, fmt, bits, signed, nearest):
    values = half_values(ALL16) if fmt == FP16 else bf16_values(ALL16)
    want = int_ref(values.tolist(), bits, signed, nearest)
    assert_bits_equal(lib.to_i64(op, ALL16), want, [ALL16], op)


def test_16bit_predicates(lib):
    for prefix, values in [("", half_values(ALL16)), ("bf_", bf16_values(ALL16))]:
        assert (lib.to_i64(prefix + "hisnan", ALL16) == np.isnan(values)).all()
        want_inf = np.where(np.isposinf(values), 1, np.where(np.isneginf(values), -1, 0))
        assert (lib.to_i64(prefix + "hisinf", ALL16) == want_inf).all()
        # operator bool: +-0 false, everything else (NaN included) true
        want_bool = (ALL16 & 0x7FFF) != 0
        op = "half_to_bool" if prefix == "" else "bf_to_bool"
        assert (lib.to_i64(op, ALL16) == want_bool).all()


# ---- unary ---------------------------------------------------------------------------------------


def test_negation_and_absolute_value(lib):
    for prefix, values in [("", half_values(ALL16)), ("bf_", bf16_values(ALL16))]:
        nan = np.isnan(values)
        neg = np.where(nan, CANONICAL_NAN16, ALL16 ^ 0x8000).astype(np.uint16)
        absolute = np.where(nan, CANONICAL_NAN16, ALL16 & 0x7FFF).astype(np.uint16)
        assert_bits_equal(lib.unary(prefix + "hneg", ALL16), neg, [ALL16], prefix + "hneg")
        assert_bits_equal(lib.unary(prefix + "neg_op", ALL16), neg, [ALL16], prefix + "neg_op")
        assert_bits_equal(lib.unary(prefix + "habs", ALL16), absolute, [ALL16], prefix + "habs")
    assert_bits_equal(lib.unary("pos_op", ALL16), ALL16, None, "unary +")
    assert_bits_equal(lib.unary("raw_roundtrip", ALL16), ALL16, None, "__half_raw")
    for op in ["hneg2", "neg2_op"]:
        got = lib.pair(op, ALL16, ALL16[::-1])
        assert_bits_equal(got[:, 0], lib.unary("hneg", ALL16), None, op)
        assert_bits_equal(got[:, 1], lib.unary("hneg", ALL16[::-1]), None, op)
    assert_bits_equal(
        lib.pair("habs2", ALL16, ALL16)[:, 1], lib.unary("habs", ALL16), None, "habs2"
    )
    assert_bits_equal(
        lib.pair("bf_hneg2", ALL16, ALL16)[:, 0], lib.unary("bf_hneg", ALL16), None, ""
    )
    assert_bits_equal(
        lib.pair("bf_habs2", ALL16, ALL16)[:, 1], lib.unary("bf_habs", ALL16), None, ""
    )


def test_increment_and_decrement(lib):
    one = np.full(ALL16.size, 0x3C00, np.uint16)
    plus = half_rn_ref(half_values(ALL16) + 1.0)
    minus = half_rn_ref(half_values(ALL16) - 1.0)
    assert_bits_equal(lib.unary("pre_inc", ALL16), plus, [ALL16], "++h")
    assert_bits_equal(lib.unary("post_inc", ALL16), plus, [ALL16], "h++")
    assert_bits_equal(lib.unary("pre_dec", ALL16), minus, [ALL16], "--h")
    assert_bits_equal(lib.unary("post_dec", ALL16), minus, [ALL16], "h--")
    assert_bits_equal(lib.binary("hadd", ALL16, one), plus, [ALL16], "hadd 1")
    bf = bf16_values(ALL16)
    assert_bits_equal(lib.unary("bf_pre_inc", ALL16), round_f64_ref(bf + 1, BF16), [ALL16], "++b")
    assert_bits_equal(lib.unary("bf_post_dec", ALL16), round_f64_ref(bf - 1, BF16), [ALL16], "b--")


def test_conversions_between_half_and_bfloat16(lib):
    assert_bits_equal(
        lib.unary("half_from_bf16", ALL16),
        half_rn_ref(bf16_values(ALL16)),
        [ALL16],
        "__half(__nv_bfloat16)",
    )
    assert_bits_equal(
        lib.unary("bf16_from_half", ALL16),
        bf16_rn_ref(half_values(ALL16)),
        [ALL16],
        "__nv_bfloat16(__half)",
    )


# ---- binary arithmetic ---------------------------------------------------------------------------


HALF_BINARY = [
    ("hadd", "add"),
    ("hsub", "sub"),
    ("hmul", "mul"),
    ("hdiv", "div"),
    ("hadd_rn", "add"),
    ("hsub_rn", "sub"),
    ("hmul_rn", "mul"),
    ("add_op", "add"),
    ("sub_op", "sub"),
    ("mul_op", "mul"),
    ("div_op", "div"),
    ("add_assign", "add"),
    ("sub_assign", "sub"),
    ("mul_assign", "mul"),
    ("div_assign", "div"),
]


@pytest.fixture(scope="module")
def half_pairs():
    return pairs(np.random.default_rng(11), SPECIAL_HALF_BITS, HALF_UNIT)


@pytest.fixture(scope="module")
def bf16_pairs():
    return pairs(np.random.default_rng(12), SPECIAL_BF16_BITS, BF16_UNIT)


@pytest.mark.parametrize("op,kind", HALF_BINARY, ids=[o[0] for o in HALF_BINARY])
def test_half_arithmetic_matches_numpy_float16(lib, half_pairs, op, kind):
    a, b = half_pairs
    got = lib.binary(op, a, b)
    ha, hb = a.view(np.float16), b.view(np.float16)
    with np.errstate(all="ignore"):
        numpy16 = HALF_OPS[kind](ha, hb)  # NumPy's own float16 arithmetic
        wide = HALF_OPS[kind](half_values(a), half_values(b))  # float64, rounded once
    assert_bits_equal(got, canonical(numpy16.view(np.uint16), numpy16), [a, b], op + " vs numpy")
    assert_bits_equal(got, half_rn_ref(wide), [a, b], op + " vs float64")


BF16_BINARY = [
    ("bf_hadd", "add"),
    ("bf_hsub", "sub"),
    ("bf_hmul", "mul"),
    ("bf_hdiv", "div"),
    ("bf_hadd_rn", "add"),
    ("bf_hsub_rn", "sub"),
    ("bf_hmul_rn", "mul"),
    ("bf_add_op", "add"),
    ("bf_sub_op", "sub"),
    ("bf_mul_op", "mul"),
    ("bf_div_op", "div"),
    ("bf_mul_assign", "mul"),
]


@pytest.mark.parametrize("op,kind", BF16_BINARY, ids=[o[0] for o in BF16_BINARY])
def test_bfloat16_arithmetic_rounds_once(lib, bf16_pairs, op, kind):
    a, b = bf16_pairs
    got = lib.binary(op, a, b)
    with np.errstate(all="ignore"):
        wide = HALF_OPS[kind](bf16_values(a), bf16_values(b))
    assert_bits_equal(got, round_f64_ref(wide, BF16), [a, b], op)


@pytest.mark.parametrize("fmt", ["half", "bf16"])
def test_division_exact_sample(lib, rng, fmt):
    values = half_values if fmt == "half" else bf16_values
    a, b = random16(rng, 4000), random16(rng, 4000)
    ok = np.isfinite(values(a)) & np.isfinite(values(b)) & (values(b) != 0)
    a, b = a[ok], b[ok]
    f = FP16 if fmt == "half" else BF16
    want = [
        round_fraction(
            Fraction(x) / Fraction(y), f, (math.copysign(1, x) * math.copysign(1, y)) < 0
        )
        for x, y in zip(values(a).tolist(), values(b).tolist())
    ]
    op = "hdiv" if fmt == "half" else "bf_hdiv"
    assert_bits_equal(lib.binary(op, a, b), np.array(want, np.uint16), [a, b], op)


def max_min_ref(a, b, values, want_max):
    va, vb = values(a), values(b)
    with np.errstate(invalid="ignore"):
        pick_a = va > vb if want_max else va < vb
    # equal values: +0 is the larger of +-0
    a_negative = (a & 0x8000) != 0
    pick_a = np.where(va == vb, a_negative != want_max, pick_a)
    out = np.where(pick_a, a, b).astype(np.uint16)
    out = np.where(np.isnan(va), b, out)
    out = np.where(np.isnan(vb), a, out)
    return np.where(np.isnan(va) & np.isnan(vb), CANONICAL_NAN16, out).astype(np.uint16)


def test_max_min(lib, half_pairs, bf16_pairs):
    for prefix, (a, b), values in [("", half_pairs, half_values), ("bf_", bf16_pairs, bf16_values)]:
        for name, want_max in [("hmax", True), ("hmin", False)]:
            want = max_min_ref(a, b, values, want_max)
            assert_bits_equal(lib.binary(prefix + name, a, b), want, [a, b], prefix + name)


COMPARISONS = {
    "heq": lambda x, y: x == y,
    "hne": lambda x, y: (x != y) & ~np.isnan(x) & ~np.isnan(y),
    "hlt": lambda x, y: x < y,
    "hle": lambda x, y: x <= y,
    "hgt": lambda x, y: x > y,
    "hge": lambda x, y: x >= y,
    "hequ": lambda x, y: ~(x != y) | np.isnan(x) | np.isnan(y),
    "hneu": lambda x, y: x != y,
    "hltu": lambda x, y: ~(x >= y),
    "hleu": lambda x, y: ~(x > y),
    "hgtu": lambda x, y: ~(x <= y),
    "hgeu": lambda x, y: ~(x < y),
    "eq_op": lambda x, y: x == y,
    "ne_op": lambda x, y: x != y,
    "lt_op": lambda x, y: x < y,
    "le_op": lambda x, y: x <= y,
    "gt_op": lambda x, y: x > y,
    "ge_op": lambda x, y: x >= y,
}


def test_comparisons(lib, half_pairs, bf16_pairs):
    for prefix, (a, b), values in [("", half_pairs, half_values), ("bf_", bf16_pairs, bf16_values)]:
        x, y = values(a), values(b)
        for name, ref in COMPARISONS.items():
            with np.errstate(invalid="ignore"):
                want = ref(x, y).astype(np.int32)
            assert_bits_equal(lib.compare(prefix + name, a, b), want, [a, b], prefix + name)


# ---- fma -----------------------------------------------------------------------------------------


def fma_cases(rng, special_bits, unit, hard):
    """Random triples, all triples of 12 specials, products of magnitude [1, 4) with addends of
    magnitude 2^-4 ... 2^-15 times [1, 2) (results close to ties), and the hard cases."""
    n = 20000
    mask, one = unit
    a, b, c = random16(rng, n), random16(rng, n), random16(rng, n)
    s = special_bits
    sa, sb, sc = (v.reshape(-1) for v in np.meshgrid(s[:12], s[:12], s[:12]))
    near_a = random16(rng, n) & mask | one
    near_b = random16(rng, n) & mask | one
    exponent_step = one & -one
    small = (random16(rng, n) & mask | one) - (4 + random16(rng, n) % 12) * exponent_step
    ha, hb, hc = (np.array(v, np.uint16) for v in zip(*hard))
    return (
        np.concatenate([a, sa, near_a, ha]),
        np.concatenate([b, sb, near_b, hb]),
        np.concatenate([c, sc, small.astype(np.uint16), hc]),
    )


def fma_ref(a, b, c, values, fmt):
    va, vb, vc = values(a), values(b), values(c)
    out = []
    for x, y, z in zip(va.tolist(), vb.tolist(), vc.tolist()):
        if not (math.isfinite(x) and math.isfinite(y) and math.isfinite(z)):
            out.append(-1)  # filled from float64 below (NaN and infinity rules)
            continue
        exact = Fraction(x) * Fraction(y) + Fraction(z)
        negative_zero = math.copysign(1, x) * math.copysign(1, y) < 0 and math.copysign(1, z) < 0
        out.append(round_fraction(exact, fmt, negative_zero))
    out = np.array(out, np.int64)
    special = out < 0
    with np.errstate(all="ignore"):
        wide = va * vb + vc
    out[special] = round_f64_ref(wide[special], fmt)
    return out.astype(np.uint16)


HALF_HARD_FMA = [
    (0x4200, 0x6156, 0x0001),  # 3 * 683 = 2049 (a tie), + 2^-24: rounds up to 2050
    (0x4200, 0x6156, 0x8001),
]  # - 2^-24: down to 2048
BF16_HARD_FMA = [
    (0x4040, 0x42AE, 0x0D80),  # 3 * 87 = 261 (a tie), + 2^-100: 262, not 260
    (0x4040, 0x42AE, 0x8D80),
]


@pytest.mark.parametrize("fmt", ["half", "bf16"])
def test_fma_rounds_the_exact_result_once(lib, rng, fmt):
    if fmt == "half":
        a, b, c = fma_cases(rng, SPECIAL_HALF_BITS, HALF_UNIT, HALF_HARD_FMA)
        want = fma_ref(a, b, c, half_values, FP16)
        got = lib.ternary("hfma", a, b, c)
        assert got[-2:].tolist() == [0x6801, 0x6800]  # 2050, 2048
    else:
        a, b, c = fma_cases(rng, SPECIAL_BF16_BITS, BF16_UNIT, BF16_HARD_FMA)
        want = fma_ref(a, b, c, bf16_values, BF16)
        got = lib.ternary("bf_hfma", a, b, c)
        assert got[-2:].tolist() == [0x4383, 0x4382]  # 262, 260
    assert_bits_equal(got, want, [a, b, c], f"{fmt} fma")


def test_fma2_lanes(lib, rng):
    a, b = random16(rng, 30000), random16(rng, 30000)
    for op, scalar in [("hfma2", "hfma"), ("bf_hfma2", "bf_hfma")]:
        got = lib.pair(op, a, b)  # lane x = fma(a, b, a), lane y = fma(b, a, b)
        assert_bits_equal(got[:, 0], lib.ternary(scalar, a, b, a), [a, b], op + ".x")
        assert_bits_equal(got[:, 1], lib.ternary(scalar, b, a, b), [a, b], op + ".y")


# ---- pairs ---------------------------------------------------------------------------------------


PAIR_OPS = [
    ("hadd2", "hadd"),
    ("hsub2", "hsub"),
    ("hmul2", "hmul"),
    ("h2div", "hdiv"),
    ("add2_op", "hadd"),
    ("sub2_op", "hsub"),
    ("mul2_op", "hmul"),
    ("div2_op", "hdiv"),
    ("add2_assign", "hadd"),
    ("bf_hadd2", "bf_hadd"),
    ("bf_hsub2", "bf_hsub"),
    ("bf_hmul2", "bf_hmul"),
    ("bf_h2div", "bf_hdiv"),
    ("bf_add2_op", "bf_hadd"),
    ("bf_mul2_op", "bf_hmul"),
]


@pytest.mark.parametrize("op,scalar", PAIR_OPS, ids=[o[0] for o in PAIR_OPS])
def test_pair_arithmetic_is_lane_by_lane(lib, rng, op, scalar):
    a, b = random16(rng, 1 << 16), random16(rng, 1 << 16)
    got = lib.pair(op, a, b)  # (a, b) op (b, a)
    assert_bits_equal(got[:, 0], lib.binary(scalar, a, b), [a, b], op + ".x")
    assert_bits_equal(got[:, 1], lib.binary(scalar, b, a), [a, b], op + ".y")


def test_pair_construction(lib, rng):
    a, b = random16(rng, 4096), random16(rng, 4096)
    for op in ["make_half2", "half2_raw", "make_bfloat162", "bfloat162_raw"]:
        assert_bits_equal(lib.pair(op, a, b), np.stack([a, b], 1), None, op)
    for op in ["half2half2", "bfloat162bfloat162"]:
        assert_bits_equal(lib.pair(op, a, b), np.stack([a, a], 1), None, op)
    x, y = float_cases(rng, HALF_IMAGES)[:50000], float_cases(rng, HALF_IMAGES)[-50000:]
    for op in ["floats2half2_rn", "float22half2_rn"]:
        assert_bits_equal(
            lib.floats_to_pair(op, x, y), np.stack([half_rn_ref(x), half_rn_ref(y)], 1), None, op
        )
    assert_bits_equal(
        lib.floats_to_pair("float2half2_rn", x, y),
        np.stack([half_rn_ref(x), half_rn_ref(x)], 1),
        None,
        "float2half2_rn",
    )
    for op in ["floats2bfloat162_rn", "float22bfloat162_rn"]:
        assert_bits_equal(
            lib.floats_to_pair(op, x, y), np.stack([bf16_rn_ref(x), bf16_rn_ref(y)], 1), None, op
        )
    assert_bits_equal(
        lib.floats_to_pair("float2bfloat162_rn", x, y),
        np.stack([bf16_rn_ref(x), bf16_rn_ref(x)], 1),
        None,
        "float2bfloat162_rn",
    )


# ---- TF32 ----------------------------------------------------------------------------------------


def tf32_cases(rng):
    random_bits = rng.integers(0, 1 << 32, size=1 << 20, dtype=np.uint64).astype(np.uint32)
    base = rng.integers(0, 1 << 32, size=1 << 14, dtype=np.uint64).astype(np.uint32) & 0xFFFFE000
    ties = base | 0x1000  # exactly half a TF32 ulp above a TF32 value
    edges = np.array(
        [
            0,
            0x80000000,
            0x3F800000,
            0x7F7FF000,
            0x7F7FEFFF,
            0xFF7FF000,
            0x7F800000,
            0xFF800000,
            0x00001000,
            0x00000FFF,
            0x80001000,
            0x00800000,
            0x007FF000,
        ],
        np.uint32,
    )
    return np.concatenate([random_bits, ties, ties - 1, ties + 1, edges, SPECIAL_NAN_BITS])


def test_float_to_tf32_rounds_to_nearest_ties_away(lib, rng):
    bits = tf32_cases(rng)
    got = f32_bits(lib.tf32("float_to_tf32", as_f32(bits)))
    assert_bits_equal(got, tf32_rna_ref(bits), [bits], "__float_to_tf32")
    assert (got & 0x1FFF == 0).all(), "TF32 results have their low 13 bits zero"
    x = as_f32(bits).astype(np.float64)
    r = as_f32(got).astype(np.float64)
    finite = np.isfinite(r) & np.isfinite(x)
    assert (np.isnan(r) == np.isnan(x)).all(), "a NaN stays a NaN and nothing else becomes one"
    # nearest: |r - x| <= half a TF32 ulp of x; ties (low bits exactly 0x1000) away from zero
    ulp = np.ldexp(1.0, np.maximum(np.frexp(x[finite])[1] - 11, -136))
    assert (np.abs(r[finite] - x[finite]) <= ulp / 2).all()
    tie = finite & ((bits & 0x1FFF) == 0x1000)
    assert (np.abs(r[tie]) > np.abs(x[tie])).all()
    assert (lib.tf32("is_tf32", as_f32(got)) == 1).all()


def test_tf32_truncation_keeps_the_top_19_bits(lib, rng):
    bits = tf32_cases(rng)
    got = f32_bits(lib.tf32("tf32_truncate", as_f32(bits)))
    assert_bits_equal(got, tf32_trunc_ref(bits), [bits], "tf32_truncate")
    finite = (bits & 0x7FFFFFFF) <= 0x7F800000
    assert (got[finite] == bits[finite] & 0xFFFFE000).all()
    assert (np.isnan(as_f32(got)) == np.isnan(as_f32(bits))).all()
    is_tf32 = lib.tf32("is_tf32", as_f32(bits))
    assert (is_tf32 == ((bits & 0x1FFF) == 0)).all()


def test_products_of_tensor_core_operands_are_exact_in_float32(rng):
    """The premise of exact_product / mma_dot: tf32, bf16 and fp16 products fit float32."""
    n = 1 << 16
    tf32 = as_f32(rng.integers(0x30000000, 0x4F000000, n, dtype=np.uint32) & 0xFFFFE000)
    bf16 = as_f32((random16(rng, n).astype(np.uint32) & 0x7FFF | 0x2000) << 16)
    fp16 = HALF_IMAGES[np.isfinite(HALF_IMAGES)]
    for v in [tf32, bf16, fp16]:
        w = rng.permutation(v)
        with np.errstate(over="ignore"):
            p32 = v * w
        p64 = v.astype(np.float64) * w.astype(np.float64)
        ok = np.isfinite(p32) & (np.abs(p64) >= 2.0**-126)
        assert (p32[ok].astype(np.float64) == p64[ok]).all()


def test_mma_dot_reference(lib, rng):
    # exact on integers (as the project's exact kernel tests rely on)
    a = rng.integers(-8, 9, 64).astype(np.float32)
    b = rng.integers(-8, 9, 64).astype(np.float32)
    assert lib.mma_dot(3.0, a, b) == 3.0 + float(np.dot(a.astype(np.int64), b.astype(np.int64)))
    # random TF32 data: within a few float32 ulps of the exact sum
    for k in [4, 8, 16, 64]:
        for _ in range(50):
            a = as_f32(f32_bits(rng.normal(size=k).astype(np.float32)) & 0xFFFFE000)
            b = as_f32(f32_bits(rng.normal(size=k).astype(np.float32)) & 0xFFFFE000)
            c = np.float32(rng.normal())
            exact = Fraction(float(c)) + sum(
                Fraction(float(x)) * Fraction(float(y)) for x, y in zip(a, b)
            )
            scale = abs(float(c)) + float(np.abs(a.astype(np.float64) * b).sum())
            got = lib.mma_dot(float(c), a, b)
            assert abs(got - float(exact)) <= 2.0**-24 * abs(float(exact)) + k * 2.0**-52 * scale


# ---- the API compiles against the emulator's headers and against CUDA's --------------------------

API_KERNEL = r"""
// Uses every function, operator and type that the emulator's cuda_fp16.h, cuda_bf16.h and
// mw_emu_tf32.h define: compiled by g++ with kernels/emu/include and by nvcc with the toolkit's
// headers, so that the emulated API stays a subset of CUDA's.
#include "launch.cuh"
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#if MW_EMULATOR
#include <mw_emu_tf32.h>
#else
#include <mma.h>
#endif

__global__ void half_api(const float* in, __half* hout, __nv_bfloat16* bout, float* fout,
                         int* iout) {
  const float x = in[threadIdx.x];
  __half a = __float2half(x), c = __float2half_rn(x), d = __float2half_rz(x);
  a = __double2half(static_cast<double>(x)) + __int2half_rn(iout[0]) + __uint2half_rn(1u) +
      __ll2half_rn(2ll);
  a = __ushort_as_half(__half_as_ushort(a));
  a = __short_as_half(__half_as_short(a));
  __half2 p = make_half2(a, c);
  p = __halves2half2(__low2half(p), __high2half(p));
  p = __half2half2(d) + __floats2half2_rn(x, x) + __float2half2_rn(x);
  p = __float22half2_rn(make_float2(x, x));
  const float2 q = __half22float2(p);
  fout[0] = __half2float(a) + __low2float(p) + __high2float(p) + q.x + static_cast<float>(a);
  iout[1] = __half2int_rz(a) + __half2int_rn(a) + static_cast<int>(__half2uint_rz(a)) +
            static_cast<int>(__half2ll_rz(a));
  a = __hadd(a, c);
  a = __hsub(a, c);
  a = __hmul(a, c);
  a = __hdiv(a, c);
  a = __hadd_rn(a, c);
  a = __hsub_rn(a, c);
  a = __hmul_rn(a, c);
  a = __hfma(a, c, d);
  a = __hmax(__hmin(__habs(__hneg(a)), c), d);
  a = a + c;
  a = a - c;
  a = a * c;
  a = a / c;
  a += c;
  a -= c;
  a *= c;
  a /= c;
  ++a;
  --a;
  a++;
  a--;
  a = -(+a);
  iout[2] = __hisnan(a) + __hisinf(a) + __heq(a, c) + __hne(a, c) + __hlt(a, c) + __hle(a, c) +
            __hgt(a, c) + __hge(a, c) + __hequ(a, c) + __hneu(a, c) + __hltu(a, c) +
            __hleu(a, c) + __hgtu(a, c) + __hgeu(a, c) + (a == c) + (a != c) + (a < c) +
            (a > c) + (a <= c) + (a >= c) + static_cast<bool>(a) + static_cast<int>(a) +
            static_cast<short>(a) + static_cast<unsigned char>(a) +
            static_cast<int>(static_cast<unsigned>(a)) +
            static_cast<int>(static_cast<long long>(a));
  p = __hfma2(__h2div(__hmul2(__hsub2(__hadd2(p, p), p), p), p), p, p);
  p = __habs2(__hneg2(p));
  p = (p + p - p) * p / p;
  p += p;
  p -= p;
  p *= p;
  p /= p;
  p = -(+p);
  const __half_raw raw = a;
  a = raw;
  const __half_raw raw_init = {0x3C00};
  const __half2_raw raw2 = p;
  p = raw2;
  a = __half(x) + __half(1.0) + __half(3) + __half(raw_init);
  a = x;
  a = CUDART_INF_FP16;
  a = CUDART_NAN_FP16;
  a = CUDART_MIN_DENORM_FP16 + CUDART_MAX_NORMAL_FP16 + CUDART_NEG_ZERO_FP16 + CUDART_ZERO_FP16 +
      CUDART_ONE_FP16;
  hout[threadIdx.x] = a + __low2half(p);

  __nv_bfloat16 b = __float2bfloat16(x), e = __float2bfloat16_rn(x), g = __float2bfloat16_rz(x);
  b = __double2bfloat16(static_cast<double>(x)) + __int2bfloat16_rn(iout[0]) +
      __uint2bfloat16_rn(1u) + __ll2bfloat16_rn(2ll);
  b = __ushort_as_bfloat16(__bfloat16_as_ushort(b));
  b = __short_as_bfloat16(__bfloat16_as_short(b));
  __nv_bfloat162 r = make_bfloat162(b, e);
  r = __halves2bfloat162(__low2bfloat16(r), __high2bfloat16(r));
  r = __bfloat162bfloat162(g) + __floats2bfloat162_rn(x, x) + __float2bfloat162_rn(x);
  r = __float22bfloat162_rn(make_float2(x, x));
  const float2 s = __bfloat1622float2(r);
  fout[1] = __bfloat162float(b) + __low2float(r) + __high2float(r) + s.y + static_cast<float>(b);
  iout[3] = __bfloat162int_rz(b) + __bfloat162int_rn(b) + static_cast<int>(__bfloat162uint_rz(b));
  b = __hfma(__hmul_rn(__hsub_rn(__hadd_rn(__hdiv(__hmul(__hsub(__hadd(b, e), e), e), e), e), e),
                       e), e, g);
  b = __hmax(__hmin(__habs(__hneg(b)), e), g);
  b = (b + e - e) * e / e;
  b += e;
  b -= e;
  b *= e;
  b /= e;
  ++b;
  --b;
  b++;
  b--;
  b = -(+b);
  iout[4] = __hisnan(b) + __hisinf(b) + __heq(b, e) + __hne(b, e) + __hlt(b, e) + __hle(b, e) +
            __hgt(b, e) + __hge(b, e) + __hequ(b, e) + __hneu(b, e) + __hltu(b, e) +
            __hleu(b, e) + __hgtu(b, e) + __hgeu(b, e) + (b == e) + (b != e) + (b < e) +
            (b > e) + (b <= e) + (b >= e) + static_cast<bool>(b) + static_cast<int>(b) +
            static_cast<int>(static_cast<long long>(b));
  r = __hfma2(__h2div(__hmul2(__hsub2(__hadd2(r, r), r), r), r), r, r);
  r = __habs2(__hneg2(r));
  r = (r + r - r) * r / r;
  r += r;
  r -= r;
  r *= r;
  r /= r;
  r = -(+r);
  const __nv_bfloat16_raw braw = b;
  b = braw;
  const __nv_bfloat162_raw braw2 = r;
  r = braw2;
  b = __nv_bfloat16(x) + __nv_bfloat16(1.0) + __nv_bfloat16(3) + __nv_bfloat16(a);
  b = x;
  b = CUDART_INF_BF16;
  b = CUDART_NAN_BF16;
  b = CUDART_MIN_DENORM_BF16 + CUDART_MAX_NORMAL_BF16 + CUDART_NEG_ZERO_BF16 + CUDART_ZERO_BF16 +
      CUDART_ONE_BF16;
  bout[threadIdx.x] = b + __low2bfloat16(r);
  hout[32 + threadIdx.x] = __half(b);

  fout[2] = nvcuda::wmma::__float_to_tf32(x);
  hout[64 + threadIdx.x] = __shfl_xor_sync(0xffffffffu, a, 1);
  bout[64 + threadIdx.x] = __shfl_xor_sync(0xffffffffu, b, 1);
}

// The host-callable part of the API is also usable from host code.
float host_side(float x) {
  return __half2float(__float2half(x)) + __bfloat162float(__float2bfloat16(x)) +
         __low2float(__floats2half2_rn(x, x));
}
"""


def run_compiler(command: list[str], timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


@needs_cxx
@pytest.mark.parametrize("first", ["launch.cuh", "cuda_fp16.h"])
def test_api_kernel_compiles_with_the_emulator(tmp_path, first):
    source = API_KERNEL
    if first == "cuda_fp16.h":  # the emulator's headers may also come before launch.cuh
        source = "#include <cuda_fp16.h>\n#include <cuda_bf16.h>\n" + source
    path = tmp_path / "half_api.cpp"
    path.write_text(source)
    command = [CXX, *CXXFLAGS, "-fsyntax-only", f"-I{KERNELS}", f"-I{EMU_INCLUDE}", str(path)]
    result = run_compiler(command)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stderr[-6000:]}"


@needs_cxx
@pytest.mark.parametrize("header", ["cuda_fp16.h", "cuda_bf16.h", "mw_emu_tf32.h"])
def test_headers_compile_alone(tmp_path, header):
    path = tmp_path / "alone.cpp"
    path.write_text(f"#include <{header}>\n#include <{header}>\nint main() {{ return 0; }}\n")
    command = [CXX, *CXXFLAGS, "-Wpedantic", "-fsyntax-only", f"-I{EMU_INCLUDE}", str(path)]
    result = run_compiler(command)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stderr[-6000:]}"


@needs_cxx
def test_headers_refuse_nvcc(tmp_path):
    """Under nvcc the toolkit's headers must be used: the emulator's stop with an #error."""
    path = tmp_path / "nvcc.cpp"
    path.write_text("#include <cuda_fp16.h>\n")
    command = [CXX, "-std=c++20", "-D__CUDACC__", "-fsyntax-only", f"-I{EMU_INCLUDE}", str(path)]
    result = run_compiler(command)
    assert result.returncode != 0 and "the emulator's" in result.stderr


@pytest.mark.skipif(NVCC is None, reason="nvcc not on PATH")
def test_api_kernel_compiles_with_cuda_headers(tmp_path):
    """The same kernel against the CUDA toolkit's headers (kernels/emu/include not on the path)."""
    path = tmp_path / "half_api.cu"
    path.write_text(API_KERNEL)
    command = [
        NVCC,
        "-std=c++20",
        "-x",
        "cu",
        "-arch=sm_80",
        "-c",
        f"-I{KERNELS}",
        str(path),
        "-o",
        str(tmp_path / "half_api.o"),
    ]
    result = run_compiler(command, timeout=600)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stderr[-6000:]}"
