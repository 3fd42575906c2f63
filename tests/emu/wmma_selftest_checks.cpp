// The WMMA part of the standalone emulator self-test (emu_selftest_asan, emu_selftest_main.cpp):
// every precision of tests/emu/wmma_kernels.cu on small integers (exact) with the default and a
// permuted fragment mapping, and every WMMA diagnostic. Compiled with g++ only.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "emu/mw_emu_config.h"
#include "selftest_kernels.h"
#include "wmma_kernels.h"

namespace {

int wmma_failures = 0;

void wmma_check(bool ok, const char* what) {
  std::printf("%s %s\n", ok ? "ok  " : "FAIL", what);
  if (!ok) ++wmma_failures;
}

// A 64-byte aligned, zeroed buffer of n T (freed by the caller).
template <typename T>
T* aligned_buffer(size_t n) {
  const size_t bytes = (n * sizeof(T) + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, bytes);
  std::memset(p, 0, bytes);
  return static_cast<T*>(p);
}

// d = a b + c on integers in [-4, 4] (c in [-16, 16]), every element exact in every precision.
template <typename In, typename Out>
bool gemm_is_exact(int precision, int m, int n, int k, int a_col, int b_col) {
  In* a = aligned_buffer<In>(m * k);
  In* b = aligned_buffer<In>(k * n);
  Out* c = aligned_buffer<Out>(m * n);
  Out* d = aligned_buffer<Out>(m * n);
  auto value_a = [](int i, int j) { return (i * 3 + j * 5) % 9 - 4; };
  auto value_b = [](int i, int j) { return (i * 7 + j * 2) % 9 - 4; };
  auto value_c = [](int i, int j) { return (i + j * 3) % 33 - 16; };
  for (int i = 0; i < m; ++i) {
    for (int j = 0; j < k; ++j) a[a_col ? j * m + i : i * k + j] = In(float(value_a(i, j)));
  }
  for (int i = 0; i < k; ++i) {
    for (int j = 0; j < n; ++j) b[b_col ? j * k + i : i * n + j] = In(float(value_b(i, j)));
  }
  for (int i = 0; i < m; ++i) {
    for (int j = 0; j < n; ++j) c[i * n + j] = Out(float(value_c(i, j)));
  }
  bool ok = mw_selftest_wmma_gemm(precision, a, a_col, b, b_col, c, 0, d, 0, m, n, k) == 0;
  for (int i = 0; ok && i < m; ++i) {
    for (int j = 0; j < n; ++j) {
      long expected = value_c(i, j);
      for (int kk = 0; kk < k; ++kk) expected += long(value_a(i, kk)) * value_b(kk, j);
      if (double(float(d[i * n + j])) != double(expected)) ok = false;
    }
  }
  std::free(a);
  std::free(b);
  std::free(c);
  std::free(d);
  return ok;
}

bool message_has(const char* needle) {
  return std::strstr(mw_selftest_last_error_message(), needle) != nullptr;
}

}  // namespace

extern "C" int mw_wmma_selftest_checks(void) {
  wmma_failures = 0;
  unsigned long long saved_seed = 0;
  const int saved = mw_emu_get_fragment_permutation(&saved_seed);
  for (int permuted = 0; permuted < 2; ++permuted) {
    mw_emu_set_fragment_permutation(permuted, 31);
    const bool tf32 = gemm_is_exact<float, float>(MW_WMMA_TF32, 32, 48, 40, 0, 1) &&
                      gemm_is_exact<float, float>(MW_WMMA_TF32_RAW, 32, 16, 16, 1, 0) &&
                      gemm_is_exact<float, float>(MW_WMMA_TF32X3, 16, 32, 24, 1, 1);
    wmma_check(tf32, permuted ? "wmma tf32 (permuted mapping)" : "wmma tf32");
    const bool bits16 = gemm_is_exact<__nv_bfloat16, float>(MW_WMMA_BF16, 32, 32, 48, 0, 1) &&
                        gemm_is_exact<__half, float>(MW_WMMA_FP16, 32, 32, 32, 1, 0) &&
                        gemm_is_exact<__half, __half>(MW_WMMA_FP16_ACC16, 16, 32, 32, 0, 0);
    wmma_check(bits16, permuted ? "wmma bf16/fp16 (permuted mapping)" : "wmma bf16/fp16");
    const bool fp64 = gemm_is_exact<double, double>(MW_WMMA_FP64, 16, 24, 12, 1, 1);
    wmma_check(fp64, permuted ? "wmma fp64 (permuted mapping)" : "wmma fp64");
  }
  mw_emu_set_fragment_permutation(saved, saved_seed);

  float* buffer = aligned_buffer<float>(1024);
  struct Expected {
    int status;
    const char* text;
  };
  const Expected expected[10] = {
      {716, "misaligned pointer"},
      {716, "ldm 10 is not a multiple of 4"},
      {716, "ldm 20 is not a multiple of 8"},
      {719, "must be reached by every lane of the warp"},
      {719, "disagree on ldm"},
      {719, "disagree on the pointer"},
      {719, "warp-collective call diverges"},
      {716, "store_matrix_sync: misaligned pointer"},
      {719, "names lanes absent from this warp"},
      {719, "deadlock"},
  };
  for (int which = 0; which < 10; ++which) {
    char what[64];
    std::snprintf(what, sizeof(what), "wmma diagnostic %d: %s", which, expected[which].text);
    wmma_check(mw_selftest_wmma_bad(which, buffer) == expected[which].status &&
                   message_has(expected[which].text),
               what);
  }
  std::free(buffer);
  return wmma_failures;
}
