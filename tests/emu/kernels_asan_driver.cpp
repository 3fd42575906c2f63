// The product kernels (transforms, batched GEMM, batched SpMM) through the C ABI under
// AddressSanitizer + UBSan, on exactly sized heap buffers: any read or write one element
// outside an array is reported.  Sizes straddle every tile edge; the sparse product also
// gets deliberately corrupt CSR arrays, which must give wrong numbers, never a bad access.
// Built by the root CMakeLists with -DMW_EMU_SANITIZE=ON (target kernels_asan); run by CI.
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "magma_wino.h"

namespace {

int g_failures = 0;

void check(mw_status status, const char* what) {
  if (status != MW_STATUS_SUCCESS) {
    std::printf("FAIL %s: %s\n", what, mw_last_error_message());
    ++g_failures;
  }
}

// n elements of small integers; malloc'd so that ASan guards both ends exactly.
template <typename T>
T* filled(size_t n) {
  T* p = static_cast<T*>(std::malloc(n ? n * sizeof(T) : 1));
  for (size_t i = 0; i < n; ++i) p[i] = T(static_cast<int>(i % 7) - 3);
  return p;
}

template <typename T>
void layer(int nd, int m, int r, int N, int C, int K, std::vector<long> in, std::vector<long> pad,
           bool generic, mw_dtype dt) {
  for (int i = 0; i < nd; ++i)
    if (in[i] + 2 * pad[i] - r + 1 < 1) return;  // no output along this axis: not a layer
  mw_conv_desc d{};
  d.ndim = nd;
  d.m = m;
  d.r = r;
  d.batch = N;
  d.in_channels = C;
  d.out_channels = K;
  for (int i = 0; i < nd; ++i) {
    d.in_size[i] = in[i];
    d.padding[i] = pad[i];
  }
  mw_conv_geometry g;
  check(mw_conv_get_geometry(&d, dt, &g), "geometry");
  long x_len = long(N) * C, y_len = long(N) * K, taps = 1;
  for (int i = 0; i < nd; ++i) {
    x_len *= in[i];
    y_len *= g.out_size[i];
    taps *= r;
  }
  const int a = m + r - 1;
  T* x = filled<T>(x_len);
  T* w = filled<T>(long(K) * C * taps);
  T* U = filled<T>(g.positions * K * C);
  T* V = filled<T>(g.positions * C * g.num_tiles);
  T* M = filled<T>(g.positions * K * g.num_tiles);
  T* y = filled<T>(y_len);
  T* b = filled<T>(K);
  T* mats = generic ? filled<T>(m * a + a * r + a * a) : nullptr;
  for (int relu = 0; relu < 3; ++relu)
    check(mw_input_transform(&d, dt, x, V, mw_relu(relu), mats, nullptr), "input transform");
  check(mw_filter_transform(&d, dt, w, U, mats, nullptr), "filter transform");
  check(mw_gemm_batched(dt, g.positions, K, g.num_tiles, C, U, V, M, nullptr), "gemm");
  check(mw_output_transform(&d, dt, M, b, y, mats, nullptr), "output transform");
  check(mw_output_transform(&d, dt, M, nullptr, y, mats, nullptr), "output transform, no bias");
  for (void* p :
       {(void*)x, (void*)w, (void*)U, (void*)V, (void*)M, (void*)y, (void*)b, (void*)mats})
    std::free(p);
}

template <typename T>
void gemm(int batch, int m, int n, int k, mw_dtype dt) {
  T* A = filled<T>(long(batch) * m * k);
  T* B = filled<T>(long(batch) * k * n);
  T* C = filled<T>(long(batch) * m * n);
  check(mw_gemm_batched(dt, batch, m, n, k, A, B, C, nullptr), "gemm");
  std::free(A);
  std::free(B);
  std::free(C);
}

template <typename T>
void spmm(int batch, int rows, int cols, int n, double density, mw_dtype dt, bool corrupt) {
  std::mt19937 rng(rows * 31 + cols);
  std::vector<int32_t> row_ptr, col_idx;
  for (int b = 0; b < batch; ++b) {
    row_ptr.push_back(static_cast<int32_t>(col_idx.size()));
    for (int i = 0; i < rows; ++i) {
      for (int c = 0; c < cols; ++c)
        if (rng() % 1000 < density * 1000) col_idx.push_back(c);
      row_ptr.push_back(static_cast<int32_t>(col_idx.size()));
    }
  }
  const int nnz = static_cast<int>(col_idx.size());
  int32_t* rp = filled<int32_t>(row_ptr.size());
  int32_t* ci = filled<int32_t>(nnz);
  for (size_t i = 0; i < row_ptr.size(); ++i) rp[i] = row_ptr[i];
  for (int i = 0; i < nnz; ++i) ci[i] = col_idx[i];
  if (corrupt) {
    for (size_t i = 0; i < row_ptr.size(); i += 3) rp[i] = (i % 2) ? -1000 : nnz + 1000;
    for (int i = 0; i < nnz; i += 2) ci[i] = (i % 4) ? -5 : cols + 5;
  }
  T* values = filled<T>(nnz);
  T* B = filled<T>(long(batch) * cols * n);
  T* C = filled<T>(long(batch) * rows * n);
  check(mw_spmm_batched(dt, batch, rows, cols, n, rp, ci, values, nnz, B, C, nullptr), "spmm");
  for (void* p : {(void*)rp, (void*)ci, (void*)values, (void*)B, (void*)C}) std::free(p);
}

}  // namespace

