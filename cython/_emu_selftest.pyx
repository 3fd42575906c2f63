# cython: language_level=3, boundscheck=False, wraparound=False
"""Self-test kernels of the CUDA emulator (tests/emu/selftest_kernels.cu) and its settings.

The kernels here are test kernels, not the library's: correct ones whose results NumPy checks
exactly, and deliberately wrong ones that must make the emulator report a diagnostic. Every
failed launch raises :class:`EmulatorError` carrying the emulator's message (file:line, block,
thread).
"""

import numpy as np

cdef extern from "emu/mw_emu_config.h" nogil:
    int mw_emu_set_workers(int n)
    int mw_emu_get_workers()
    int mw_emu_set_order(int order, unsigned long long seed)
    int mw_emu_get_order()
    unsigned long long mw_emu_get_order_seed()
    int mw_emu_set_context_switch(int method)
    int mw_emu_get_context_switch()
    int mw_emu_has_asm_switch()
    int mw_emu_set_stack_kb(int kib)
    int mw_emu_get_stack_kb()

cdef extern from "selftest_kernels.h" nogil:
    const char* mw_selftest_last_error_message()
    const char* mw_selftest_error_string(int status)
    int mw_selftest_sgemm(const float* a, const float* b, float* c, int m, int n, int k)
    int mw_selftest_block_reduce(const float* x, float* sums, int n, int threads)
    int mw_selftest_histogram(const int* values, int n, int* bins, int num_bins)
    int mw_selftest_weighted_histogram(const int* values, const float* weights, int n,
                                       float* float_bins, double* double_bins, int num_bins)
    int mw_selftest_batched_axpy(const float* x, const float* y, float* out, int batch,
                                 int rows, int cols, float alpha)
    int mw_selftest_atomics(const int* x, int n, double* results, int* exchanged)
    int mw_selftest_shuffle_semantics(int width, int* out)
    int mw_selftest_neighbor_sum(const float* x, float* out, int n, int threads,
                                 int with_barrier)
    int mw_selftest_conv3x3(const float* x, const float* w, float* y, int n, int c, int k,
                            int h, int width)
    int mw_selftest_early_return_divergence(float* out)
    int mw_selftest_barrier_mismatch(float* out)
    int mw_selftest_read_unwritten_shared(float* out, int threads)
    int mw_selftest_shared_overflow(int threads)
    int mw_selftest_bad_shuffle(int which, int* out)
    int mw_selftest_launch_config(unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                                  unsigned by, unsigned bz, size_t shared_bytes, int opt_in,
                                  int* flag)
    int mw_selftest_vector_access(const float* x, float* out, int vectors, int width,
                                  int offset, int store)


try:  # the package's error hierarchy when available (it derives from RuntimeError)
    from magma_wino.errors import EmulatorError as _EmulatorErrorBase
except ImportError:
    _EmulatorErrorBase = RuntimeError


class EmulatorError(_EmulatorErrorBase):
    """A kernel launch failed in the emulator.

    ``code`` is the cudaError_t value (9: invalid configuration, 719: launch failure) and the
    message carries the emulator's diagnostic (file:line, block, thread).
    """

    def __init__(self, message, code):
        super().__init__(message)
        self.code = code


cdef int _check(int status) except -1:
    if status != 0:
        detail = mw_selftest_last_error_message().decode("utf-8", "replace")
        name = mw_selftest_error_string(status).decode("utf-8", "replace")
        raise EmulatorError(f"{name} (cudaError {status}): {detail}", status)
    return 0


# WMMA test kernels and the fragment-permutation setting (tests/emu/wmma_kernels.cu).
include "_emu_wmma.pxi"
# mma.sp test kernels (tests/emu/mma_sp_kernels.cu, kernels/mma_sp.cuh).
include "_emu_mma_sp.pxi"


# ---- settings ---------------------------------------------------------------------------------
_ORDERS = {"forward": 0, "reverse": 1, "shuffle": 2}
_SWITCHES = {"asm": 0, "ucontext": 1}


def set_workers(int n):
    """Worker threads for the following launches (0 = number of cores)."""
    if mw_emu_set_workers(n) != 0:
        raise ValueError(f"invalid worker count {n}")


def get_workers():
    return mw_emu_get_workers()


def set_order(order, unsigned long long seed=0):
    """Order in which the fibers of a block run: 'forward', 'reverse' or 'shuffle' (seeded)."""
    code = _ORDERS.get(order, order) if isinstance(order, str) else order
    if not isinstance(code, int) or mw_emu_set_order(code, seed) != 0:
        raise ValueError(f"invalid order {order!r}")


