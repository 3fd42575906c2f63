# Declarations of the C ABI (kernels/include/magma_wino.h).
from libc.stdint cimport int32_t, int64_t, uint32_t

cdef extern from "magma_wino.h" nogil:
    ctypedef enum mw_status:
        MW_STATUS_SUCCESS
        MW_STATUS_INVALID_ARGUMENT
        MW_STATUS_UNSUPPORTED
        MW_STATUS_LAUNCH_FAILED
        MW_STATUS_CUDA_ERROR

    ctypedef enum mw_dtype:
        MW_FLOAT32
        MW_FLOAT64
        MW_FLOAT16
        MW_BFLOAT16

    ctypedef enum mw_relu:
        MW_RELU_NONE
        MW_RELU_SPATIAL
        MW_RELU_WINOGRAD

    ctypedef enum mw_precision:
        MW_PRECISION_FP32
        MW_PRECISION_TF32
        MW_PRECISION_TF32X3
        MW_PRECISION_BF16
        MW_PRECISION_FP16
        MW_PRECISION_FP64

    ctypedef void* mw_stream

    ctypedef struct mw_conv_desc:
        int ndim
        int m
        int r
        int64_t batch
        int64_t in_channels
        int64_t out_channels
        int64_t in_size[3]
        int64_t padding[3]
        int64_t padding_end[3]
        int m_axes[3]
        int r_axes[3]
        int layout

    ctypedef struct mw_conv_geometry:
        int alpha
        int64_t positions
        int64_t out_size[3]
        int64_t tiles[3]
        int64_t num_tiles
        size_t workspace_bytes
        int64_t x_elems
        int64_t y_elems
        int64_t w_elems
        int64_t u_elems
        int64_t v_elems
        int64_t m_elems
        int64_t matrices_elems
        int64_t csr_row_ptr_elems
        int64_t bsr_row_ptr_elems
        int64_t bsr_max_blocks
        int alpha_axes[3]
        int rectangular

    int mw_has_specialized_tile(const mw_conv_desc* desc)
    mw_status mw_conv_get_geometry(const mw_conv_desc* desc, mw_dtype dtype, mw_conv_geometry* geometry)
    int mw_has_specialized_transform(int ndim, int m, int r)
    mw_status mw_winograd_matrices(int m, int r, const int64_t* points_num, const int64_t* points_den,
                                   mw_dtype dtype, void* matrices)
    mw_status mw_filter_transform(const mw_conv_desc* desc, mw_dtype dtype, const void* w, void* U,
                                  const void* matrices, mw_stream stream)
    mw_status mw_input_transform(const mw_conv_desc* desc, mw_dtype dtype, const void* x, void* V,
                                 mw_relu relu, const void* matrices, mw_stream stream)
    mw_status mw_filter_transform_ex(const mw_conv_desc* desc, mw_dtype dtype, mw_dtype u_dtype,
                                     const void* w, void* U, const void* matrices, mw_stream stream)
    mw_status mw_input_transform_ex(const mw_conv_desc* desc, mw_dtype dtype, mw_dtype v_dtype,
                                    const void* x, void* V, mw_relu relu, const void* matrices,
                                    mw_stream stream)
    mw_status mw_output_transform(const mw_conv_desc* desc, mw_dtype dtype, const void* M,
                                  const void* bias, void* y, const void* matrices, mw_stream stream)
    mw_status mw_output_transform_adjoint(const mw_conv_desc* desc, mw_dtype dtype, const void* dy,
                                          void* dM, const void* matrices, mw_stream stream)
    mw_status mw_input_transform_adjoint(const mw_conv_desc* desc, mw_dtype dtype, const void* dV,
                                         void* dx, const void* matrices, mw_stream stream)
    mw_status mw_filter_transform_adjoint(const mw_conv_desc* desc, mw_dtype dtype, const void* dU,
                                          void* dw, const void* matrices, mw_stream stream)
    mw_status mw_gemm_batched(mw_dtype dtype, int64_t batch, int64_t m, int64_t n, int64_t k,
                              const void* A, const void* B, void* C, mw_stream stream)
    mw_status mw_gemm_batched_ex(mw_dtype dtype, mw_precision precision, int64_t batch, int64_t m,
                                 int64_t n, int64_t k, const void* A, const void* B, void* C,
                                 mw_stream stream)
    ctypedef struct mw_gemm_plan:
        const char* config
        int block_m
        int block_n
        int block_k
        int threads
        int splits
        int slices_per_split
        int sm_count
        int64_t blocks
        size_t workspace_bytes

    mw_status mw_gemm_batched_ex_plan(mw_dtype dtype, mw_precision precision, int64_t batch,
                                      int64_t m, int64_t n, int64_t k, mw_gemm_plan* plan)
    mw_status mw_gemm_batched_ex_workspace(mw_dtype dtype, mw_precision precision, int64_t batch,
                                           int64_t m, int64_t n, int64_t k, size_t* bytes)
    mw_status mw_gemm_batched_ex_ws(mw_dtype dtype, mw_precision precision, int64_t batch,
                                    int64_t m, int64_t n, int64_t k, const void* A, const void* B,
                                    void* C, void* workspace, size_t workspace_bytes,
                                    mw_stream stream)
    mw_status mw_spmm_batched(mw_dtype dtype, int64_t batch, int64_t rows, int64_t cols, int64_t n,
                              const int32_t* row_ptr, const int32_t* col_idx, const void* values,
                              int64_t nnz, const void* B, void* C, mw_stream stream)
    mw_status mw_spmm_batched_ex(mw_dtype dtype, int64_t batch, int64_t rows, int64_t cols,
                                 int64_t n, const int32_t* row_ptr, const int32_t* col_idx,
                                 const void* values, int64_t nnz, const int32_t* row_order,
                                 unsigned flags, const void* B, void* C, mw_stream stream)
    mw_status mw_bsr_batched(mw_dtype dtype, mw_precision precision, int64_t batch, int64_t rows,
                             int64_t cols, int64_t n, int32_t block_rows, int32_t block_cols,
                             const int32_t* row_ptr, const int32_t* col_idx, const void* values,
                             int64_t nblocks, const void* B, void* C, mw_stream stream)
    ctypedef enum mw_layout:
        MW_LAYOUT_NCHW
        MW_LAYOUT_NHWC
    ctypedef struct mw_fused_plan:
        const char* config
        int block_k
        int block_p
        int block_c
        int threads
        int64_t blocks
        size_t shared_bytes
    mw_status mw_conv2d_fused_plan(const mw_conv_desc* desc, mw_dtype dtype, mw_precision precision,
                                   mw_fused_plan* plan)
    mw_status mw_conv2d_fused(const mw_conv_desc* desc, mw_dtype dtype, mw_precision precision,
                              mw_layout layout, mw_relu relu, int relu_output, const void* x,
                              const void* U, const void* bias, void* y, mw_stream stream)
    mw_status mw_sp24_batched(mw_dtype dtype, mw_precision precision, int64_t batch,
                              int64_t rows, int64_t cols, int64_t n, const void* values,
                              const uint32_t* meta, const void* B, void* C, mw_stream stream)
    int64_t mw_sp24_meta_words(mw_precision precision, int64_t batch, int64_t rows, int64_t cols)
    const char* mw_status_name(mw_status status)
    const char* mw_last_error_message()
    const char* mw_build_info()
    int mw_get_version()
