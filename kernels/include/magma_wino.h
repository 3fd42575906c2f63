/**
 * @file magma_wino.h
 * @brief magma_wino — the C ABI.
 *
 * Every entry point checks its arguments, returns an mw_status and never launches a
 * kernel that could read or write out of bounds.  On failure, mw_last_error_message()
 * (thread-local) says what was wrong.  All pointers are device pointers for the CUDA
 * build and host pointers for the emulator build; arrays are C-contiguous (row-major)
 * with the layouts of docs/layouts.md:
 *
 * @verbatim
     x  N x C x [D x] H x W        input
     w  K x C x [r_d x] r_h x r_w  spatial weights
     U  alpha^nd x K x C           Winograd-domain weights      (nd = 2 or 3; alpha^nd is
                                   prod(alpha_axes), [alpha_d x] alpha_h x alpha_w positions)
     V  alpha^nd x C x P           transformed input tiles, P = N * tiles (P contiguous)
     M  alpha^nd x K x P           Winograd-domain products
     y  N x K x [Do x] Ho x Wo     output
   @endverbatim
 * (x and y, and dx and dy, channels last -- N x [D x] H x W x C -- with desc.layout NHWC.)
 *
 * Streams are passed as mw_stream (a cudaStream_t; 0 = the legacy default stream).
 *
 * Every entry is documented here in Doxygen style (a block with `@param` / `@return` per
 * function; tests/test_c_header_docs.py checks it).  Launching entries enqueue their kernels on
 * `stream` and return without synchronising; a launch error is MW_STATUS_LAUNCH_FAILED (every
 * launch diagnostic of the emulator build, and an invalid launch configuration) or
 * MW_STATUS_CUDA_ERROR (any other error of the CUDA runtime).
 */
#ifndef MAGMA_WINO_H_
#define MAGMA_WINO_H_

#include <stddef.h>
#include <stdint.h>

/** @name Version
 * The library's version (also magma_wino.__version__); mw_get_version() reports the built
 * library's, to compare against these at run time.
 * @{ */
/** Major version of this header. */
#define MW_VERSION_MAJOR 0
/** Minor version of this header (0.x minor versions may change the ABI). */
#define MW_VERSION_MINOR 1
/** Patch version of this header. */
#define MW_VERSION_PATCH 0
/** The version as one number, major * 10000 + minor * 100 + patch (mw_get_version()'s form). */
#define MW_VERSION (MW_VERSION_MAJOR * 10000 + MW_VERSION_MINOR * 100 + MW_VERSION_PATCH)
/** @} */

/**
 * Marks the exported entry points.
 *
 * Every mw_* function has default visibility, whatever the rest of the library (its C++
 * internals, the emulator runtime, the C++ runtime linked into the shared libraries) is hidden.
 * Empty for compilers other than GCC and Clang.
 */
#if defined(__GNUC__) || defined(__clang__)
#define MW_API __attribute__((visibility("default")))
#else
#define MW_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/** The result of every entry point that can fail (mw_status_name() gives its name). */
typedef enum mw_status {
  MW_STATUS_SUCCESS = 0, /**< the call succeeded (a launching entry has enqueued its work) */
  MW_STATUS_INVALID_ARGUMENT = 1, /**< a bad pointer, size, dtype or descriptor field */
  MW_STATUS_UNSUPPORTED = 2,      /**< valid, but not supported by this build / these sizes */
  MW_STATUS_LAUNCH_FAILED = 3,    /**< the launch failed (emulator diagnostics land here) */
  MW_STATUS_CUDA_ERROR = 4        /**< the CUDA runtime reported an error */
} mw_status;

/**
 * The element type of an array.
 *
 * MW_FLOAT32 / MW_FLOAT64: the type of an entry's arrays and arithmetic.  MW_FLOAT16 (IEEE
 * binary16) and MW_BFLOAT16 (bfloat16) are storage types of U and V only (the 16-bit precision
 * modes): accepted as u_dtype / v_dtype by mw_filter_transform_ex / mw_input_transform_ex, and
 * as the A / B type of mw_gemm_batched_ex with MW_PRECISION_FP16 / MW_PRECISION_BF16; every
 * `dtype` argument refuses them (MW_STATUS_INVALID_ARGUMENT).
 */
typedef enum mw_dtype {
  MW_FLOAT32 = 0, /**< float (IEEE binary32) */
  MW_FLOAT64 = 1, /**< double (IEEE binary64) */
  MW_FLOAT16 = 2, /**< IEEE binary16: a storage type of U and V only */
  MW_BFLOAT16 = 3 /**< bfloat16: a storage type of U and V only */
} mw_dtype;

/** Where the input transform applies a ReLU (the sparse variants of docs/sparse.md). */
typedef enum mw_relu {
  MW_RELU_NONE = 0,    /**< no ReLU:                         Bᵀ d B */
  MW_RELU_SPATIAL = 1, /**< ReLU(d) before the transform:   Bᵀ ReLU(d) B */
  MW_RELU_WINOGRAD = 2 /**< ReLU after the transform:       ReLU(Bᵀ d B)  (Liu et al. 2018) */
} mw_relu;

/** What a product computes in (docs/kernels.md, "gemm_tc"). */
typedef enum mw_precision {
  MW_PRECISION_FP32 = 0,   /**< SIMT float32 products (dtype MW_FLOAT32); as mw_gemm_batched */
  MW_PRECISION_TF32 = 1,   /**< tensor cores, one TF32 product, float32 accumulation (MW_FLOAT32) */
  MW_PRECISION_TF32X3 = 2, /**< tensor cores, 3xTF32 (split hi/lo): float32 level (MW_FLOAT32) */
  MW_PRECISION_BF16 = 3,   /**< tensor cores, bfloat16 A, B; float32 accumulation, C (MW_FLOAT32) */
  MW_PRECISION_FP16 = 4,   /**< tensor cores, binary16 A, B; float32 accumulation, C (MW_FLOAT32) */
  MW_PRECISION_FP64 = 5    /**< float64 (MW_FLOAT64): DMMA on sm_80+ and the emulator, else DFMA */
} mw_precision;

/** A CUDA stream, a cudaStream_t passed as void* (0 = the legacy default stream; the emulator
 * build ignores it and runs every call to completion before it returns). */
typedef void* mw_stream;

/** The most spatial axes of a layer (mw_conv_desc.ndim is 2 or 3). */
#define MW_MAX_NDIM 3
/** The largest tile size alpha = m + r - 1 of a transform. */
#define MW_MAX_ALPHA 16

/**
 * One convolution layer.
 *
 * Stride 1, filters r_h x r_w (3D: r_d x r_h x r_w), zero padding of any size >= 0 on
 * each side of each axis (padding: before the first element, padding_end: after the last).
 * The padding is never materialised: the kernels read zeros for window elements outside x, so
 * padding larger than r - 1 (whole tiles of zeros) and asymmetric padding cost no copy of x.
 * Per axis, out = in + padding + padding_end - r + 1 must be >= 1.  Symmetric padding p is
 * padding[i] = padding_end[i] = p (a descriptor zero-initialised except padding has padding_end
 * 0: set both).
 */