def get_order():
    return {v: k for k, v in _ORDERS.items()}[mw_emu_get_order()], mw_emu_get_order_seed()


def set_context_switch(method):
    """'asm' (hand-written x86-64 switch) or 'ucontext' (portable glibc swapcontext)."""
    if method not in _SWITCHES or mw_emu_set_context_switch(_SWITCHES[method]) != 0:
        raise ValueError(f"context switch {method!r} is not available in this build")


def get_context_switch():
    return {v: k for k, v in _SWITCHES.items()}[mw_emu_get_context_switch()]


def has_asm_switch():
    return bool(mw_emu_has_asm_switch())


def set_stack_kb(int kib):
    if mw_emu_set_stack_kb(kib) != 0:
        raise ValueError(f"invalid fiber stack size {kib} KiB")


def get_stack_kb():
    return mw_emu_get_stack_kb()


# ---- correct kernels --------------------------------------------------------------------------
def _f32(a):
    return np.ascontiguousarray(a, dtype=np.float32)


def _i32(a):
    return np.ascontiguousarray(a, dtype=np.int32)


def sgemm(a, b):
    """a (m x k) @ b (k x n) in float32 by the tiled shared-memory kernel."""
    a, b = _f32(a), _f32(b)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError("sgemm needs a (m x k) and b (k x n)")
    cdef int m = a.shape[0], k = a.shape[1], n = b.shape[1]
    c = np.full((m, n), np.nan, dtype=np.float32)
    cdef float[:, ::1] av = a, bv = b, cv = c
    cdef int status
    with nogil:
        status = mw_selftest_sgemm(&av[0, 0], &bv[0, 0], &cv[0, 0], m, n, k)
    _check(status)
    return c


