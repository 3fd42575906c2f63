// Standalone driver of the emulator self-test kernels, built with -fsanitize=address,undefined
// (target emu_selftest_asan, CMake option MW_EMU_SANITIZE) and independent of Python.
//
//   emu_selftest_asan        runs the correct kernels and the diagnostic kernels, checks the
//                            results, prints "emu selftest: all checks passed", exits 0
//   emu_selftest_asan oob    writes one float past a heap buffer inside a kernel; ASan must
//                            report a heap-buffer-overflow (and abort the process)
//   emu_selftest_asan async_oob  an asynchronous copy (__pipeline_memcpy_async) whose source
//                            runs past a heap buffer; ASan must report a heap-buffer-overflow
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "emu/mw_emu_config.h"
#include "pipeline_kernels.h"
#include "selftest_kernels.h"
#include "wmma_kernels.h"

namespace {

int failures = 0;

void check(bool ok, const char* what) {
  std::printf("%s %s\n", ok ? "ok  " : "FAIL", what);
  if (!ok) ++failures;
}

bool message_has(const char* needle) {
  return std::strstr(mw_selftest_last_error_message(), needle) != nullptr;
}

void check_correct_kernels() {
  // SGEMM on small integers: exact in float.
  const int m = 37, n = 29, k = 45;
  std::vector<float> a(m * k), b(k * n), c(m * n, NAN);
  for (int i = 0; i < m * k; ++i) a[i] = static_cast<float>(i % 7 - 3);
  for (int i = 0; i < k * n; ++i) b[i] = static_cast<float>(i % 5 - 2);
  bool ok = mw_selftest_sgemm(a.data(), b.data(), c.data(), m, n, k) == 0;
  for (int i = 0; ok && i < m; ++i) {
    for (int j = 0; j < n; ++j) {
      float expected = 0;
      for (int kk = 0; kk < k; ++kk) expected += a[i * k + kk] * b[kk * n + j];
      if (c[i * n + j] != expected) ok = false;
    }
  }
  check(ok, "sgemm equals the reference");

  const int count = 1000, threads = 256;
  std::vector<float> x(count), sums((count + threads - 1) / threads, NAN);
  for (int i = 0; i < count; ++i) x[i] = static_cast<float>(i % 11);
  ok = mw_selftest_block_reduce(x.data(), sums.data(), count, threads) == 0;
  for (size_t blk = 0; ok && blk < sums.size(); ++blk) {
    float expected = 0;
    for (int i = static_cast<int>(blk) * threads;
         i < count && i < (static_cast<int>(blk) + 1) * threads; ++i) {
      expected += x[i];
    }
    ok = sums[blk] == expected;
  }
  check(ok, "block reduction equals the reference");

  std::vector<int> values(5000), bins(17, 0), expected_bins(17, 0);
  for (int i = 0; i < 5000; ++i) expected_bins[values[i] = (i * 7) % 17]++;
  ok = mw_selftest_histogram(values.data(), 5000, bins.data(), 17) == 0 && bins == expected_bins;
  check(ok, "histogram equals the reference");

  std::vector<float> conv_x(2 * 3 * 20 * 21), conv_w(4 * 3 * 9), conv_y(2 * 4 * 20 * 21, NAN);
  for (size_t i = 0; i < conv_x.size(); ++i) conv_x[i] = static_cast<float>(i % 5) - 2.0f;
  for (size_t i = 0; i < conv_w.size(); ++i) conv_w[i] = static_cast<float>(i % 3) - 1.0f;
  ok = mw_selftest_conv3x3(conv_x.data(), conv_w.data(), conv_y.data(), 2, 3, 4, 20, 21) == 0;
  for (int img = 0; ok && img < 2; ++img)
    for (int kk = 0; kk < 4; ++kk)
      for (int r = 0; r < 20; ++r)
        for (int q = 0; q < 21; ++q) {
          float expected = 0;
          for (int cc = 0; cc < 3; ++cc)
            for (int dr = 0; dr < 3; ++dr)
              for (int dq = 0; dq < 3; ++dq) {
                const int rr = r + dr - 1, qq = q + dq - 1;
                if (rr < 0 || rr >= 20 || qq < 0 || qq >= 21) continue;
                expected += conv_w[(kk * 3 + cc) * 9 + dr * 3 + dq] *
                            conv_x[((img * 3 + cc) * 20 + rr) * 21 + qq];
              }
          if (conv_y[((img * 4 + kk) * 20 + r) * 21 + q] != expected) ok = false;
        }
  check(ok, "conv3x3 equals the reference");
}

void check_diagnostics() {
  std::vector<float> out(128);
  std::vector<int> iout(32);
  check(mw_selftest_early_return_divergence(out.data()) != 0 && message_has("barrier divergence"),
        "early return before __syncthreads is reported");
  check(mw_selftest_shared_overflow(64) != 0 && message_has("overflow"),
        "dynamic shared memory overflow is reported");
  for (int which = 0; which <= 5; ++which) {
    const std::string what = "bad shuffle " + std::to_string(which) + " is reported";
    check(mw_selftest_bad_shuffle(which, iout.data()) != 0, what.c_str());
  }
  std::vector<float> src(260, 1.0f), dst(260, 0.0f);
  check(mw_selftest_vector_access(src.data(), dst.data(), 64, 4, 0, 0) == 0 && dst[255] == 2.0f,
        "aligned 16-byte vector loads work");
  check(mw_selftest_vector_access(src.data(), dst.data(), 64, 4, 1, 0) == 716 &&
            message_has("misaligned address"),
        "a misaligned 16-byte vector load is reported");
  check(mw_selftest_vector_access(src.data(), dst.data(), 64, 2, 1, 1) == 716 &&
            message_has("8-byte vector store"),
        "a misaligned 8-byte vector store is reported");
  int flag = 0;
  check(mw_selftest_launch_config(1, 1, 1, 1025, 1, 1, 0, 1, &flag) != 0 &&
            message_has("invalid launch configuration"),
        "1025 threads per block are rejected");
  // After all these abandoned blocks, a correct launch must still work.
  check(mw_selftest_launch_config(3, 2, 1, 32, 2, 1, 0, 1, &flag) == 0 && flag == 1,
        "a launch after failures works");
}

// The asynchronous-copy kernels (tests/emu/pipeline_kernels.cu): the double-buffered GEMM on
// small integers (exact) late and with random completion; the bugs make NaN visible; bad copies
// are reported.
void check_pipeline_kernels() {
  const int m = 33, n = 36, k = 40;
  alignas(16) static float a[m * k], b[k * n], c[m * n];
  for (int i = 0; i < m * k; ++i) a[i] = static_cast<float>(i % 7 - 3);
  for (int i = 0; i < k * n; ++i) b[i] = static_cast<float>(i % 5 - 2);
  for (int mode : {MW_EMU_ASYNC_COPY_LATE, MW_EMU_ASYNC_COPY_RANDOM}) {
    mw_emu_set_async_copy(mode, 99);
    for (int variant = MW_PIPE_GEMM_CORRECT; variant <= MW_PIPE_GEMM_NO_REFILL_BARRIER; ++variant) {
      bool ok = mw_pipe_gemm(a, b, c, m, n, k, 4, variant) == 0;
      int wrong = 0, nans = 0;
      for (int i = 0; ok && i < m; ++i) {
        for (int j = 0; j < n; ++j) {
          float expected = 0;
          for (int kk = 0; kk < k; ++kk) expected += a[i * k + kk] * b[kk * n + j];
          if (std::isnan(c[i * n + j])) ++nans;
          if (c[i * n + j] != expected) ++wrong;
        }
      }
      const std::string what = "pipelined GEMM variant " + std::to_string(variant) + " mode " +
                               std::to_string(mode) +
                               (variant == 0 ? " is exact" : " shows poison (NaN)");
      check(ok && (variant == 0 ? wrong == 0 : nans > 0), what.c_str());
    }
  }
  mw_emu_set_async_copy(MW_EMU_ASYNC_COPY_LATE, 0);
  for (int which = 0; which < 4; ++which) {
    const std::string what = "bad asynchronous copy " + std::to_string(which) + " is reported";
    check(mw_pipe_bad_copy(a, which) != 0 && message_has("__pipeline_memcpy_async"), what.c_str());
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "async_oob") == 0) {
    std::vector<float> buffer(98);  // 392 bytes: a 16-byte copy at float 96 reads 8 past it
    float out[4];
    const int status = mw_pipe_copy_from(buffer.data(), 96, out);
    std::printf("out-of-bounds asynchronous copy returned %d without a sanitizer report\n", status);
    return 3;
  }
  if (argc > 1 && std::strcmp(argv[1], "oob") == 0) {
    std::vector<float> buffer(100);
    const int status = mw_selftest_global_out_of_bounds(buffer.data(), 100);
    std::printf("out-of-bounds kernel returned %d without a sanitizer report\n", status);
    return 3;
  }
  for (int workers : {1, 3}) {
    for (int order : {MW_EMU_ORDER_FORWARD, MW_EMU_ORDER_REVERSE, MW_EMU_ORDER_SHUFFLE}) {
      mw_emu_set_workers(workers);
      mw_emu_set_order(order, 12345);
      std::printf("-- workers %d, order %d\n", workers, order);
      check_correct_kernels();
      check_diagnostics();
      check_pipeline_kernels();
      failures += mw_wmma_selftest_checks();
    }
  }
  if (mw_emu_has_asm_switch()) {
    mw_emu_set_context_switch(MW_EMU_SWITCH_UCONTEXT);
    std::printf("-- ucontext switch\n");
    check_correct_kernels();
    check_diagnostics();
  }
  if (failures != 0) {
    std::printf("emu selftest: %d check(s) failed\n", failures);
    return 1;
  }
  std::printf("emu selftest: all checks passed\n");
  return 0;
}
