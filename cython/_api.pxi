# The Python face of the C ABI, shared by the CUDA (_cuda.pyx) and emulator (_emu.pyx)
# extensions: each includes this file after setting BACKEND.  Arrays travel as raw
# pointers (int), streams as a cudaStream_t handle (int, 0 = legacy default stream); the
# Python layer (magma_wino/_backend.py) checks shapes and dtypes first, the C layer checks
# again and returns a status that _check() turns into an exception.
from libc.stdint cimport int32_t, int64_t, uint32_t, uintptr_t

from magma_wino_capi cimport *

from magma_wino import errors as _errors

FLOAT32 = MW_FLOAT32
FLOAT64 = MW_FLOAT64
FLOAT16 = MW_FLOAT16    # storage of U and V only (filter_transform_ex, input_transform_ex)
BFLOAT16 = MW_BFLOAT16
RELU_NONE = MW_RELU_NONE
RELU_SPATIAL = MW_RELU_SPATIAL
RELU_WINOGRAD = MW_RELU_WINOGRAD
PRECISION_FP32 = MW_PRECISION_FP32
PRECISION_TF32 = MW_PRECISION_TF32
PRECISION_TF32X3 = MW_PRECISION_TF32X3
PRECISION_BF16 = MW_PRECISION_BF16
PRECISION_FP16 = MW_PRECISION_FP16
PRECISION_FP64 = MW_PRECISION_FP64
LAYOUT_NCHW = MW_LAYOUT_NCHW
LAYOUT_NHWC = MW_LAYOUT_NHWC


cdef int _check(mw_status status, str what) except -1:
    if status == MW_STATUS_SUCCESS:
        return 0
    name = mw_status_name(status).decode()
    detail = mw_last_error_message().decode(errors="replace")
    msg = f"{what} [{BACKEND}]: {name}: {detail}"
    if status == MW_STATUS_INVALID_ARGUMENT:
        raise _errors.InvalidArgumentError(msg, name, detail)
    if status == MW_STATUS_UNSUPPORTED:
        raise _errors.UnsupportedError(msg, name, detail)
    if status == MW_STATUS_LAUNCH_FAILED:
        cls = _errors.EmulatorError if BACKEND == "emulator" else _errors.LaunchError
        raise cls(msg, name, detail)
    raise _errors.CudaError(msg, name, detail)