int main() {
  const int tiles2d[][2] = {{2, 3}, {4, 3}, {6, 3}, {2, 5}};
  for (const auto& t : tiles2d)
    for (int h : {1, 2, 3, 5, 7, 8, 13})
      for (int pad = 0; pad < t[1]; ++pad) {
        if (h + 2 * pad - t[1] + 1 < 1) continue;
        layer<float>(2, t[0], t[1], 2, 3, 5, {h, h + 1}, {pad, t[1] - 1 - pad}, false, MW_FLOAT32);
        layer<double>(2, t[0], t[1], 1, 2, 3, {h + 2, h}, {pad, pad}, true, MW_FLOAT64);
      }
  const int tiles3d[][2] = {{2, 3}, {4, 3}};
  for (const auto& t : tiles3d)
    for (int h : {1, 3, 5, 6})
      for (int pad = 0; pad < 3; ++pad) {
        if (h + 2 * pad - 2 < 1) continue;
        layer<float>(3, t[0], t[1], 2, 2, 3, {h, h + 1, h + 2}, {pad, 2 - pad, pad}, false,
                     MW_FLOAT32);
        layer<double>(3, t[0], t[1], 1, 2, 2, {h + 1, h, h + 2}, {pad, pad, 0}, true, MW_FLOAT64);
      }
  for (int m : {1, 3, 5, 7})
    for (int r : {1, 2, 4, 7})
      if (m + r - 1 <= 16)
        layer<float>(2, m, r, 1, 2, 3, {9, 11}, {r / 2, r - 1}, true, MW_FLOAT32);
  layer<float>(3, 3, 3, 1, 2, 2, {5, 4, 7}, {1, 2, 0}, true, MW_FLOAT32);
  for (int m : {1, 15, 16, 17, 31, 33, 63, 64, 65, 129})
    for (int n : {1, 3, 4, 31, 32, 33, 64, 68, 129})
      for (int k : {1, 4, 7, 8, 16, 17, 20}) {
        gemm<float>(2, m, n, k, MW_FLOAT32);
        gemm<double>(2, m, n, k, MW_FLOAT64);
      }
  for (int rows : {1, 15, 16, 17, 33, 70})
    for (int n : {1, 31, 32, 33, 64, 127, 128, 129, 200})
      for (bool corrupt : {false, true}) {
        spmm<float>(3, rows, 7, n, 0.3, MW_FLOAT32, corrupt);
        spmm<double>(3, rows, 7, n, 0.3, MW_FLOAT64, corrupt);
      }
  spmm<float>(2, 40, 600, 130, 0.9, MW_FLOAT32, false);  // more than one nonzero chunk per block
  spmm<double>(2, 40, 600, 70, 0.9, MW_FLOAT64, true);
  std::printf("kernels under ASan: %d failures\n", g_failures);
  return g_failures != 0;
}
