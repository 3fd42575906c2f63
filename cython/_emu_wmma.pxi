# The emulator's WMMA test kernels (tests/emu/wmma_kernels.cu) and the fragment-permutation
# setting; included by _emu_selftest.pyx (uses its np, _check and EmulatorError).

from libc.stdint cimport uintptr_t

cdef extern from "emu/mw_emu_config.h" nogil:
    int mw_emu_set_fragment_permutation(int enabled, unsigned long long seed)
    int mw_emu_get_fragment_permutation(unsigned long long* seed)

cdef extern from "wmma_kernels.h" nogil:
    int mw_selftest_wmma_gemm(int precision, const void* a, int a_col, const void* b, int b_col,
                              const void* c, int c_col, void* d, int d_col, int m, int n, int k)
    int mw_selftest_wmma_assume_mapping(const float* a, const float* b, float* d)
    int mw_selftest_wmma_bad(int which, float* buffer)


def set_fragment_permutation(seed):
    """Permute the element-to-lane mapping of WMMA fragments by `seed`; None: default mapping."""
    if seed is None:
        mw_emu_set_fragment_permutation(0, 0)
    elif mw_emu_set_fragment_permutation(1, int(seed)) != 0:
        raise ValueError(f"invalid fragment permutation seed {seed!r}")


def get_fragment_permutation():
    """The permutation seed, or None when fragments use the default mapping."""
    cdef unsigned long long seed = 0
    enabled = mw_emu_get_fragment_permutation(&seed)
    return int(seed) if enabled else None


# precision -> (code, operand storage dtype, accumulator dtype); "bf16" operands travel as their
# 16 bits (uint16), rounded to nearest even from float32.
WMMA_PRECISIONS = {
    "tf32": (0, np.float32, np.float32),
    "tf32-raw": (1, np.float32, np.float32),
    "tf32x3": (2, np.float32, np.float32),
    "bf16": (3, np.uint16, np.float32),
    "fp16": (4, np.float16, np.float32),
    "fp16-acc16": (5, np.float16, np.float16),
    "fp64": (6, np.float64, np.float64),
}


def _aligned(shape, dtype, fill=0):
    """A C-contiguous array of `shape` whose data is 64-byte aligned (as cudaMalloc gives)."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    raw = np.zeros(nbytes + 64, dtype=np.uint8)
    skip = -raw.ctypes.data % 64
    out = raw[skip:skip + nbytes].view(dtype).reshape(shape)
    out[...] = fill
    return out


def bf16_bits(x):
    """float32 -> bfloat16 bits (uint16), round to nearest even (finite inputs)."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def _stage(x, bint col, dtype):
    """x in memory as `dtype`, row-major or (col) column-major, in an aligned buffer."""
    x = np.asarray(x)
    if col:
        x = x.T
    buf = _aligned(x.shape, dtype)
    buf[...] = bf16_bits(x) if dtype == np.uint16 else x.astype(dtype)
    return buf


def wmma_gemm(a, b, c=None, precision="tf32", bint a_col=False, bint b_col=False,
              bint c_col=False, bint d_col=False):
    """a (m x k) @ b (k x n) + c through nvcuda::wmma, one warp per output tile.

    The operands are first stored in the precision's operand format (float32 for the TF32
    modes, bfloat16 rounded to nearest even, float16, float64), c in the accumulator's
    (float32, float16 for "fp16-acc16", float64); *_col selects column-major storage. Returns d
    (float32, float16 or float64) as an m x n array.
    """
    code, operand_dtype, acc_dtype = WMMA_PRECISIONS[precision]
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError("wmma_gemm needs a (m x k) and b (k x n)")
    cdef int m = a.shape[0], k = a.shape[1], n = b.shape[1], icode = code, status
    a_buf, b_buf = _stage(a, a_col, operand_dtype), _stage(b, b_col, operand_dtype)
    c_buf = None if c is None else _stage(np.broadcast_to(c, (m, n)), c_col, acc_dtype)
    d_buf = _aligned((n, m) if d_col else (m, n), acc_dtype, np.nan)
    cdef uintptr_t pa = a_buf.ctypes.data, pb = b_buf.ctypes.data, pd = d_buf.ctypes.data
    cdef uintptr_t pc = 0 if c_buf is None else c_buf.ctypes.data
    with nogil:
        status = mw_selftest_wmma_gemm(icode, <const void*>pa, a_col, <const void*>pb, b_col,
                                       <const void*>pc, c_col, <void*>pd, d_col, m, n, k)
    _check(status)
    return d_buf.T.copy() if d_col else d_buf.copy()


def wmma_assume_mapping(a, b):
    """16x8 @ 8x16 (TF32) written out as if lane l held elements 8l..8l+7 of the tile."""
    a_buf = _stage(np.asarray(a).reshape(16, 8), False, np.float32)
    b_buf = _stage(np.asarray(b).reshape(8, 16), False, np.float32)
    d_buf = _aligned((16, 16), np.float32, np.nan)
    cdef uintptr_t pa = a_buf.ctypes.data, pb = b_buf.ctypes.data, pd = d_buf.ctypes.data
    cdef int status
    with nogil:
        status = mw_selftest_wmma_assume_mapping(<const float*>pa, <const float*>pb,
                                                 <float*>pd)
    _check(status)
    return d_buf.copy()


BAD_WMMA = {
    "misaligned_load": 0,
    "bad_ldm_float": 1,
    "bad_ldm_half": 2,
    "divergent_lanes": 3,
    "ldm_disagrees": 4,
    "pointer_disagrees": 5,
    "different_calls": 6,
    "misaligned_store": 7,
    "partial_warp": 8,
    "deadlock": 9,
}


def wmma_bad(which):
    """Runs a deliberately wrong WMMA kernel (BAD_WMMA); it must raise EmulatorError."""
    buf = _aligned((1024,), np.float32, 1.0)
    cdef uintptr_t pb = buf.ctypes.data
    cdef int code = BAD_WMMA[which], status
    with nogil:
        status = mw_selftest_wmma_bad(code, <float*>pb)
    _check(status)