typedef struct mw_conv_desc {
  int ndim;                         /**< spatial axes: 2 or 3 */
  int m;                            /**< output tile size per axis */
  int r;                            /**< filter size per axis */
  int64_t batch;                    /**< N */
  int64_t in_channels;              /**< C */
  int64_t out_channels;             /**< K */
  int64_t in_size[MW_MAX_NDIM];     /**< input spatial size, first ndim entries ([D,] H, W) */
  int64_t padding[MW_MAX_NDIM];     /**< leading zero padding per axis, >= 0 */
  int64_t padding_end[MW_MAX_NDIM]; /**< trailing zero padding per axis, >= 0 */
  /* Rectangular tiles F(m_h x m_w, r_h x r_w) (the struct grew here: fields are only ever
   * appended).  Axis i of the first ndim ([D,] H, W) is F(m_axes[i], r_axes[i]), an entry 0
   * meaning m (resp. r): a zero-initialised descriptor is the square F(m, r) on every axis. */
  int m_axes[MW_MAX_NDIM]; /**< output tile size per axis, >= 1, or 0 for m */
  int r_axes[MW_MAX_NDIM]; /**< filter size per axis, >= 1, or 0 for r (1: F(1, 1) on the axis is
                                advised, a 1 x r filter then is a 1D transform along W) */
  /* Channels-last activations (appended after m_axes / r_axes). */
  int layout; /**< an mw_layout: MW_LAYOUT_NCHW (0: x N x C x [D x] H x W, y N x K x ...) or
                   MW_LAYOUT_NHWC (1: x N x [D x] H x W x C, y N x ... x K, PyTorch's
                   channels_last).  Read by the entries that touch x or y (the input and output
                   transforms, their adjoints for dx and dy, the fused layer); V, U, M and w
                   keep their layouts */
} mw_conv_desc;

/** The layer's derived sizes (after validation of the descriptor; mw_conv_get_geometry()). */
typedef struct mw_conv_geometry {
  int alpha;                     /**< m + r - 1 (rectangular tiles: the largest alpha_axes) */
  int64_t positions;             /**< prod(alpha_axes): the batch count of the products */
  int64_t out_size[MW_MAX_NDIM]; /**< in + padding + padding_end - r + 1 per axis */
  int64_t tiles[MW_MAX_NDIM];    /**< ceil(out / m) per axis */
  int64_t num_tiles;             /**< P = N * prod(tiles) */
  size_t workspace_bytes;        /**< bytes of V and M together, for the given dtype */
  /* Elements of every array a caller allocates for the layer (multiply by the dtype's size;
   * U, V in 16 bits for the fp16 / bf16 modes): */
  int64_t x_elems;        /**< N * C * prod(in_size) */
  int64_t y_elems;        /**< N * K * prod(out_size) */
  int64_t w_elems;        /**< K * C * prod(r_axes) */
  int64_t u_elems;        /**< positions * K * C */
  int64_t v_elems;        /**< positions * C * num_tiles */
  int64_t m_elems;        /**< positions * K * num_tiles */
  int64_t matrices_elems; /**< m * alpha + alpha * r + alpha^2: the generic kernels' matrices
                               (rectangular tiles: that sum over the ndim axes, one set each) */
  /* The sparse formats of U (the struct grew here: fields are only ever appended). */
  int64_t csr_row_ptr_elems;   /**< positions * (K + 1): mw_spmm_batched's row_ptr (col_idx and
                                    values hold nnz entries, the caller's count) */
  int64_t bsr_row_ptr_elems;   /**< positions * (ceil(K / 16) + 1): mw_bsr_batched's row_ptr with
                                    16 x 8 blocks (32 x 8 blocks need fewer) */
  int64_t bsr_max_blocks;      /**< positions * ceil(K / 16) * ceil(C / 8): the most 16 x 8 blocks
                                    (col_idx entries, values blocks) a block-sparse U can have
                                    (32 x 8 blocks: about half as many, each twice the size) */
  int alpha_axes[MW_MAX_NDIM]; /**< m_i + r_i - 1 per axis, first ndim entries ([D,] H, W) */
  int rectangular;             /**< 1 when the axes' F(m_i, r_i) differ (the generic kernels only;
                                    matrices: one Aᵀ, G, Bᵀ set per axis), else 0 */
} mw_conv_geometry;

/**
 * Validates a layer descriptor and fills its geometry.
 *
 * dtype (MW_FLOAT32 or MW_FLOAT64) only affects workspace_bytes.  With 16-bit V (and float32 M)
 * the workspace is positions * num_tiles * (2 * in_channels + 4 * out_channels) bytes.
 *
 * @param desc      [in] the layer (host pointer).
 * @param dtype     [in] MW_FLOAT32 or MW_FLOAT64, the element type workspace_bytes counts.
 * @param geometry  [out] host pointer to the mw_conv_geometry to fill.
 * @return MW_STATUS_SUCCESS; MW_STATUS_INVALID_ARGUMENT for a NULL pointer, a bad dtype or a bad
 *         descriptor field (the message names it); MW_STATUS_UNSUPPORTED for alpha > 16
 *         (MW_MAX_ALPHA) or sizes whose arrays need 2^31 or more elements.
 */
MW_API mw_status mw_conv_get_geometry(const mw_conv_desc* desc, mw_dtype dtype,
                                      mw_conv_geometry* geometry);

/**
 * Says whether F(m, r) in ndim dimensions has a specialised kernel.
 *
 * Nonzero when F(m, r) in ndim dimensions has a specialised (compile-time coefficient)
 * kernel; others run the generic kernels, which need the transform matrices.
 *
 * @param ndim  [in] spatial axes, 2 or 3.
 * @param m     [in] output tile size per axis.
 * @param r     [in] filter size per axis.
 * @return 1 when this build has a specialised kernel for the tile, else 0 (also for an ndim
 *         other than 2 or 3).
 */
MW_API int mw_has_specialized_transform(int ndim, int m, int r);

/**
 * Says whether a layer's tile, square or rectangular, has specialised kernels.
 *
 * Square tiles: as mw_has_specialized_transform().  Rectangular tiles: the 2D lines
 * F(1 x m, 1 x r) (a 1 x r filter) and F(m x 1, r x 1) (r x 1) whose F(m, r) has a specialised
 * 2D kernel run straight-line 1D transforms; every other rectangular tile needs the matrices.
 * The adjoint transforms are generic only (their matrices are always needed).
 *
 * @param desc  [in] the layer (host pointer).
 * @return 1 when the three forward transforms of desc's tile accept matrices = NULL, else 0
 *         (also for a NULL or invalid descriptor: mw_conv_get_geometry() says what is wrong).
 */
MW_API int mw_has_specialized_tile(const mw_conv_desc* desc);