def block_reduce(x, int threads=256):
    """Per-block sums of x (blocks of `threads`, a multiple of 32) by warp shuffles."""
    x = _f32(x)
    cdef int n = x.shape[0]
    sums = np.full((n + threads - 1) // threads, np.nan, dtype=np.float32)
    cdef float[::1] xv = x, sv = sums
    cdef int status
    with nogil:
        status = mw_selftest_block_reduce(&xv[0], &sv[0], n, threads)
    _check(status)
    return sums


def histogram(values, int num_bins):
    values = _i32(values)
    if values.size and (values.min() < 0 or values.max() >= num_bins):
        raise ValueError("values must lie in [0, num_bins)")
    bins = np.zeros(num_bins, dtype=np.int32)
    cdef int[::1] vv = values, bv = bins
    cdef int n = values.shape[0], status
    with nogil:
        status = mw_selftest_histogram(&vv[0], n, &bv[0], num_bins)
    _check(status)
    return bins


def weighted_histogram(values, weights, int num_bins):
    """(float32 bins, float64 bins) accumulated with float and double atomicAdd."""
    values, weights = _i32(values), _f32(weights)
    fbins = np.zeros(num_bins, dtype=np.float32)
    dbins = np.zeros(num_bins, dtype=np.float64)
    cdef int[::1] vv = values
    cdef float[::1] wv = weights, fv = fbins
    cdef double[::1] dv = dbins
    cdef int n = values.shape[0], status
    with nogil:
        status = mw_selftest_weighted_histogram(&vv[0], &wv[0], n, &fv[0], &dv[0], num_bins)
    _check(status)
    return fbins, dbins


def batched_axpy(x, y, float alpha):
    """alpha * x + y for a (batch, rows, cols) stack, one grid z-slice per matrix."""
    x, y = _f32(x), _f32(y)
    if x.ndim != 3 or x.shape != y.shape:
        raise ValueError("x and y must be equal (batch, rows, cols) arrays")
    out = np.full(x.shape, np.nan, dtype=np.float32)
    cdef float[:, :, ::1] xv = x, yv = y, ov = out
    cdef int batch = x.shape[0], rows = x.shape[1], cols = x.shape[2], status
    with nogil:
        status = mw_selftest_batched_axpy(&xv[0, 0, 0], &yv[0, 0, 0], &ov[0, 0, 0], batch, rows,
                                          cols, alpha)
    _check(status)
    return out


def atomics(x):
    """Returns ([max as int, as float, as double, CAS count, final exchange slot], exchanged)."""
    x = _i32(x)
    results = np.zeros(5, dtype=np.float64)
    exchanged = np.full(x.shape[0], -7, dtype=np.int32)
    cdef int[::1] xv = x, ev = exchanged
    cdef double[::1] rv = results
    cdef int n = x.shape[0], status
    with nogil:
        status = mw_selftest_atomics(&xv[0], n, &rv[0], &ev[0])
    _check(status)
    return results, exchanged


def shuffle_semantics(int width=32):
    """(7, 32) int32: shfl(l*3+1), shfl_up(3), shfl_down(5), shfl_xor(6), ballot, any, all."""
    out = np.full((7, 32), -1, dtype=np.int32)
    cdef int[:, ::1] ov = out
    cdef int status
    with nogil:
        status = mw_selftest_shuffle_semantics(width, &ov[0, 0])
    _check(status)
    return out


def neighbor_sum(x, int threads=64, bint with_barrier=True):
    """out[i] = x[i] + x[i-1] within blocks of `threads`, through shared memory."""
    x = _f32(x)
    out = np.full(x.shape[0], np.nan, dtype=np.float32)
    cdef float[::1] xv = x, ov = out
    cdef int n = x.shape[0], status
    with nogil:
        status = mw_selftest_neighbor_sum(&xv[0], &ov[0], n, threads, with_barrier)
    _check(status)
    return out


def conv3x3(x, w):
    """Direct 3x3 convolution, zero padding 1: x (N, C, H, W), w (K, C, 3, 3) -> (N, K, H, W)."""
    x, w = _f32(x), _f32(w)
    if x.ndim != 4 or w.ndim != 4 or w.shape[1] != x.shape[1] or w.shape[2:] != (3, 3):
        raise ValueError("conv3x3 needs x (N, C, H, W) and w (K, C, 3, 3)")
    cdef int n = x.shape[0], c = x.shape[1], h = x.shape[2], wd = x.shape[3], k = w.shape[0]
    y = np.full((n, k, h, wd), np.nan, dtype=np.float32)
    cdef float[:, :, :, ::1] xv = x, wv = w, yv = y
    cdef int status
    with nogil:
        status = mw_selftest_conv3x3(&xv[0, 0, 0, 0], &wv[0, 0, 0, 0], &yv[0, 0, 0, 0], n, c, k,
                                     h, wd)
    _check(status)
    return y


# ---- kernels that must trigger a diagnostic ---------------------------------------------------
def early_return_divergence():
    out = np.zeros(64, dtype=np.float32)
    cdef float[::1] ov = out
    cdef int status
    with nogil:
        status = mw_selftest_early_return_divergence(&ov[0])
    _check(status)
    return out


def barrier_mismatch():
    out = np.zeros(64, dtype=np.float32)
    cdef float[::1] ov = out
    cdef int status
    with nogil:
        status = mw_selftest_barrier_mismatch(&ov[0])
    _check(status)
    return out


def read_unwritten_shared(int threads=64):
    """out[t] = dynamic shared[t] where only even t were written."""
    out = np.zeros(threads, dtype=np.float32)
    cdef float[::1] ov = out
    cdef int status
    with nogil:
        status = mw_selftest_read_unwritten_shared(&ov[0], threads)
    _check(status)
    return out


def shared_overflow(int threads=64):
    cdef int status
    with nogil:
        status = mw_selftest_shared_overflow(threads)
    _check(status)


BAD_SHUFFLES = {
    "lane_not_in_mask": 0,
    "masks_disagree": 1,
    "absent_lane": 2,
    "exited_lane": 3,
    "deadlock": 4,
    "bad_width": 5,
}


def bad_shuffle(which):
    out = np.zeros(32, dtype=np.int32)
    cdef int[::1] ov = out
    cdef int code = BAD_SHUFFLES[which], status
    with nogil:
        status = mw_selftest_bad_shuffle(code, &ov[0])
    _check(status)
    return out


def launch_config(grid, block, size_t shared_bytes=0, bint opt_in=True):
    """Launches a trivial kernel; returns True when thread (0,0,0) of block (0,0,0) ran.
    More than 48 KiB of dynamic shared memory is opted in first (cudaFuncSetAttribute) unless
    ``opt_in`` is False."""
    gx, gy, gz = (tuple(grid) + (1, 1, 1))[:3]
    bx, by, bz = (tuple(block) + (1, 1, 1))[:3]
    flag = np.zeros(1, dtype=np.int32)
    cdef int[::1] fv = flag
    cdef int status
    cdef int optin = opt_in
    cdef unsigned ugx = gx, ugy = gy, ugz = gz, ubx = bx, uby = by, ubz = bz
    with nogil:
        status = mw_selftest_launch_config(ugx, ugy, ugz, ubx, uby, ubz, shared_bytes, optin,
                                           &fv[0])
    _check(status)
    return bool(flag[0])


def _aligned_f32(int n, fill):
    """n float32 whose first element is 64-byte aligned (what a cudaMalloc'd buffer gives)."""
    raw = np.empty(n + 16, dtype=np.float32)
    skip = (-raw.ctypes.data % 64) // 4
    out = raw[skip:skip + n]
    out[...] = fill
    return out


def vector_access(x, int width, int offset, bint store=False):
    """2 * x through one `width`-float vector access per thread (2: 8 bytes, 4: 16 bytes).

    The vector side is offset by `offset` floats from a 64-byte aligned buffer: the load of x
    (store=False) or the store of the result (store=True).  len(x) must be a multiple of width.
    Offsets that are not multiples of width make the access misaligned: EmulatorError 716.
    """
    x = _f32(x).ravel()
    if x.shape[0] % width != 0:
        raise ValueError("len(x) must be a multiple of width")
    cdef int vectors = x.shape[0] // width, n = x.shape[0], status
    src = _aligned_f32(n + (0 if store else offset), 0.0)
    src[src.shape[0] - n:] = x
    dst = _aligned_f32(n + (offset if store else 0), np.nan)
    cdef float[::1] sv = src, dv = dst
    with nogil:
        status = mw_selftest_vector_access(&sv[0], &dv[0], vectors, width, offset, store)
    _check(status)
    return dst[dst.shape[0] - n:].copy()


# ---- asynchronous copies (tests/emu/pipeline_kernels.cu) --------------------------------------
cdef extern from "emu/mw_emu_config.h" nogil:
    int mw_emu_set_async_copy(int mode, unsigned long long seed)
    int mw_emu_get_async_copy()
    unsigned long long mw_emu_get_async_copy_seed()

cdef extern from "pipeline_kernels.h" nogil:
    int mw_pipe_gemm(const float* a, const float* b, float* c, int m, int n, int k, int width,
                     int variant)
    int mw_pipe_zfill(const float* src, float* out, int size, int zfill)
    int mw_pipe_bad_copy(const float* src, int which)
    int mw_pipe_copy_from(const float* src, int offset, float* out)

_ASYNC_COPY = {"late": 0, "random": 1}
PIPE_GEMM_VARIANTS = {
    "correct": 0,
    "no_wait": 1,
    "wait_too_short": 2,
    "skip_empty_commit": 3,
    "no_refill_barrier": 4,
}
BAD_COPIES = {"size12": 0, "misaligned_src": 1, "misaligned_dst": 2, "zfill_too_large": 3}


def set_async_copy(mode, unsigned long long seed=0):
    """When __pipeline_memcpy_async copies complete: 'late' (at the covering wait) or 'random'
    (possibly earlier, at a barrier or pipeline call of the thread, by a seeded coin)."""
    if mode not in _ASYNC_COPY or mw_emu_set_async_copy(_ASYNC_COPY[mode], seed) != 0:
        raise ValueError(f"invalid asynchronous-copy mode {mode!r}")


def get_async_copy():
    return {v: k for k, v in _ASYNC_COPY.items()}[mw_emu_get_async_copy()], mw_emu_get_async_copy_seed()


def pipe_gemm(a, b, int width=4, variant="correct"):
    """a @ b by the double-buffered __pipeline_memcpy_async GEMM (`width` floats per copy)."""
    a, b = _f32(a), _f32(b)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise ValueError("pipe_gemm needs a (m x k) and b (k x n)")
    cdef int m = a.shape[0], k = a.shape[1], n = b.shape[1], status
    cdef int code = PIPE_GEMM_VARIANTS[variant]
    if k % width or n % width:
        raise ValueError("k and n must be multiples of width")
    a_al = _aligned_f32(m * k, 0.0)
    a_al[...] = a.ravel()
    b_al = _aligned_f32(k * n, 0.0)
    b_al[...] = b.ravel()
    c = np.full(m * n, 12345.0, dtype=np.float32)
    cdef float[::1] av = a_al, bv = b_al, cv = c
    with nogil:
        status = mw_pipe_gemm(&av[0], &bv[0], &cv[0], m, n, k, width, code)
    _check(status)
    return c.reshape(m, n)


def pipe_zfill(src, int size, int zfill):
    """The 4 floats of a 16-byte shared slot after one copy of `size` bytes with `zfill`."""
    s = _aligned_f32(4, 0.0)
    s[...] = _f32(src).ravel()[:4]
    out = np.zeros(4, dtype=np.float32)
    cdef float[::1] sv = s, ov = out
    cdef int status
    with nogil:
        status = mw_pipe_zfill(&sv[0], &ov[0], size, zfill)
    _check(status)
    return out


def pipe_bad_copy(which):
    s = _aligned_f32(8, 1.0)
    cdef float[::1] sv = s
    cdef int code = BAD_COPIES[which], status
    with nogil:
        status = mw_pipe_bad_copy(&sv[0], code)
    _check(status)