cdef class ConvDesc:
    """One layer (mw_conv_desc): ndim, F(m, r), N, C, K, input size and padding per axis.

    ``m`` and ``r`` are ints (a square tile) or ndim ints each, per axis ([D,] H, W): a
    rectangular tile F(m_h×m_w, r_h×r_w) (mw_conv_desc.m_axes / r_axes).  ``padding`` is the
    leading zero padding per axis, ``padding_end`` the trailing one (default: ``padding``, i.e.
    symmetric); the C layer validates the values (any >= 0).  ``layout``: LAYOUT_NCHW (0) or
    LAYOUT_NHWC (1), x and y channels first or last (mw_conv_desc.layout)."""

    cdef mw_conv_desc desc

    def __init__(self, int ndim, m, r, int64_t batch, int64_t in_channels,
                 int64_t out_channels, in_size, padding, padding_end=None, int layout=0):
        if padding_end is None:
            padding_end = padding
        if len(in_size) != ndim or len(padding) != ndim or len(padding_end) != ndim:
            raise ValueError(f"in_size, padding and padding_end must have {ndim} entries")
        ms = tuple(m) if isinstance(m, (tuple, list)) else (m,) * ndim
        rs = tuple(r) if isinstance(r, (tuple, list)) else (r,) * ndim
        if len(ms) != ndim or len(rs) != ndim:
            raise ValueError(f"m and r must be ints or {ndim} ints (one per axis), got m={m!r}, r={r!r}")
        # 0 in mw_conv_desc.m_axes / r_axes means "m / r": a 0 given per axis here would be read
        # as the first axis's value, not refused (negative values reach the C check, which names
        # the field)
        if isinstance(m, (tuple, list)) and 0 in ms or isinstance(r, (tuple, list)) and 0 in rs:
            raise ValueError(f"m and r per axis must be >= 1 on every axis, got m={m!r}, r={r!r}")
        self.desc.ndim = ndim
        self.desc.m = ms[0]
        self.desc.r = rs[0]
        self.desc.batch = batch
        self.desc.in_channels = in_channels
        self.desc.out_channels = out_channels
        for i in range(3):
            self.desc.in_size[i] = in_size[i] if i < ndim else 0
            self.desc.padding[i] = padding[i] if i < ndim else 0
            self.desc.padding_end[i] = padding_end[i] if i < ndim else 0
            self.desc.m_axes[i] = ms[i] if i < ndim else 0
            self.desc.r_axes[i] = rs[i] if i < ndim else 0
        self.desc.layout = layout

    def geometry(self, int dtype=MW_FLOAT32, v_dtype=None):
        """Validate the descriptor and return its derived sizes as a dict.

        ``workspace_bytes`` is V and M in ``dtype``; with ``v_dtype`` FLOAT16 or BFLOAT16 (and
        dtype FLOAT32: the 16-bit modes) V is 2 bytes per element and M stays float32.
        ``x_elems`` … ``matrices_elems``: the element counts of every array of the layer."""
        cdef mw_conv_geometry g
        _check(mw_conv_get_geometry(&self.desc, <mw_dtype>dtype, &g), "conv geometry")
        workspace = g.workspace_bytes
        if v_dtype is not None and v_dtype != dtype:
            if v_dtype not in (MW_FLOAT16, MW_BFLOAT16) or dtype != MW_FLOAT32:
                raise ValueError(
                    f"v_dtype must be FLOAT16 or BFLOAT16 with dtype FLOAT32 (or equal to dtype), "
                    f"got v_dtype={v_dtype!r} with dtype={dtype}")
            workspace = g.positions * g.num_tiles * (
                2 * self.desc.in_channels + 4 * self.desc.out_channels)
        nd = self.desc.ndim
        return {
            "alpha": g.alpha,
            "positions": g.positions,
            "out_size": tuple(g.out_size[i] for i in range(nd)),
            "tiles": tuple(g.tiles[i] for i in range(nd)),
            "num_tiles": g.num_tiles,
            "workspace_bytes": workspace,
            # elements of every array of the layer (mw_conv_geometry's *_elems)
            "x_elems": g.x_elems, "y_elems": g.y_elems, "w_elems": g.w_elems, "u_elems": g.u_elems,
            "v_elems": g.v_elems, "m_elems": g.m_elems, "matrices_elems": g.matrices_elems,
            "csr_row_ptr_elems": g.csr_row_ptr_elems, "bsr_row_ptr_elems": g.bsr_row_ptr_elems,
            "bsr_max_blocks": g.bsr_max_blocks,
            "alpha_axes": tuple(g.alpha_axes[i] for i in range(nd)),
            "rectangular": bool(g.rectangular),
        }


def has_specialized_transform(int ndim, int m, int r):
    """Whether F(m, r) in ndim dimensions has a compile-time-coefficient kernel in this build."""
    return bool(mw_has_specialized_transform(ndim, m, r))


def has_specialized_tile(ConvDesc d):
    """Whether the descriptor's tile (square, or the 2D lines F(1×m, 1×r) / F(m×1, r×1) of a
    specialised F(m, r)) has compile-time-coefficient forward kernels (matrices may be NULL)."""
    return bool(mw_has_specialized_tile(&d.desc))


def winograd_matrices(int m, int r, points=None, int dtype=MW_FLOAT64):
    """Aᵀ, G, Bᵀ of F(m, r) back to back (mw_winograd_matrices) as a NumPy array of ``dtype``
    (MW_FLOAT32 / MW_FLOAT64); ``points``: None (the defaults) or alpha - 1 (num, den) pairs."""
    import numpy as np

    cdef int alpha = m + r - 1
    n = max(m, 1) * max(alpha, 1) + max(alpha, 1) * max(r, 1) + max(alpha, 1) * max(alpha, 1)
    out = np.empty(n, np.float64 if dtype == MW_FLOAT64 else np.float32)
    cdef int64_t[::1] num_v, den_v
    cdef const int64_t* num_p = NULL
    cdef const int64_t* den_p = NULL
    if points is not None:
        if len(points) != alpha - 1:
            raise ValueError(f"points: F({m}, {r}) needs alpha - 1 = {alpha - 1} (num, den) pairs, got {len(points)}")
        num_v = np.ascontiguousarray([int(p[0]) for p in points] or [0], dtype=np.int64)
        den_v = np.ascontiguousarray([int(p[1]) for p in points] or [1], dtype=np.int64)
        num_p, den_p = &num_v[0], &den_v[0]
    cdef size_t ptr = out.ctypes.data
    _check(mw_winograd_matrices(m, r, num_p, den_p, <mw_dtype>dtype, <void*>ptr), "mw_winograd_matrices")
    return out