/**
 * Computes the transform matrices of F(m, r) for the generic kernels.
 *
 * Aᵀ (m x alpha), G (alpha x r) and Bᵀ (alpha x alpha) back to back, row-major, in dtype
 * (MW_FLOAT32 or MW_FLOAT64), written to the host array `matrices` (m * alpha + alpha * r +
 * alpha * alpha elements; copy it to the device for the CUDA kernels).  The Cook–Toom
 * construction in exact rational arithmetic, rounded once to the nearest double (float32: from
 * that double) — the values of Python's magma_wino.transforms.winograd(m, r,
 * points).matrices(dtype), bit for bit.
 *
 * @param m           [in] output tile size, >= 1.
 * @param r           [in] filter size, >= 1 (alpha = m + r - 1 <= MW_MAX_ALPHA).
 * @param points_num  [in] host array of the alpha - 1 numerators num[i] of the finite
 *                    interpolation points num[i] / den[i] (distinct; infinity is implied), or
 *                    NULL together with points_den for the library's default points (those the
 *                    specialised kernels use).
 * @param points_den  [in] host array of the alpha - 1 denominators den[i] > 0, or NULL together
 *                    with points_num.
 * @param dtype       [in] MW_FLOAT32 or MW_FLOAT64, the type of the values written.
 * @param matrices    [out] host array of m * alpha + alpha * r + alpha * alpha elements of dtype
 *                    (mw_conv_geometry.matrices_elems).
 * @return MW_STATUS_SUCCESS; MW_STATUS_INVALID_ARGUMENT: m or r < 1, a bad dtype, a NULL
 *         `matrices`, one of points_num / points_den NULL, a den <= 0, repeated points;
 *         MW_STATUS_UNSUPPORTED: alpha = m + r - 1 > 16 (MW_MAX_ALPHA), or points whose exact
 *         arithmetic would overflow 128-bit integers.
 */
MW_API mw_status mw_winograd_matrices(int m, int r, const int64_t* points_num,
                                      const int64_t* points_den, mw_dtype dtype, void* matrices);

/**
 * @name The three tile transforms
 * `matrices` is NULL (use the specialised kernels, which exist only for the default
 * interpolation points) or a device array of dtype holding Aᵀ (m x alpha), G (alpha x r),
 * Bᵀ (alpha x alpha) back to back, row-major: then the generic kernels run with these
 * matrices (any F(m, r), any points).  NULL for a tile without a specialised kernel is
 * MW_STATUS_UNSUPPORTED.  A rectangular layer (mw_conv_geometry.rectangular) runs the generic
 * kernels, `matrices` then holding one such set per axis, axis by axis ([D,] H, W), each that
 * axis's F(m_axes[i], r_axes[i]) (mw_winograd_matrices per axis, back to back); NULL selects
 * the specialised line kernels of F(1 x m, 1 x r) / F(m x 1, r x 1) where
 * mw_has_specialized_tile() says there are some.
 * @{
 */

/**
 * Filter transform: U = G g Gᵀ per filter, for every output and input channel.
 *
 * @param desc      [in] the layer (host pointer).
 * @param dtype     [in] MW_FLOAT32 or MW_FLOAT64: the type of w, U, matrices and the arithmetic.
 * @param w         [in] spatial weights, K x C x r^nd of dtype.
 * @param U         [out] Winograd-domain weights, alpha^nd x K x C of dtype.
 * @param matrices  [in] NULL (specialised kernels) or the device array of Aᵀ, G, Bᵀ of dtype.
 * @param stream    [in] the stream the kernels are enqueued on.
 * @return MW_STATUS_SUCCESS; MW_STATUS_INVALID_ARGUMENT for a bad descriptor, dtype or a NULL
 *         array; MW_STATUS_UNSUPPORTED for sizes this build cannot run (alpha > 16, 2^31 or
 *         more elements, NULL matrices for a tile without a specialised kernel);
 *         MW_STATUS_LAUNCH_FAILED or MW_STATUS_CUDA_ERROR when the launch fails.
 */
MW_API mw_status mw_filter_transform(const mw_conv_desc* desc, mw_dtype dtype, const void* w,
                                     void* U, const void* matrices, mw_stream stream);

/**
 * Input transform: V = Bᵀ d B for every input tile d, with the ReLU mode.
 *
 * @param desc      [in] the layer (host pointer).
 * @param dtype     [in] MW_FLOAT32 or MW_FLOAT64: the type of x, V, matrices and the arithmetic.
 * @param x         [in] input, N x C x [D x] H x W of dtype (desc.layout NHWC: channels last).
 * @param V         [out] transformed input tiles, alpha^nd x C x P of dtype.
 * @param relu      [in] where a ReLU is applied (mw_relu).
 * @param matrices  [in] NULL (specialised kernels) or the device array of Aᵀ, G, Bᵀ of dtype.
 * @param stream    [in] the stream the kernels are enqueued on.
 * @return MW_STATUS_SUCCESS; MW_STATUS_INVALID_ARGUMENT for a bad descriptor, dtype, relu or a
 *         NULL array; MW_STATUS_UNSUPPORTED for sizes this build cannot run (alpha > 16, 2^31
 *         or more elements, NULL matrices for a tile without a specialised kernel);
 *         MW_STATUS_LAUNCH_FAILED or MW_STATUS_CUDA_ERROR when the launch fails.
 */
MW_API mw_status mw_input_transform(const mw_conv_desc* desc, mw_dtype dtype, const void* x,
                                    void* V, mw_relu relu, const void* matrices, mw_stream stream);

/**
 * Output transform: y = Aᵀ M A + bias per tile, clipped to y's extent.
 *
 * @param desc      [in] the layer (host pointer).
 * @param dtype     [in] MW_FLOAT32 or MW_FLOAT64: the type of M, bias, y, matrices and the
 *                  arithmetic.
 * @param M         [in] Winograd-domain products, alpha^nd x K x P of dtype.
 * @param bias      [in] K values of dtype added to every output of their channel, or NULL.
 * @param y         [out] output, N x K x [Do x] Ho x Wo of dtype (desc.layout NHWC: channels last).
 * @param matrices  [in] NULL (specialised kernels) or the device array of Aᵀ, G, Bᵀ of dtype.
 * @param stream    [in] the stream the kernels are enqueued on.
 * @return MW_STATUS_SUCCESS; MW_STATUS_INVALID_ARGUMENT for a bad descriptor, dtype or a NULL
 *         M or y; MW_STATUS_UNSUPPORTED for sizes this build cannot run (alpha > 16, 2^31 or
 *         more elements, NULL matrices for a tile without a specialised kernel);
 *         MW_STATUS_LAUNCH_FAILED or MW_STATUS_CUDA_ERROR when the launch fails.
 */
MW_API mw_status mw_output_transform(const mw_conv_desc* desc, mw_dtype dtype, const void* M,
                                     const void* bias, void* y, const void* matrices,
                                     mw_stream stream);

/** @} */

/**
 * @name The filter and input transforms with a storage type for U / V
 * w, x and matrices are dtype and the transform is computed in dtype; U (V) is stored as
 * u_dtype (v_dtype).  u_dtype == dtype is exactly mw_filter_transform (v_dtype == dtype:
 * mw_input_transform).  MW_FLOAT16 / MW_BFLOAT16 only with dtype MW_FLOAT32: each value is
 * rounded to nearest even (__float2half_rn / __float2bfloat16_rn) after the float32 transform
 * (and after the ReLU of MW_RELU_WINOGRAD).  Other pairs: MW_STATUS_UNSUPPORTED; a value that is
 * no mw_dtype: MW_STATUS_INVALID_ARGUMENT.
 * @{
 */

