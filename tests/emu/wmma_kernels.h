/* Host entry points of the emulator's WMMA test kernels (tests/emu/wmma_kernels.cu).
 *
 * Test kernels, not product kernels: GEMMs through nvcuda::wmma whose results NumPy checks, and
 * deliberately wrong kernels that must make the emulator report a diagnostic. Pointers are host
 * pointers under the emulator (device pointers when compiled by nvcc) and must be 32-byte
 * aligned. Every function returns the launch's cudaError_t as an int (0 = success); the detail
 * is in mw_selftest_last_error_message() (selftest_kernels.h).
 */
#ifndef MW_WMMA_KERNELS_H
#define MW_WMMA_KERNELS_H

#ifdef __cplusplus
extern "C" {
#endif

/* Precisions of mw_selftest_wmma_gemm: operands a, b and accumulators c, d are
 *   TF32      float, float    m16n16k8, operands converted with __float_to_tf32 in the kernel
 *   TF32_RAW  float, float    m16n16k8, operands given to mma_sync unconverted (truncated)
 *   TF32X3    float, float    m16n16k8, a = a_hi + a_lo (and b), three products: float level
 *   BF16      bf16, float     m16n16k16 (bf16 as its 16 bits)
 *   FP16      half, float     m16n16k16
 *   FP16_ACC16 half, half     m16n16k16 with a __half accumulator
 *   FP64      double, double  m8n8k4 */
enum {
  MW_WMMA_TF32 = 0,
  MW_WMMA_TF32_RAW = 1,
  MW_WMMA_TF32X3 = 2,
  MW_WMMA_BF16 = 3,
  MW_WMMA_FP16 = 4,
  MW_WMMA_FP16_ACC16 = 5,
  MW_WMMA_FP64 = 6
};

/* d (m x n) = a (m x k) . b (k x n) + c (c may be NULL: zero), one warp per output tile,
   4 warps per block. a is row-major (a_col = 0, lda = k) or column-major (lda = m), b likewise
   (ldb = n or k), c and d row-major (ld = n) or column-major (ld = m). m, n, k must be
   multiples of the tile shape. */
int mw_selftest_wmma_gemm(int precision, const void* a, int a_col, const void* b, int b_col,
                          const void* c, int c_col, void* d, int d_col, int m, int n, int k);

/* One 16x16x8 TF32 tile (a 16x8 row-major, b 8x16 row-major) whose result the kernel writes as
   d[lane * 8 + i] = acc.x[i], assuming lane l holds elements 8l .. 8l+7 of the row-major tile:
   right under the emulator's default mapping, wrong under the permutation (and on a GPU). */
int mw_selftest_wmma_assume_mapping(const float* a, const float* b, float* d);

/* Kernels that must trigger a diagnostic (buffer: 1024 floats, 32-byte aligned):
   0 load from a pointer 16 bytes off 32-byte alignment; 1 float load with ldm 10;
   2 __half load with ldm 20; 3 only lanes 0..15 reach a load (the others exit);
   4 lanes disagree on ldm; 5 lanes disagree on the pointer; 6 lanes reach two different
   loads; 7 store to a misaligned pointer; 8 mma_sync in a block of 16 threads;
   9 half the warp waits at __syncthreads() while the other half calls mma_sync. */
int mw_selftest_wmma_bad(int which, float* buffer);

/* The WMMA checks of the standalone self-test (tests/emu/wmma_selftest_checks.cpp, g++ only):
   prints one "ok"/"FAIL" line per check and returns the number of failures. */
int mw_wmma_selftest_checks(void);

#ifdef __cplusplus
}
#endif

#endif /* MW_WMMA_KERNELS_H */