def version():
    """MW_VERSION of the linked C library (major * 10000 + minor * 100 + patch)."""
    return mw_get_version()


def build_info():
    """Backend, architectures and specialised tiles of this build, as a dict."""
    info = mw_build_info().decode()
    return dict(item.split("=", 1) for item in info.split(";"))


def filter_transform(ConvDesc d, int dtype, uintptr_t w, uintptr_t U, uintptr_t matrices,
                     uintptr_t stream):
    cdef mw_status st
    with nogil:
        st = mw_filter_transform(&d.desc, <mw_dtype>dtype, <const void*>w, <void*>U,
                                 <const void*>matrices, <mw_stream>stream)
    _check(st, "filter transform")


def input_transform(ConvDesc d, int dtype, uintptr_t x, uintptr_t V, int relu,
                    uintptr_t matrices, uintptr_t stream):
    cdef mw_status st
    with nogil:
        st = mw_input_transform(&d.desc, <mw_dtype>dtype, <const void*>x, <void*>V,
                                <mw_relu>relu, <const void*>matrices, <mw_stream>stream)
    _check(st, "input transform")


def filter_transform_ex(ConvDesc d, int dtype, int u_dtype, uintptr_t w, uintptr_t U,
                        uintptr_t matrices, uintptr_t stream):
    """filter_transform computed in `dtype`, U stored as `u_dtype` (FLOAT16 / BFLOAT16 with
    dtype FLOAT32: rounded to nearest even)."""
    cdef mw_status st
    with nogil:
        st = mw_filter_transform_ex(&d.desc, <mw_dtype>dtype, <mw_dtype>u_dtype, <const void*>w,
                                    <void*>U, <const void*>matrices, <mw_stream>stream)
    _check(st, "filter transform")


def input_transform_ex(ConvDesc d, int dtype, int v_dtype, uintptr_t x, uintptr_t V, int relu,
                       uintptr_t matrices, uintptr_t stream):
    """input_transform computed in `dtype`, V stored as `v_dtype` (FLOAT16 / BFLOAT16 with
    dtype FLOAT32: rounded to nearest even, after the ReLU)."""
    cdef mw_status st
    with nogil:
        st = mw_input_transform_ex(&d.desc, <mw_dtype>dtype, <mw_dtype>v_dtype, <const void*>x,
                                   <void*>V, <mw_relu>relu, <const void*>matrices,
                                   <mw_stream>stream)
    _check(st, "input transform")


def output_transform(ConvDesc d, int dtype, uintptr_t M, uintptr_t bias, uintptr_t y,
                     uintptr_t matrices, uintptr_t stream):
    cdef mw_status st
    with nogil:
        st = mw_output_transform(&d.desc, <mw_dtype>dtype, <const void*>M, <const void*>bias,
                                 <void*>y, <const void*>matrices, <mw_stream>stream)
    _check(st, "output transform")


def output_transform_adjoint(ConvDesc d, int dtype, uintptr_t dy, uintptr_t dM,
                             uintptr_t matrices, uintptr_t stream):
    """Adjoint of output_transform (no bias): dM (alpha^nd x K x P) from dy; matrices required."""
    cdef mw_status st
    with nogil:
        st = mw_output_transform_adjoint(&d.desc, <mw_dtype>dtype, <const void*>dy, <void*>dM,
                                         <const void*>matrices, <mw_stream>stream)
    _check(st, "output transform adjoint")


def input_transform_adjoint(ConvDesc d, int dtype, uintptr_t dV, uintptr_t dx,
                            uintptr_t matrices, uintptr_t stream):
    """Adjoint of input_transform (no ReLU): dx (N x C x [D x] H x W) from dV; matrices required."""
    cdef mw_status st
    with nogil:
        st = mw_input_transform_adjoint(&d.desc, <mw_dtype>dtype, <const void*>dV, <void*>dx,
                                        <const void*>matrices, <mw_stream>stream)
    _check(st, "input transform adjoint")