/**
 * Filter transform storing U as u_dtype (mw_filter_transform with a storage type).
 *
 * @param desc      [in] the layer (host pointer).
 * @param dtype     [in] MW_FLOAT32 or MW_FLOAT64: the type of w, matrices and the arithmetic.
 * @param u_dtype   [in] the type U is stored as: dtype, or MW_FLOAT16 / MW_BFLOAT16 with dtype
 *                  MW_FLOAT32.
 * @param w         [in] spatial weights, K x C x r^nd of dtype.
 * @param U         [out] Winograd-domain weights, alpha^nd x K x C of u_dtype.
 * @param matrices  [in] NULL (specialised kernels) or the device array of Aᵀ, G, Bᵀ of dtype.
 * @param stream    [in] the stream the kernels are enqueued on.
 * @return MW_STATUS_SUCCESS; MW_STATUS_INVALID_ARGUMENT for a bad descriptor or dtype, a
 *         u_dtype that is no mw_dtype or a NULL array; MW_STATUS_UNSUPPORTED for another
 *         (dtype, u_dtype) pair or sizes this build cannot run (as mw_filter_transform);
 *         MW_STATUS_LAUNCH_FAILED or MW_STATUS_CUDA_ERROR when the launch fails.
 */
MW_API mw_status mw_filter_transform_ex(const mw_conv_desc* desc, mw_dtype dtype, mw_dtype u_dtype,
                                        const void* w, void* U, const void* matrices,
                                        mw_stream stream);

/**
 * Input transform storing V as v_dtype (mw_input_transform with a storage type).
 *
 * The ReLU modes act on the value in dtype, before the rounding to v_dtype.
 *
 * @param desc      [in] the layer (host pointer).
 * @param dtype     [in] MW_FLOAT32 or MW_FLOAT64: the type of x, matrices and the arithmetic.
 * @param v_dtype   [in] the type V is stored as: dtype, or MW_FLOAT16 / MW_BFLOAT16 with dtype
 *                  MW_FLOAT32.
 * @param x         [in] input, N x C x [D x] H x W of dtype (desc.layout NHWC: channels last).
 * @param V         [out] transformed input tiles, alpha^nd x C x P of v_dtype.
 * @param relu      [in] where a ReLU is applied (mw_relu).
 * @param matrices  [in] NULL (specialised kernels) or the device array of Aᵀ, G, Bᵀ of dtype.
 * @param stream    [in] the stream the kernels are enqueued on.
 * @return MW_STATUS_SUCCESS; MW_STATUS_INVALID_ARGUMENT for a bad descriptor, dtype or relu, a
 *         v_dtype that is no mw_dtype or a NULL array; MW_STATUS_UNSUPPORTED for another
 *         (dtype, v_dtype) pair or sizes this build cannot run (as mw_input_transform);
 *         MW_STATUS_LAUNCH_FAILED or MW_STATUS_CUDA_ERROR when the launch fails.
 */
MW_API mw_status mw_input_transform_ex(const mw_conv_desc* desc, mw_dtype dtype, mw_dtype v_dtype,
                                       const void* x, void* V, mw_relu relu, const void* matrices,
                                       mw_stream stream);

/** @} */

/**
 * @name Adjoint transforms (backward)
 * The adjoints (transposes) of the three tile transforms, for the backward pass (docs/kernels.md,
 * "Adjoint transforms (backward)").  Same descriptor, dtype (MW_FLOAT32 / MW_FLOAT64) and layouts
 * as the forward entries; `matrices` is required (there are no specialised adjoint kernels: NULL
 * is MW_STATUS_INVALID_ARGUMENT) and is the forward generic kernels' buffer (Aᵀ, G, Bᵀ back to
 * back, row-major): the transposes are applied by indexing.  No ReLU, bias or pruning mask: the
 * caller applies those to dy / dV / dU.  Every output element is written (0 where nothing
 * contributes), each by one thread, without atomics: the results are deterministic.
 * @{
 */

/**
 * Adjoint of the output transform: dy (N x K x [Do x] Ho x Wo) -> dM (alpha^nd x K x P).
 *
 * dM_tile = (Aᵀ)ᵀ · dY_tile · Aᵀ per axis, dY_tile zero past y's edge.
 *
 * @param desc      [in] the layer (host pointer).
 * @param dtype     [in] MW_FLOAT32 or MW_FLOAT64: the type of dy, dM, matrices.
 * @param dy        [in] gradient of the output, N x K x [Do x] Ho x Wo of dtype (in y's layout).
 * @param dM        [out] gradient of the products, alpha^nd x K x P of dtype (fully written).
 * @param matrices  [in] the device array of Aᵀ, G, Bᵀ of dtype (required, not NULL).
 * @param stream    [in] the stream the kernels are enqueued on.
 * @return MW_STATUS_SUCCESS; MW_STATUS_INVALID_ARGUMENT for a bad descriptor or dtype, a NULL
 *         dy, dM or matrices; MW_STATUS_UNSUPPORTED for sizes this build cannot run;
 *         MW_STATUS_LAUNCH_FAILED or MW_STATUS_CUDA_ERROR when the launch fails.
 */
MW_API mw_status mw_output_transform_adjoint(const mw_conv_desc* desc, mw_dtype dtype,
                                             const void* dy, void* dM, const void* matrices,
                                             mw_stream stream);

/**
 * Adjoint of the input transform: dV (alpha^nd x C x P) -> dx (N x C x [D x] H x W).
 *
 * dx = the sum of (Bᵀ)ᵀ · dV_tile · Bᵀ over the (overlapping) windows covering each element,
 * the padding cropped.
 *
 * @param desc      [in] the layer (host pointer).
 * @param dtype     [in] MW_FLOAT32 or MW_FLOAT64: the type of dV, dx, matrices.
 * @param dV        [in] gradient of the transformed tiles, alpha^nd x C x P of dtype.
 * @param dx        [out] gradient of the input, N x C x [D x] H x W of dtype (in x's layout; fully
 *                  written).
 * @param matrices  [in] the device array of Aᵀ, G, Bᵀ of dtype (required, not NULL).
 * @param stream    [in] the stream the kernels are enqueued on.
 * @return MW_STATUS_SUCCESS; MW_STATUS_INVALID_ARGUMENT for a bad descriptor or dtype, a NULL
 *         dV, dx or matrices; MW_STATUS_UNSUPPORTED for sizes this build cannot run;
 *         MW_STATUS_LAUNCH_FAILED or MW_STATUS_CUDA_ERROR when the launch fails.
 */
MW_API mw_status mw_input_transform_adjoint(const mw_conv_desc* desc, mw_dtype dtype,
                                            const void* dV, void* dx, const void* matrices,
                                            mw_stream stream);

/**
 * Adjoint of the filter transform: dU (alpha^nd x K x C) -> dw (K x C x r^nd).
 *
 * dw[k, c] = Gᵀ · dU[., k, c] · G.
 *
 * @param desc      [in] the layer (host pointer).
 * @param dtype     [in] MW_FLOAT32 or MW_FLOAT64: the type of dU, dw, matrices.
 * @param dU        [in] gradient of the Winograd-domain weights, alpha^nd x K x C of dtype.
 * @param dw        [out] gradient of the spatial weights, K x C x r^nd of dtype (fully written).
 * @param matrices  [in] the device array of Aᵀ, G, Bᵀ of dtype (required, not NULL).
 * @param stream    [in] the stream the kernels are enqueued on.
 * @return MW_STATUS_SUCCESS; MW_STATUS_INVALID_ARGUMENT for a bad descriptor or dtype, a NULL
 *         dU, dw or matrices; MW_STATUS_UNSUPPORTED for sizes this build cannot run;
 *         MW_STATUS_LAUNCH_FAILED or MW_STATUS_CUDA_ERROR when the launch fails.
 */
