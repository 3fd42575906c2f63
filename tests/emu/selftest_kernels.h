/* Host entry points of the emulator's self-test kernels (tests/emu/selftest_kernels.cu).
 *
 * These are test kernels, not product kernels: each one either computes something NumPy can
 * check exactly, or is deliberately wrong so that one emulator diagnostic must fire. Pointers
 * are host pointers under the emulator (device pointers when compiled by nvcc). Every function
 * returns the launch's cudaError_t as an int (0 = success); the detail of a failure is in
 * mw_selftest_last_error_message().
 */
#ifndef MW_SELFTEST_KERNELS_H
#define MW_SELFTEST_KERNELS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

const char* mw_selftest_last_error_message(void);
const char* mw_selftest_error_string(int status);

/* ---- correct kernels ---- */
/* c (m x n) = a (m x k) . b (k x n), row-major; 16x16 tiles in static shared memory. */
int mw_selftest_sgemm(const float* a, const float* b, float* c, int m, int n, int k);
/* sums[i] = sum of x[i*threads : (i+1)*threads]; warp shuffles + one barrier; threads % 32 == 0. */
int mw_selftest_block_reduce(const float* x, float* sums, int n, int threads);
/* bins[v] += 1 for each value (privatized in dynamic shared memory, then global atomics). */
int mw_selftest_histogram(const int* values, int n, int* bins, int num_bins);
/* float_bins[v] += weight and double_bins[v] += weight, global float/double atomicAdd. */
int mw_selftest_weighted_histogram(const int* values, const float* weights, int n,
                                   float* float_bins, double* double_bins, int num_bins);
/* out[b] = alpha * x[b] + y[b] for each matrix b of a batch, batch index = blockIdx.z. */
int mw_selftest_batched_axpy(const float* x, const float* y, float* out, int batch, int rows,
                             int cols, float alpha);
/* results[0..2] = max of x as int/float/double (atomicMax), results[3] = count via atomicCAS,
   exchanged[i] = old value returned by atomicExch(slot, i); results[4] = final slot value. */
int mw_selftest_atomics(const int* x, int n, double* results, int* exchanged);
/* For each lane l of one warp of `width`-lane segments, out[op*32 + l] for op =
   shfl(src = (l*3+1)), shfl_up(3), shfl_down(5), shfl_xor(6), ballot(l%3==0), any, all. */
int mw_selftest_shuffle_semantics(int width, int* out);
/* out[i] = x[i] + x[i-1] (within a block) through dynamic shared memory; the barrier is
   optional so that the missing-barrier bug can be shown. */
int mw_selftest_neighbor_sum(const float* x, float* out, int n, int threads, int with_barrier);
/* y = conv(x, w), 3x3, zero padding 1, stride 1; x N x C x H x W, w K x C x 3 x 3. 16x16 output
   tiles, an 18x18 input tile in shared memory, two barriers per input channel. */
int mw_selftest_conv3x3(const float* x, const float* w, float* y, int n, int c, int k, int h,
                        int width);

/* ---- kernels that must trigger a diagnostic ---- */
/* Thread 5 returns before a __syncthreads() the others wait at. */
int mw_selftest_early_return_divergence(float* out);
/* Even threads wait at one __syncthreads(), odd threads at another. */
int mw_selftest_barrier_mismatch(float* out);
/* Only even entries of dynamic shared memory are written; out[t] = shared[t]. */
int mw_selftest_read_unwritten_shared(float* out, int threads);
/* Writes shared[threads + 3] past the end of `threads` floats of dynamic shared memory. */
int mw_selftest_shared_overflow(int threads);
/* 0: the calling lane is not in the mask; 1: lanes disagree on the mask; 2: the mask names
   lanes absent from a 16-thread block; 3: the mask names a lane that exited; 4: half the warp
   waits at __syncthreads() while the other half shuffles (deadlock); 5: bad width. */
int mw_selftest_bad_shuffle(int which, int* out);
/* A trivial kernel with the given configuration (flag[0] = 1 from thread 0 of block 0). */
int mw_selftest_launch_config(unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                              unsigned bz, size_t shared_bytes, int opt_in, int* flag);
/* Writes buffer[n] (one past the end); only meaningful under AddressSanitizer. */
int mw_selftest_global_out_of_bounds(float* buffer, int n);
/* out = 2 * x with one `width`-float vector (2: 8 bytes, 4: 16 bytes) per thread, `vectors`
   threads: loaded from x + offset (store == 0; out has vectors * width floats) or stored to
   out + offset (store == 1; x has vectors * width floats).  Correct when offset % width == 0;
   otherwise the vector access is misaligned and the emulator must report it
   (cudaErrorMisalignedAddress, 716). */
int mw_selftest_vector_access(const float* x, float* out, int vectors, int width, int offset,
                              int store);

#ifdef __cplusplus
}
#endif

#endif /* MW_SELFTEST_KERNELS_H */