def filter_transform_adjoint(ConvDesc d, int dtype, uintptr_t dU, uintptr_t dw,
                             uintptr_t matrices, uintptr_t stream):
    """Adjoint of filter_transform: dw (K x C x r^nd) from dU; matrices required."""
    cdef mw_status st
    with nogil:
        st = mw_filter_transform_adjoint(&d.desc, <mw_dtype>dtype, <const void*>dU, <void*>dw,
                                         <const void*>matrices, <mw_stream>stream)
    _check(st, "filter transform adjoint")


def gemm_batched(int dtype, int64_t batch, int64_t m, int64_t n, int64_t k, uintptr_t A,
                 uintptr_t B, uintptr_t C, uintptr_t stream):
    cdef mw_status st
    with nogil:
        st = mw_gemm_batched(<mw_dtype>dtype, batch, m, n, k, <const void*>A, <const void*>B,
                             <void*>C, <mw_stream>stream)
    _check(st, "batched product")


def gemm_batched_ex(int dtype, int precision, int64_t batch, int64_t m, int64_t n, int64_t k,
                    uintptr_t A, uintptr_t B, uintptr_t C, uintptr_t stream):
    """C[b] = A[b] · B[b] in `precision` (PRECISION_FP32 / TF32 / TF32X3 / BF16 / FP16 / FP64);
    with BF16 / FP16, dtype is FLOAT32 (C, accumulation) and A, B are 16-bit."""
    cdef mw_status st
    with nogil:
        st = mw_gemm_batched_ex(<mw_dtype>dtype, <mw_precision>precision, batch, m, n, k,
                                <const void*>A, <const void*>B, <void*>C, <mw_stream>stream)
    _check(st, "batched product")


def gemm_batched_ex_workspace(int dtype, int precision, int64_t batch, int64_t m, int64_t n,
                              int64_t k):
    """Bytes of workspace gemm_batched_ex_ws would use for split-K (0: it would not split)."""
    cdef size_t nbytes = 0
    cdef mw_status st
    with nogil:
        st = mw_gemm_batched_ex_workspace(<mw_dtype>dtype, <mw_precision>precision, batch, m, n,
                                          k, &nbytes)
    _check(st, "batched product workspace")
    return nbytes


def gemm_batched_ex_plan(int dtype, int precision, int64_t batch, int64_t m, int64_t n,
                         int64_t k):
    """What gemm_batched_ex(_ws) runs for these sizes, as a dict: config (name), block_m,
    block_n, block_k, threads, blocks, splits, slices_per_split, sm_count, workspace_bytes."""
    cdef mw_gemm_plan p
    cdef mw_status st
    with nogil:
        st = mw_gemm_batched_ex_plan(<mw_dtype>dtype, <mw_precision>precision, batch, m, n, k, &p)
    _check(st, "batched product plan")
    return {
        "config": p.config.decode(),
        "block_m": p.block_m,
        "block_n": p.block_n,
        "block_k": p.block_k,
        "threads": p.threads,
        "blocks": p.blocks,
        "splits": p.splits,
        "slices_per_split": p.slices_per_split,
        "sm_count": p.sm_count,
        "workspace_bytes": p.workspace_bytes,
    }


def gemm_batched_ex_ws(int dtype, int precision, int64_t batch, int64_t m, int64_t n, int64_t k,
                       uintptr_t A, uintptr_t B, uintptr_t C, uintptr_t workspace,
                       size_t workspace_bytes, uintptr_t stream):
    """gemm_batched_ex with a split-K workspace (0 / too small: no split)."""
    cdef mw_status st
    with nogil:
        st = mw_gemm_batched_ex_ws(<mw_dtype>dtype, <mw_precision>precision, batch, m, n, k,
                                   <const void*>A, <const void*>B, <void*>C, <void*>workspace,
                                   workspace_bytes, <mw_stream>stream)
    _check(st, "batched product")


def conv2d_fused_plan(ConvDesc d, int dtype, int precision):
    """The fused kernel of this layer on the current device, as a dict (config, block_k,
    block_p, block_c, threads, blocks, shared_bytes); UnsupportedError (with the reason) when
    there is none."""
    cdef mw_fused_plan p
    cdef mw_status st
    with nogil:
        st = mw_conv2d_fused_plan(&d.desc, <mw_dtype>dtype, <mw_precision>precision, &p)
    _check(st, "fused layer plan")
    return {
        "config": p.config.decode(),
        "block_k": p.block_k,
        "block_p": p.block_p,
        "block_c": p.block_c,
        "threads": p.threads,
        "blocks": p.blocks,
        "shared_bytes": p.shared_bytes,
    }