MW_API mw_status mw_filter_transform_adjoint(const mw_conv_desc* desc, mw_dtype dtype,
                                             const void* dU, void* dw, const void* matrices,
                                             mw_stream stream);

/** @} */

/**
 * Dense batched product C[b] = A[b] · B[b], row-major.
 *
 * A: batch x m x k, B: batch x k x n, C: batch x m x n.  In a layer: M[b] (K x P) = U[b] (K x C)
 * · V[b] (C x P).
 *
 * @param dtype   [in] MW_FLOAT32 or MW_FLOAT64: the type of A, B, C and the arithmetic.
 * @param batch   [in] number of products, >= 1 (alpha^nd in a layer).
 * @param m       [in] rows of A and C, >= 1 (K in a layer).
 * @param n       [in] columns of B and C, >= 1 (P in a layer).
 * @param k       [in] columns of A and rows of B, >= 1 (C in a layer).
 * @param A       [in] batch x m x k of dtype.
 * @param B       [in] batch x k x n of dtype.
 * @param C       [out] batch x m x n of dtype.
 * @param stream  [in] the stream the kernels are enqueued on.
 * @return MW_STATUS_SUCCESS; MW_STATUS_INVALID_ARGUMENT for a bad dtype, a size < 1 or a NULL
 *         array; MW_STATUS_UNSUPPORTED for arrays of 2^31 or more elements;
 *         MW_STATUS_LAUNCH_FAILED or MW_STATUS_CUDA_ERROR when the launch fails.
 */
MW_API mw_status mw_gemm_batched(mw_dtype dtype, int64_t batch, int64_t m, int64_t n, int64_t k,
                                 const void* A, const void* B, void* C, mw_stream stream);

/**
 * Dense batched product C[b] = A[b] · B[b] with an explicit precision.
 *
 * MW_PRECISION_FP32 (MW_FLOAT32) runs mw_gemm_batched's kernels; MW_PRECISION_FP64 (MW_FLOAT64;
 * A, B, C 8-byte aligned) the DMMA tensor-core kernel of gemm_tc.cuh on devices of compute
 * capability 8.0+ and in the emulator, mw_gemm_batched's SIMT DFMA kernels on older devices;
 * MW_PRECISION_TF32 and MW_PRECISION_TF32X3 (MW_FLOAT32 only) the tensor-core kernels of
 * gemm_tc.cuh (sm_80+) on float32 A, B, C.  MW_PRECISION_FP16 / MW_PRECISION_BF16 (dtype
 * MW_FLOAT32: the type of C and of the accumulation) the same kernels on 16-bit A and B
 * (binary16 / bfloat16, 2-byte aligned), float32 C.  A dtype/precision pair that does not
 * match: MW_STATUS_UNSUPPORTED.  The same as mw_gemm_batched_ex_ws without a workspace (no
 * split-K).
 *
 * @param dtype      [in] MW_FLOAT32 or MW_FLOAT64: the type of C (and of A, B except for the
 *                   16-bit precisions) and of the accumulation.
 * @param precision  [in] what the product computes in (mw_precision).
 * @param batch      [in] number of products, >= 1.
 * @param m          [in] rows of A and C, >= 1.
 * @param n          [in] columns of B and C, >= 1.
 * @param k          [in] columns of A and rows of B, >= 1.
 * @param A          [in] batch x m x k, row-major, of the precision's operand type.
 * @param B          [in] batch x k x n, row-major, of the precision's operand type.
 * @param C          [out] batch x m x n, row-major, of dtype.
 * @param stream     [in] the stream the kernels are enqueued on.
 * @return MW_STATUS_SUCCESS; MW_STATUS_INVALID_ARGUMENT for a bad dtype, an unknown precision, a
 *         size < 1, a NULL or misaligned array; MW_STATUS_UNSUPPORTED for a dtype/precision
 *         pair that does not match or arrays of 2^31 or more elements; MW_STATUS_LAUNCH_FAILED
 *         or MW_STATUS_CUDA_ERROR when the launch fails.
 */
MW_API mw_status mw_gemm_batched_ex(mw_dtype dtype, mw_precision precision, int64_t batch,
                                    int64_t m, int64_t n, int64_t k, const void* A, const void* B,
                                    void* C, mw_stream stream);

/**
 * What mw_gemm_batched_ex_plan() reports: the configuration the dispatcher picks for a product.
 */
typedef struct mw_gemm_plan {
  const char* config;     /**< static string: a gemm_tc.cuh configuration name, or "gemm_batched"
                             (the SIMT kernels, never split; the shape fields are then 0) */
  int block_m;            /**< C tile of one block: rows */
  int block_n;            /**< C tile of one block: columns */
  int block_k;            /**< k slice per pipeline stage */
  int threads;            /**< threads per block */
  int splits;             /**< split-K partitions with a large enough workspace (1: none) */
  int slices_per_split;   /**< k slices (of block_k) per partition, the last one fewer */
  int sm_count;           /**< SMs the rule assumed (the emulator: 132 or MW_EMU_SM_COUNT) */
  int64_t blocks;         /**< blocks of the product without split-K */
  size_t workspace_bytes; /**< splits x batch x m x n partials; 0 when splits == 1 */
} mw_gemm_plan;

/**
 * @name Split-K products
 * Split-K (docs/kernels.md, "gemm_tc"): the tensor-core products can split the k loop into S
 * partitions when the grid of C tiles would leave SMs idle; partition s writes a partial product
 * (float32; float64 for MW_PRECISION_FP64) to a caller-given workspace of S x batch x m x n
 * elements, and a reduction sums the S partials in the fixed order s = 0 .. S-1 into C: results
 * do not depend on scheduling, and differ from the unsplit product only by the order of the
 * float additions (exactly equal when every partial sum is exact).
 * @{
 */

/**
 * Reports what the dispatcher picks for these sizes (introspection, tests, performance reports).
 *
 * The configuration, its block shape, the split factor and workspace, on the current device.
 * Same argument checks as mw_gemm_batched_ex except the operands.
 *
 * @param dtype      [in] as mw_gemm_batched_ex.
 * @param precision  [in] as mw_gemm_batched_ex.
 * @param batch      [in] number of products, >= 1.
 * @param m          [in] rows of A and C, >= 1.
 * @param n          [in] columns of B and C, >= 1.
 * @param k          [in] columns of A and rows of B, >= 1.
 * @param plan       [out] host pointer to the mw_gemm_plan to fill.
 * @return MW_STATUS_SUCCESS; MW_STATUS_INVALID_ARGUMENT for a bad dtype, an unknown precision, a
 *         size < 1 or a NULL plan; MW_STATUS_UNSUPPORTED for a dtype/precision pair that does
 *         not match or arrays of 2^31 or more elements.
 */
MW_API mw_status mw_gemm_batched_ex_plan(mw_dtype dtype, mw_precision precision, int64_t batch,
                                         int64_t m, int64_t n, int64_t k, mw_gemm_plan* plan);

