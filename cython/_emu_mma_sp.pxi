# The emulator's mma.sp test kernels (tests/emu/mma_sp_kernels.cu: kernels/mma_sp.cuh's warp
# collective); included by _emu_selftest.pyx after _emu_wmma.pxi (uses its _aligned, bf16_bits,
# and _check).

from libc.stdint cimport uint16_t, uint32_t

cdef extern from "mma_sp_kernels.h" nogil:
    int mw_selftest_mma_sp(int kind, int selector, const void* a_values, const void* b,
                           const float* c, const uint32_t* meta, float* d)
    int mw_selftest_mma_sp_bad(int which)
    int mw_selftest_ldmatrix_trans(const uint16_t* tile, int stride, int offset, uint32_t* out)


# kind -> (code, dense k, operand storage dtype); "bf16" operands travel as their 16 bits.
MMA_SP_KINDS = {
    "f16": (0, 16, np.float16),
    "bf16": (1, 16, np.uint16),
    "tf32": (2, 8, np.float32),
}


def mma_sp(kind, int selector, a_values, b, meta, c=None):
    """One sparse MMA on one warp: d (16 x 8 float32) = A · b + c.

    a_values: 16 x k/2 stored values of A (k = 16, 8 for "tf32"), b: k x 8, both converted to
    the kind's storage (binary16, bfloat16 rounded to nearest even, float32 unconverted: the
    tensor core truncates TF32); meta: the 32 lanes' metadata registers (uint32), of which the
    selector's lanes are read; c: 16 x 8 (None: zero).
    """
    code, k, dtype = MMA_SP_KINDS[kind]
    a_values, b = np.asarray(a_values), np.asarray(b)
    if a_values.shape != (16, k // 2) or b.shape != (k, 8):
        raise ValueError(f"mma_sp {kind}: a_values must be 16 x {k // 2}, b {k} x 8")
    def stage(x):
        buf = _aligned(x.shape, dtype)
        buf[...] = bf16_bits(x) if dtype == np.uint16 else x.astype(dtype)
        return buf
    a_buf, b_buf = stage(a_values), stage(b)
    m_buf = _aligned((32,), np.uint32)
    m_buf[...] = np.asarray(meta, dtype=np.uint32)
    c_buf = None if c is None else _aligned((16, 8), np.float32)
    if c_buf is not None:
        c_buf[...] = np.broadcast_to(np.asarray(c, dtype=np.float32), (16, 8))
    d_buf = _aligned((16, 8), np.float32, np.nan)
    cdef uintptr_t pa = a_buf.ctypes.data, pb = b_buf.ctypes.data, pd = d_buf.ctypes.data
    cdef uintptr_t pm = m_buf.ctypes.data, pc = 0 if c_buf is None else c_buf.ctypes.data
    cdef int icode = code, status
    with nogil:
        status = mw_selftest_mma_sp(icode, selector, <const void*>pa, <const void*>pb,
                                    <const float*>pc, <const uint32_t*>pm, <float*>pd)
    _check(status)
    return d_buf.copy()


BAD_MMA_SP = {"divergent_lanes": 0, "different_calls": 1, "partial_warp": 2}


def mma_sp_bad(which):
    """Runs a deliberately wrong mma.sp kernel (BAD_MMA_SP); it must raise EmulatorError."""
    cdef int code = BAD_MMA_SP[which], status
    with nogil:
        status = mw_selftest_mma_sp_bad(code)
    _check(status)


def ldmatrix_trans(tile, int stride=8, int offset=0):
    """ldmatrix .x4 .trans on one warp: tile (32 x 8, 16-bit values as uint16; matrix i = rows
    8i .. 8i+7) staged in shared memory with row stride `stride` at `offset` elements past a
    16-byte boundary; returns the registers, uint32 32 lanes x 4."""
    t_buf = _aligned((32, 8), np.uint16)
    t_buf[...] = np.asarray(tile, dtype=np.uint16)
    out = _aligned((32, 4), np.uint32)
    cdef uintptr_t pt = t_buf.ctypes.data, po = out.ctypes.data
    cdef int status
    with nogil:
        status = mw_selftest_ldmatrix_trans(<const uint16_t*>pt, stride, offset, <uint32_t*>po)
    _check(status)
    return out.copy()
