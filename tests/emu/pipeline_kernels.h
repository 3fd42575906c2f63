/* Host entry points of the emulator's asynchronous-copy test kernels
 * (tests/emu/pipeline_kernels.cu).
 *
 * Test kernels, not product kernels: each one computes something NumPy can check, or is
 * deliberately wrong in one way that the emulator must expose. Pointers are host pointers under
 * the emulator (device pointers under nvcc). Every function returns the launch's cudaError_t as
 * an int (0 = success); the detail of a failure is in mw_selftest_last_error_message().
 */
#ifndef MW_PIPELINE_KERNELS_H
#define MW_PIPELINE_KERNELS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Variants of the double-buffered GEMM. */
enum {
  MW_PIPE_GEMM_CORRECT = 0,           /* commit every stage, wait_prior(1), barrier, compute */
  MW_PIPE_GEMM_NO_WAIT = 1,           /* reads the stage without waiting for it */
  MW_PIPE_GEMM_WAIT_TOO_SHORT = 2,    /* wait_prior(2): the needed group stays in flight */
  MW_PIPE_GEMM_SKIP_EMPTY_COMMIT = 3, /* the empty tail stage is not committed, so wait_prior(1)
                                         leaves the last real stage in flight */
  MW_PIPE_GEMM_NO_REFILL_BARRIER = 4  /* no barrier between the multiply of a stage and its
                                         refill: other threads still read what a copy poisons */
};

/* c (m x n) = a (m x k) . b (k x n), row-major float32: 32x32 tiles of c per 256-thread block,
   k in slices of 16, two shared-memory stages filled by __pipeline_memcpy_async of `width`
   floats (1, 2 or 4: 4-, 8- or 16-byte copies; k and n must be multiples of width, a and b
   aligned to 4 * width bytes). Edges are zero-filled (the zfill form). */
int mw_pipe_gemm(const float* a, const float* b, float* c, int m, int n, int k, int width,
                 int variant);

/* One thread copies `size` bytes (4, 8 or 16) from src with `zfill` trailing bytes zeroed into
   shared memory, waits, and writes the 4 floats of the 16-byte shared slot to out (bytes past
   `size` keep the shared memory's poison). */
int mw_pipe_zfill(const float* src, float* out, int size, int zfill);

/* One thread issues a bad copy: 0: size 12; 1: source misaligned (src + 1 float, 16 bytes);
   2: destination misaligned (shared + 1 float, 16 bytes); 3: zfill 20 > size 16. */
int mw_pipe_bad_copy(const float* src, int which);

/* Thread 0 copies 16 bytes from src + offset (floats) into shared memory and writes them to out:
   with offset = n - 2 on an n-float buffer the source runs past the end (ASan reports it). */
int mw_pipe_copy_from(const float* src, int offset, float* out);

#ifdef __cplusplus
}
#endif

#endif /* MW_PIPELINE_KERNELS_H */