/**
 * Queries the split-K workspace mw_gemm_batched_ex_ws would use.
 *
 * *bytes = the workspace mw_gemm_batched_ex_ws would use for split-K on the current device (0
 * when it would not split: MW_PRECISION_FP32, SIMT float64, grids that fill the device, k too
 * short).  Same argument checks as mw_gemm_batched_ex except the operands.
 *
 * @param dtype      [in] as mw_gemm_batched_ex.
 * @param precision  [in] as mw_gemm_batched_ex.
 * @param batch      [in] number of products, >= 1.
 * @param m          [in] rows of A and C, >= 1.
 * @param n          [in] columns of B and C, >= 1.
 * @param k          [in] columns of A and rows of B, >= 1.
 * @param bytes      [out] host pointer: the workspace size in bytes (0: no split).
 * @return MW_STATUS_SUCCESS; MW_STATUS_INVALID_ARGUMENT for a bad dtype, an unknown precision, a
 *         size < 1 or a NULL bytes; MW_STATUS_UNSUPPORTED for a dtype/precision pair that does
 *         not match or arrays of 2^31 or more elements.
 */
MW_API mw_status mw_gemm_batched_ex_workspace(mw_dtype dtype, mw_precision precision, int64_t batch,
                                              int64_t m, int64_t n, int64_t k, size_t* bytes);

/**
 * mw_gemm_batched_ex with a split-K workspace.
 *
 * Splits k only when workspace is non-NULL and workspace_bytes >= the queried size
 * (mw_gemm_batched_ex_workspace; else, or NULL: the unsplit product, bitwise that of
 * mw_gemm_batched_ex).  Nothing is written past the queried size.  workspace must be aligned to
 * the partials' type (4 bytes; 8 for MW_PRECISION_FP64): MW_STATUS_INVALID_ARGUMENT otherwise.
 * It is scratch, on the same stream: it may be reused once the call's work on `stream` is done.
 *
 * @param dtype            [in] as mw_gemm_batched_ex.
 * @param precision        [in] as mw_gemm_batched_ex.
 * @param batch            [in] number of products, >= 1.
 * @param m                [in] rows of A and C, >= 1.
 * @param n                [in] columns of B and C, >= 1.
 * @param k                [in] columns of A and rows of B, >= 1.
 * @param A                [in] batch x m x k, row-major, of the precision's operand type.
 * @param B                [in] batch x k x n, row-major, of the precision's operand type.
 * @param C                [out] batch x m x n, row-major, of dtype.
 * @param workspace        [in,out] device scratch for the partials, or NULL (no split).
 * @param workspace_bytes  [in] the size of workspace in bytes.
 * @param stream           [in] the stream the kernels are enqueued on.
 * @return MW_STATUS_SUCCESS; MW_STATUS_INVALID_ARGUMENT as mw_gemm_batched_ex and for a
 *         misaligned workspace; MW_STATUS_UNSUPPORTED as mw_gemm_batched_ex;
 *         MW_STATUS_LAUNCH_FAILED or MW_STATUS_CUDA_ERROR when the launch fails.
 */
MW_API mw_status mw_gemm_batched_ex_ws(mw_dtype dtype, mw_precision precision, int64_t batch,
                                       int64_t m, int64_t n, int64_t k, const void* A,
                                       const void* B, void* C, void* workspace,
                                       size_t workspace_bytes, mw_stream stream);

/** @} */

/** The layout of x and y: mw_conv_desc.layout, and the fused layer's argument
 *  (mw_conv2d_fused()). 3D: N x C x D x H x W and N x D x H x W x C likewise. */
typedef enum mw_layout {
  MW_LAYOUT_NCHW = 0, /**< x: N x C x H x W, y: N x K x Ho x Wo */
  MW_LAYOUT_NHWC = 1  /**< x: N x H x W x C, y: N x Ho x Wo x K */
} mw_layout;

/** What mw_conv2d_fused_plan() reports: the fused kernel of a layer on the current device. */
typedef struct mw_fused_plan {
  const char* config;  /**< static string: the winograd_fused.cuh configuration name */
  int block_k;         /**< output channels of one block */
  int block_p;         /**< tiles of one block */
  int block_c;         /**< input channels per pipeline stage */
  int threads;         /**< threads per block */
  int64_t blocks;      /**< blocks of the launch */
  size_t shared_bytes; /**< dynamic shared memory per block */
} mw_fused_plan;

/**
 * @name The fused 2D layer
 * The fused 2D layer (kernels/winograd_fused.cuh, docs/fused.md): the input transform, the
 * products over channels and the output transform in one kernel; V and M never leave the SM,
 * so there is no workspace.  Specialised F(2, 3) and F(4, 3) (default points) with desc.ndim = 2.
 * dtype / precision: MW_FLOAT32 with MW_PRECISION_FP32 (SIMT), _TF32, _TF32X3, _FP16, _BF16;
 * MW_FLOAT64 with MW_PRECISION_FP64 (DMMA).  Tensor-core precisions need compute capability 8.0+
 * (the emulator models it).  A tile, dtype, precision or device without a fused kernel:
 * MW_STATUS_UNSUPPORTED (the three-phase entries run every layer).
 * @{
 */

/**
 * Says whether (desc, dtype, precision) has a fused kernel on the current device, and what it is.
 *
 * MW_STATUS_SUCCESS and plan filled, or MW_STATUS_UNSUPPORTED with the reason in
 * mw_last_error_message().
 *
 * @param desc       [in] the layer (host pointer).
 * @param dtype      [in] MW_FLOAT32 or MW_FLOAT64.
 * @param precision  [in] what the products compute in (the pairs above).
 * @param plan       [out] host pointer to the mw_fused_plan to fill.
 * @return MW_STATUS_SUCCESS; MW_STATUS_INVALID_ARGUMENT for a NULL plan, a bad descriptor, dtype
 *         or precision; MW_STATUS_UNSUPPORTED when there is no fused kernel (a tile other than
 *         2D F(2, 3) / F(4, 3), a dtype/precision pair that does not match, a tensor-core
 *         precision before compute capability 8.0, more shared memory than the device allows,
 *         offsets or blocks past the 32-bit limits).
 */
MW_API mw_status mw_conv2d_fused_plan(const mw_conv_desc* desc, mw_dtype dtype,
                                      mw_precision precision, mw_fused_plan* plan);

/**
 * Runs the whole 2D layer in one kernel: y = output transform of (U · input transform of x).
 *
 * x and y must not overlap (blocks read x while others write y).  Elements must be aligned to
 * their size.
 *
 * @param desc         [in] the layer (host pointer; ndim = 2).
 * @param dtype        [in] MW_FLOAT32 or MW_FLOAT64: the type of x, bias, y.
 * @param precision    [in] what the products compute in (the pairs above).
 * @param layout       [in] x and y in NCHW (N x C x H x W, N x K x Ho x Wo) or NHWC
 *                     (N x H x W x C, N x Ho x Wo x K); desc.layout must be NCHW (0, the
 *                     zero-initialised default) or the same.
 * @param relu         [in] the input's ReLU mode (mw_relu).
 * @param relu_output  [in] nonzero: y = max(y + bias, 0) with NaN kept (as NumPy's maximum).
 * @param x            [in] input of dtype, in layout.
 * @param U            [in] alpha^2 x K x C, the filter transform (mw_filter_transform_ex) in the
 *                     precision's operand type: dtype, or MW_FLOAT16 / MW_BFLOAT16 for _FP16 /
 *                     _BF16.
 * @param bias         [in] K values of dtype, or NULL.
 * @param y            [out] output of dtype, in layout (must not overlap x).
 * @param stream       [in] the stream the kernel is enqueued on.
 * @return MW_STATUS_SUCCESS; MW_STATUS_INVALID_ARGUMENT for a bad descriptor, dtype, precision,
 *         layout or relu, a NULL x, U or y, a misaligned array; MW_STATUS_UNSUPPORTED when there
 *         is no fused kernel (as mw_conv2d_fused_plan); MW_STATUS_LAUNCH_FAILED or
 *         MW_STATUS_CUDA_ERROR when the launch fails.
 */