def conv2d_fused(ConvDesc d, int dtype, int precision, int layout, int relu, bint relu_output,
                 uintptr_t x, uintptr_t U, uintptr_t bias, uintptr_t y, uintptr_t stream):
    """The whole 2D layer in one kernel: y = conv(x) with the plan's U (alpha² x K x C)."""
    cdef mw_status st
    cdef int ro = relu_output
    with nogil:
        st = mw_conv2d_fused(&d.desc, <mw_dtype>dtype, <mw_precision>precision, <mw_layout>layout,
                             <mw_relu>relu, ro, <const void*>x, <const void*>U, <const void*>bias,
                             <void*>y, <mw_stream>stream)
    _check(st, "fused layer")


def sp24_meta_words(int precision, int64_t batch, int64_t rows, int64_t cols):
    """Words of the metadata array of sp24_batched (mw_sp24_meta_words)."""
    cdef int64_t words
    with nogil:
        words = mw_sp24_meta_words(<mw_precision>precision, batch, rows, cols)
    if words < 0:
        _check(MW_STATUS_INVALID_ARGUMENT, "2:4 metadata size")
    return words


def sp24_batched(int dtype, int precision, int64_t batch, int64_t rows, int64_t cols, int64_t n,
                 uintptr_t values, uintptr_t meta, uintptr_t B, uintptr_t C, uintptr_t stream):
    """C[b] = A_2:4[b] · B[b] on sparse tensor cores (mw_sp24_batched): values and B in the
    precision's operand type, meta uint32 in the kernel's layout (magma_wino.sparse24), C
    float32."""
    cdef mw_status st
    with nogil:
        st = mw_sp24_batched(<mw_dtype>dtype, <mw_precision>precision, batch, rows, cols, n,
                             <const void*>values, <const uint32_t*>meta, <const void*>B,
                             <void*>C, <mw_stream>stream)
    _check(st, "2:4 sparse batched product")


SPMM_OFFSETS64 = 1  # mw_spmm_flags: 64-bit offsets into B and C
SPMM_SCALAR = 2     # mw_spmm_flags: element loads of B, no 16-byte vectors


def spmm_batched(int dtype, int64_t batch, int64_t rows, int64_t cols, int64_t n,
                 uintptr_t row_ptr, uintptr_t col_idx, uintptr_t values, int64_t nnz,
                 uintptr_t B, uintptr_t C, uintptr_t stream, uintptr_t row_order=0,
                 unsigned flags=0):
    """C[b] = A_csr[b] · B[b] (mw_spmm_batched_ex): row_order 0 = rows in order; flags force
    the general paths (SPMM_OFFSETS64, SPMM_SCALAR), which give bitwise the same C."""
    cdef mw_status st
    with nogil:
        st = mw_spmm_batched_ex(<mw_dtype>dtype, batch, rows, cols, n, <const int32_t*>row_ptr,
                                <const int32_t*>col_idx, <const void*>values, nnz,
                                <const int32_t*>row_order, flags, <const void*>B, <void*>C,
                                <mw_stream>stream)
    _check(st, "sparse batched product")


def bsr_batched(int dtype, int precision, int64_t batch, int64_t rows, int64_t cols, int64_t n,
                int block_rows, int block_cols, uintptr_t row_ptr, uintptr_t col_idx,
                uintptr_t values, int64_t nblocks, uintptr_t B, uintptr_t C, uintptr_t stream):
    """C[b] = A_bsr[b] · B[b] on tensor cores (mw_bsr_batched): 16 x 8 blocks, values and B in
    the precision's operand type, C float32 (float64 for PRECISION_FP64)."""
    cdef mw_status st
    with nogil:
        st = mw_bsr_batched(<mw_dtype>dtype, <mw_precision>precision, batch, rows, cols, n,
                            block_rows, block_cols, <const int32_t*>row_ptr,
                            <const int32_t*>col_idx, <const void*>values, nblocks,
                            <const void*>B, <void*>C, <mw_stream>stream)
    _check(st, "block-sparse batched product")
