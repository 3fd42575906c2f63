/* Host entry points of the emulator's mma.sp test kernels (tests/emu/mma_sp_kernels.cu).
 *
 * Test kernels, not product kernels: one warp runs one sparse MMA (kernels/mma_sp.cuh) whose
 * result NumPy checks, and deliberately wrong kernels that must make the emulator report a
 * diagnostic.  Pointers are host pointers under the emulator (device pointers under nvcc).  Every
 * function returns the launch's cudaError_t as an int (0 = success); the detail is in
 * mw_selftest_last_error_message() (selftest_kernels.h).
 */
#ifndef MW_MMA_SP_KERNELS_H
#define MW_MMA_SP_KERNELS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Kinds of mw_selftest_mma_sp: the instruction and the operand storage. */
enum {
  MW_MMA_SP_F16 = 0,  /* m16n8k16, a and b binary16 bits (uint16)  */
  MW_MMA_SP_BF16 = 1, /* m16n8k16, a and b bfloat16 bits (uint16)  */
  MW_MMA_SP_TF32 = 2  /* m16n8k8, a and b float (given unconverted: the tensor core truncates) */
};

/* d (16 x 8, float) = A · b + c with A 16 x k (k = 16, or 8 for tf32) in compressed form:
 * a_values 16 x k/2 row-major (the stored values of each row, in k order), b k x 8 row-major,
 * c 16 x 8 row-major (NULL: zero), meta[lane] the metadata register of each lane (32 words; the
 * selector picks which lanes' words are read), selector 0..3.  One warp, one block. */
int mw_selftest_mma_sp(int kind, int selector, const void* a_values, const void* b, const float* c,
                       const uint32_t* meta, float* d);

/* ldmatrix_x4_trans on one warp: tile is 32 rows x 8 uint16 (matrix i = rows 8i .. 8i+7), staged
 * in shared memory with a row stride of `stride` elements (a multiple of 8, >= 8) at `offset`
 * elements past a 16-byte boundary (0: aligned; otherwise the launch must fail); out[lane * 4 + i]
 * = register i of lane `lane`. */
int mw_selftest_ldmatrix_trans(const uint16_t* tile, int stride, int offset, uint32_t* out);

/* Kernels that must trigger a diagnostic: 0 only lanes 0..15 reach the mma.sp (the others exit);
 * 1 lanes reach two different mma.sp calls; 2 a block of 16 threads calls it. */
int mw_selftest_mma_sp_bad(int which);

#ifdef __cplusplus
}
#endif

#endif /* MW_MMA_SP_KERNELS_H */