MW_API mw_status mw_conv2d_fused(const mw_conv_desc* desc, mw_dtype dtype, mw_precision precision,
                                 mw_layout layout, mw_relu relu, int relu_output, const void* x,
                                 const void* U, const void* bias, void* y, mw_stream stream);

/** @} */

/**
 * 2:4 structured-sparse batched product on sparse tensor cores (mma.sp, compute capability
 * 8.0+), C[b] = A[b] · B[b] for b < batch.
 *
 * A[b] is rows x cols, structured sparse along cols
 * (the reduction): for MW_PRECISION_FP16 / _BF16 at most 2 nonzeros in every 4 consecutive
 * columns (2:4, mma.sp m16n8k16), for MW_PRECISION_TF32 / _TF32X3 at most 1 in every 2 (1:2,
 * the ISA's rule for .tf32, mma.sp m16n8k8; TF32X3 runs three products on hi/lo splits of A and
 * B: float32-level accuracy).  MW_PRECISION_FP64 and _FP32 are MW_STATUS_UNSUPPORTED (no
 * sparse tensor core: use mw_spmm_batched or a dense product).
 * The format (magma_wino.sparse24.Batched24 builds it; kernels/sp24_tc_batched.cuh's header):
 * step = 64 (16-bit) or 32 (tf32), kp = cols rounded up to step.
 * Sizes >= 1, arrays of fewer than 2^31 elements, batch and ceil(rows / 64) <= 65535.
 *
 * @param dtype  [in] the type of C: MW_FLOAT32 (MW_FLOAT64 is MW_STATUS_UNSUPPORTED).
 * @param precision  [in] MW_PRECISION_FP16, _BF16, _TF32 or _TF32X3.
 * @param batch  [in] number of products, >= 1.
 * @param rows  [in] rows of A and C, >= 1.
 * @param cols  [in] columns of A (the reduction) and rows of B, >= 1.
 * @param n  [in] columns of B and C, >= 1.
 * @param values  [in] batch x rows x kp/2, the operand type (binary16, bfloat16, float), row-major:
 *        the stored values of each row in column order (2 per 4 columns, 1 per 2 for tf32),
 *        zero in the padding; 16-byte aligned.
 * @param meta  [in] uint32, mw_sp24_meta_words(...) words = batch x ceil(rows/16) x kp/step x 32,
 *        16-byte aligned: word [b][t][s][4g + q] is the mma.sp metadata register of rows 16t + g
 *        and 16t + g + 8 for the q-th quarter of step s (positions of the stored values, 2-bit
 *        index pairs; see the kernel header).  Invalid metadata gives wrong numbers on a GPU
 *        (never an access outside the arrays); the emulator fails the launch naming it.
 * @param B  [in] batch x cols x n, row-major, the operand type, aligned to its element.
 * @param C  [out] batch x rows x n, row-major, float32 (dtype must be MW_FLOAT32): every element
 *        is written, nothing outside it.
 * @param stream  [in] the stream the kernel is enqueued on.
 * @return MW_STATUS_SUCCESS; MW_STATUS_INVALID_ARGUMENT for a bad dtype or precision, a size
 *         < 1, a NULL or misaligned array; MW_STATUS_UNSUPPORTED for MW_PRECISION_FP64 / _FP32,
 *         MW_FLOAT64, arrays of 2^31 or more elements or a grid past 65535;
 *         MW_STATUS_LAUNCH_FAILED (also the emulator's invalid-metadata diagnostic) or
 *         MW_STATUS_CUDA_ERROR when the launch fails.
 */
MW_API mw_status mw_sp24_batched(mw_dtype dtype, mw_precision precision, int64_t batch,
                                 int64_t rows, int64_t cols, int64_t n, const void* values,
                                 const uint32_t* meta, const void* B, void* C, mw_stream stream);

/**
 * Counts the words of the meta array of mw_sp24_batched.
 *
 * @param precision  [in] MW_PRECISION_FP16, _BF16, _TF32 or _TF32X3.
 * @param batch      [in] number of products, >= 1.
 * @param rows       [in] rows of A, >= 1.
 * @param cols       [in] columns of A, >= 1.
 * @return the number of uint32 words of meta for (precision, batch, rows, cols); -1 (with the
 *         reason in mw_last_error_message()) for an unsupported precision or bad sizes.
 */
MW_API int64_t mw_sp24_meta_words(mw_precision precision, int64_t batch, int64_t rows,
                                  int64_t cols);

/**
 * Sparse batched product C[b] = A_csr[b] · B[b] for the batched CSR format of docs/sparse.md.
 *
 * mw_spmm_batched(...) is mw_spmm_batched_ex(..., nnz, NULL, MW_SPMM_DEFAULT, B, C, stream).
 *
 * @param dtype    [in] MW_FLOAT32 or MW_FLOAT64: the type of values, B, C and the arithmetic.
 * @param batch    [in] number of matrices, >= 1.
 * @param rows     [in] rows of A and C, >= 1.
 * @param cols     [in] columns of A and rows of B, >= 1.
 * @param n        [in] columns of B and C, >= 1.
 * @param row_ptr  [in] int32, batch x (rows + 1) offsets into the shared col_idx / values
 *                 arrays of nnz entries (row_ptr[0] = 0, row_ptr[b*(rows+1) + rows] =
 *                 row_ptr[(b+1)*(rows+1)], the last = nnz).
 * @param col_idx  [in] int32, the nnz column indices (NULL allowed when nnz = 0).
 * @param values   [in] the nnz values of dtype (NULL allowed when nnz = 0).
 * @param nnz      [in] the number of stored entries, in [0, 2^31 - 1].
 * @param B        [in] batch x cols x n of dtype.
 * @param C        [out] batch x rows x n of dtype (fully written).
 * @param stream   [in] the stream the kernel is enqueued on.
 * @return MW_STATUS_SUCCESS; MW_STATUS_INVALID_ARGUMENT for a bad dtype, a bad size or nnz, a
 *         NULL array; MW_STATUS_UNSUPPORTED for arrays of 2^31 or more elements;
 *         MW_STATUS_LAUNCH_FAILED or MW_STATUS_CUDA_ERROR when the launch fails.
 */
MW_API mw_status mw_spmm_batched(mw_dtype dtype, int64_t batch, int64_t rows, int64_t cols,
                                 int64_t n, const int32_t* row_ptr, const int32_t* col_idx,
                                 const void* values, int64_t nnz, const void* B, void* C,
                                 mw_stream stream);

/**
 * Path flags of mw_spmm_batched_ex.
 *
 * The kernel picks its fastest path by itself (32-bit offsets when the arrays allow, 16-byte
 * loads of B when n and the pointers allow); these force the general path, which computes
 * bitwise the same C (for tests and comparisons).
 */
typedef enum mw_spmm_flags {
  MW_SPMM_DEFAULT = 0,   /**< the kernel's own choice of path */
  MW_SPMM_OFFSETS64 = 1, /**< 64-bit offsets into B and C */
  MW_SPMM_SCALAR = 2     /**< element loads of B, no 16-byte vectors */
} mw_spmm_flags;

/**
 * mw_spmm_batched with a row order and path flags.
 *
 * C is the same, bitwise, for every permutation (each row is summed in CSR order); an entry of
 * row_order outside [0, rows) is clamped into it (wrong numbers, never an out-of-bounds access).
 * mw_spmm_batched(...) is mw_spmm_batched_ex(..., nnz, NULL, MW_SPMM_DEFAULT, B, C, stream).
 *
 * @param dtype      [in] MW_FLOAT32 or MW_FLOAT64: the type of values, B, C and the arithmetic.
 * @param batch      [in] number of matrices, >= 1.
 * @param rows       [in] rows of A and C, >= 1.
 * @param cols       [in] columns of A and rows of B, >= 1.
 * @param n          [in] columns of B and C, >= 1.
 * @param row_ptr    [in] int32, batch x (rows + 1) offsets, as mw_spmm_batched.
 * @param col_idx    [in] int32, the nnz column indices (NULL allowed when nnz = 0).
 * @param values     [in] the nnz values of dtype (NULL allowed when nnz = 0).
 * @param nnz        [in] the number of stored entries, in [0, 2^31 - 1].
 * @param row_order  [in] NULL (rows in order), or int32, batch x rows, a permutation of [0, rows)
 *                   per matrix: the kernel's row slot s of matrix b computes row
 *                   row_order[b*rows + s] (load balance: BatchedCSR.row_order() sorts the rows
 *                   of each matrix by nnz, descending, and deals them so that the warps of a
 *                   block get similar work).
 * @param flags      [in] mw_spmm_flags, or-ed; unknown bits are an invalid argument.
 * @param B          [in] batch x cols x n of dtype.
 * @param C          [out] batch x rows x n of dtype (fully written).
 * @param stream     [in] the stream the kernel is enqueued on.
 * @return MW_STATUS_SUCCESS; MW_STATUS_INVALID_ARGUMENT for a bad dtype, a bad size or nnz, a
 *         NULL array, unknown flag bits; MW_STATUS_UNSUPPORTED for arrays of 2^31 or more
 *         elements; MW_STATUS_LAUNCH_FAILED or MW_STATUS_CUDA_ERROR when the launch fails.
 */
MW_API mw_status mw_spmm_batched_ex(mw_dtype dtype, int64_t batch, int64_t rows, int64_t cols,
                                    int64_t n, const int32_t* row_ptr, const int32_t* col_idx,
                                    const void* values, int64_t nnz, const int32_t* row_order,
                                    unsigned flags, const void* B, void* C, mw_stream stream);

/**
 * Block-sparse (BSR) batched product on tensor cores, C[b] = A_bsr[b] · B[b] for b < batch.
 *
 * A[b] is rows x cols, stored as dense block_rows x block_cols blocks (16 x 8: one TF32 A tile,
 * or 32 x 8: a warp's 32 rows, the tile that issues fewer instructions per MMA; other shapes are
 * MW_STATUS_UNSUPPORTED); R = ceil(rows / block_rows) block rows, block column j covers
 * columns [8j, 8j + 8) of A.
 * The structure is not validated here (BatchedBSR does it): a corrupt one gives wrong numbers,
 * never an access outside the arrays (row ranges clamped into [0, nblocks], block columns out of
 * range add nothing).  values and B must be aligned to their element, C to its; sizes >= 1,
 * nblocks >= 0, arrays of fewer than 2^31 elements.
 *
 * @param dtype  [in] as mw_gemm_batched_ex: MW_FLOAT32 with MW_PRECISION_TF32, _TF32X3,
 *        _BF16, _FP16; MW_FLOAT64 with MW_PRECISION_FP64 (DMMA: compute capability 8.0+).
 * @param precision  [in] what the product computes in (the pairs of dtype).
 *        MW_PRECISION_FP32 is MW_STATUS_UNSUPPORTED (no tensor cores: use mw_spmm_batched).
 * @param batch  [in] number of products, >= 1.
 * @param rows  [in] rows of A and C, >= 1.
 * @param cols  [in] columns of A and rows of B, >= 1.
 * @param n  [in] columns of B and C, >= 1.
 * @param block_rows  [in] rows of a block: 16 or 32.
 * @param block_cols  [in] columns of a block: 8.
 * @param row_ptr  [in] int32, batch x (R + 1): offsets into the block arrays, chained as the
 *        CSR's (row_ptr[0] = 0, row_ptr[b*(R+1) + R] = row_ptr[(b+1)*(R+1)], the last = nblocks).
 * @param col_idx  [in] int32, nblocks: the block column of each block, in [0, ceil(cols / 8)).
 * @param values   [in] nblocks x block_rows x 8 row-major blocks of the operand type: float (TF32,
 *        TF32X3), binary16 (FP16), bfloat16 (BF16), double (FP64); entries outside the matrix
 *        are zero.
 * @param nblocks  [in] the number of stored blocks, >= 0 (col_idx and values may be NULL when
 *        it is 0).
 * @param B  [in] batch x cols x n, row-major, the operand type; rows >= cols are never read.
 * @param C  [out] batch x rows x n, row-major, float (double for FP64); every element is written
 *        (block rows without blocks give zeros), nothing outside it.
 * @param stream  [in] the stream the kernel is enqueued on.
 * @return MW_STATUS_SUCCESS; MW_STATUS_INVALID_ARGUMENT for a bad dtype or precision, a bad size
 *         or nblocks, a NULL or misaligned array; MW_STATUS_UNSUPPORTED for MW_PRECISION_FP32,
 *         a dtype/precision pair that does not match, a block shape other than 16 x 8 or 32 x 8,
 *         MW_PRECISION_FP64 without float64 tensor cores (before compute capability 8.0) or arrays
 * of 2^31 or more elements; MW_STATUS_LAUNCH_FAILED or MW_STATUS_CUDA_ERROR when the launch fails.
 */
MW_API mw_status mw_bsr_batched(mw_dtype dtype, mw_precision precision, int64_t batch, int64_t rows,
                                int64_t cols, int64_t n, int32_t block_rows, int32_t block_cols,
                                const int32_t* row_ptr, const int32_t* col_idx, const void* values,
                                int64_t nblocks, const void* B, void* C, mw_stream stream);

/** @name Helpers
 * @{ */

/**
 * Names a status.
 *
 * @param status  [in] a status code.
 * @return the static string of its enumerator ("MW_STATUS_SUCCESS", ...), "MW_STATUS_UNKNOWN" for
 *         a value that is no mw_status.
 */
MW_API const char* mw_status_name(mw_status status);

/**
 * Says what was wrong with the calling thread's last failed call.
 *
 * @return the message of the last failure in the calling thread (thread-local; "" if none, and
 *         after a success).
 */
MW_API const char* mw_last_error_message(void);

/**
 * Describes the build: backend, architectures, compiled tiles.
 *
 * @return a static string "backend=cuda;arch=...;specialized2d=...;specialized3d=..." (backend
 *         "emulator", arch "cpu" for the emulator build).
 */
MW_API const char* mw_build_info(void);

/**
 * Reports the version of the library linked.
 *
 * @return MW_VERSION of the library linked (major * 10000 + minor * 100 + patch), to compare
 *         with this header's MW_VERSION.
 */
MW_API int mw_get_version(void);

/** @} */

#ifdef __cplusplus
}
#endif

#endif /* MAGMA_WINO_H_ */
