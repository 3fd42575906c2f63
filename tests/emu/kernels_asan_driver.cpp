// The product kernels (transforms, batched GEMM, batched SpMM) through the C ABI under
// AddressSanitizer + UBSan, on exactly sized heap buffers: any read or write one element
// outside an array is reported.  Sizes straddle every tile edge; the sparse product also
// gets deliberately corrupt CSR arrays, which must give wrong numbers, never a bad access.
// Also: operands offset from 16-byte alignment (the kernels must fall back to scalar loads;
// the emulator reports a misaligned vector load as a launch failure) and a sparse product whose
// nonzero offsets end at INT_MAX (the chunk loop must not overflow), both checked exactly.
// The 16-bit modes: U and V stored as binary16 / bfloat16 by the _ex transforms into exactly
// sized 16-bit buffers and multiplied by the fp16 / bf16 tensor-core product; that product also
// on its own, aligned and offset by one element, checked exactly.
// The fused layer (mw_conv2d_fused): F(2, 3) and F(4, 3), every precision, NCHW and NHWC, on
// exactly sized x, U, y, U on its 16-byte and its element copy path, checked bitwise against the
// three-phase entries of the same build.
// The adjoint transforms (mw_*_transform_adjoint) on every layer's exactly sized arrays.
// Per-side and large padding (desc.padding / desc.padding_end, up to r + 1 and past whole tiles,
// asymmetric on every axis): V, y and dx checked bitwise against the same layer run without
// padding on an explicitly zero-padded copy of x (the same windows, so the same arithmetic), and
// the fused layer with per-side padding against the three-phase entries as above.
// The structured-sparse products (mw_bsr_batched, mw_sp24_batched): exactly sized blocks,
// metadata, B and C, checked exactly; the block-sparse product also on corrupt structures.
// Built by the root CMakeLists with -DMW_EMU_SANITIZE=ON (target kernels_asan); run by CI, by
// `magma-wino validate --sanitize` and by tests/test_sanitize.py.
//
//   kernels_asan            every check; prints "kernels under ASan: 0 failures", exits 0
//   kernels_asan overread   a product whose A is one element short: ASan must report a
//                           heap-buffer-overflow (proves the sanitizer sees the kernels)
//   kernels_asan fused     the fused-layer checks only
//   kernels_asan fused-overread   the fused layer on an x one element short: the same, for
//                           the fused kernel's window loads
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <type_traits>
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

// The 16-bit encodings of small integers (|v| <= 3), both exact: binary16 from a table,
// bfloat16 as the top half of the float's bits.
uint16_t half_bits(int v) {
  static const uint16_t kMagnitude[] = {0x0000, 0x3C00, 0x4000, 0x4200};
  return static_cast<uint16_t>(kMagnitude[v < 0 ? -v : v] | (v < 0 ? 0x8000 : 0));
}
uint16_t bf16_bits(int v) {
  const float f = static_cast<float>(v);
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return static_cast<uint16_t>(u >> 16);
}

// n 16-bit encodings of the small integers filled<float>(n) holds.
uint16_t* filled16(size_t n, mw_precision prec) {
  uint16_t* p = static_cast<uint16_t*>(std::malloc(n ? n * sizeof(uint16_t) : 1));
  for (size_t i = 0; i < n; ++i) {
    const int v = static_cast<int>(i % 7) - 3;
    p[i] = prec == MW_PRECISION_FP16 ? half_bits(v) : bf16_bits(v);
  }
  return p;
}

// The 16-bit modes of a float32 layer: U and V as binary16 and bfloat16 into exactly sized
// buffers, the 16-bit product into M (float32).
void layer16(const mw_conv_desc& d, const mw_conv_geometry& g, const float* x, const float* w,
             float* M, const float* mats) {
  for (mw_dtype s : {MW_FLOAT16, MW_BFLOAT16}) {
    uint16_t* U = filled16(g.positions * d.out_channels * d.in_channels, MW_PRECISION_FP16);
    uint16_t* V = filled16(g.positions * d.in_channels * g.num_tiles, MW_PRECISION_FP16);
    for (int relu = 0; relu < 3; ++relu)
      check(mw_input_transform_ex(&d, MW_FLOAT32, s, x, V, mw_relu(relu), mats, nullptr),
            "input transform, 16-bit V");
    check(mw_filter_transform_ex(&d, MW_FLOAT32, s, w, U, mats, nullptr),
          "filter transform, 16-bit U");
    check(mw_gemm_batched_ex(MW_FLOAT32, s == MW_FLOAT16 ? MW_PRECISION_FP16 : MW_PRECISION_BF16,
                             g.positions, d.out_channels, g.num_tiles, d.in_channels, U, V, M,
                             nullptr),
          "gemm_tc 16-bit");
    std::free(U);
    std::free(V);
  }
}

// A layer's descriptor: in, lo (leading padding) and hi (trailing padding) per axis, nd entries.
mw_conv_desc make_desc(int nd, int m, int r, long N, long C, long K, const std::vector<long>& in,
                       const std::vector<long>& lo, const std::vector<long>& hi) {
  mw_conv_desc d{};
  d.ndim = nd;
  d.m = m;
  d.r = r;
  d.batch = N;
  d.in_channels = C;
  d.out_channels = K;
  for (int i = 0; i < nd; ++i) {
    d.in_size[i] = in[i];
    d.padding[i] = lo[i];
    d.padding_end[i] = hi[i];
  }
  return d;
}

// pad: the leading padding per axis; pad_end: the trailing one (empty: = pad, symmetric).
template <typename T>
void layer(int nd, int m, int r, int N, int C, int K, std::vector<long> in, std::vector<long> pad,
           bool generic, mw_dtype dt, std::vector<long> pad_end = {}) {
  if (pad_end.empty()) pad_end = pad;
  for (int i = 0; i < nd; ++i)
    if (in[i] + pad[i] + pad_end[i] - r + 1 < 1) return;  // no output along this axis
  const mw_conv_desc d = make_desc(nd, m, r, N, C, K, in, pad, pad_end);
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
  if constexpr (std::is_same_v<T, float>) layer16(d, g, x, w, M, mats);
  // The adjoint transforms (backward) on the same exactly sized arrays, read and written the
  // other way round: dy = y -> dM = M, dV = V -> dx = x, dU = U -> dw = w.  They have only
  // generic kernels, so they always get matrices (a buffer of their own in the specialised case).
  T* adj_mats = generic ? mats : filled<T>(m * a + a * r + a * a);
  check(mw_output_transform_adjoint(&d, dt, y, M, adj_mats, nullptr), "output transform adjoint");
  check(mw_input_transform_adjoint(&d, dt, V, x, adj_mats, nullptr), "input transform adjoint");
  check(mw_filter_transform_adjoint(&d, dt, U, w, adj_mats, nullptr), "filter transform adjoint");
  if (!generic) std::free(adj_mats);
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

// Counts the entries of C (batch x m x n) that differ from the exact product of a(b, i, l) and
// b(b, l, j) summed over l < k in T, and reports a failure naming the precision and offsets.
template <typename T, typename AtA, typename AtB>
void check_product(const T* C, int batch, int m, int n, int k, AtA a, AtB bv, mw_precision prec,
                   int off_a, int off_b, int off_c) {
  long wrong = 0;
  for (int b = 0; b < batch; ++b)
    for (int i = 0; i < m; ++i)
      for (int j = 0; j < n; ++j) {
        T ref = 0;
        for (int l = 0; l < k; ++l) ref += a(b, i, l) * bv(b, l, j);
        wrong += C[(long(b) * m + i) * n + j] != ref;
      }
  if (wrong != 0) {
    std::printf(
        "FAIL gemm (precision %d), offsets (%d, %d, %d) elements, batch %d m %d n %d k %d: %ld "
        "wrong\n",
        int(prec), off_a, off_b, off_c, batch, m, n, k, wrong);
    ++g_failures;
  }
}

// A batched product whose operands start `offset` elements past an aligned allocation (the
// allocation itself is exactly sized past that offset), checked exactly against a reference.
template <typename T>
void gemm_offset(int batch, int m, int n, int k, int off_a, int off_b, int off_c, mw_dtype dt,
                 mw_precision prec = MW_PRECISION_FP32) {
  const long la = long(batch) * m * k, lb = long(batch) * k * n, lc = long(batch) * m * n;
  T* a_alloc = filled<T>(la + off_a);
  T* b_alloc = filled<T>(lb + off_b);
  T* c_alloc = filled<T>(lc + off_c);
  const T *A = a_alloc + off_a, *B = b_alloc + off_b;
  T* C = c_alloc + off_c;
  if (prec == MW_PRECISION_FP32)
    check(mw_gemm_batched(dt, batch, m, n, k, A, B, C, nullptr), "gemm, offset operands");
  else  // the tensor-core products (gemm_tc.cuh): small integers are exact in TF32 and float64
    check(mw_gemm_batched_ex(dt, prec, batch, m, n, k, A, B, C, nullptr), "gemm_tc");
  check_product(
      C, batch, m, n, k, [&](int b, int i, int l) { return A[(long(b) * m + i) * k + l]; },
      [&](int b, int l, int j) { return B[(long(b) * k + l) * n + j]; }, prec, off_a, off_b, off_c);
  std::free(a_alloc);
  std::free(b_alloc);
  std::free(c_alloc);
}

// The tensor-core product split over k (gemm_tc.cuh, "Split-K") with a workspace of exactly the
// queried size (ASan sees a partial written past it), checked exactly.  16-bit precisions take
// the 16-bit encodings of the same small integers.
template <typename T>
void gemm_split(mw_precision prec, int batch, int m, int n, int k, mw_dtype dt) {
  size_t bytes = 0;
  check(mw_gemm_batched_ex_workspace(dt, prec, batch, m, n, k, &bytes), "split-K workspace");
  if (bytes == 0) {
    std::printf("FAIL split-K: precision %d batch %d m %d n %d k %d does not split\n", int(prec),
                batch, m, n, k);
    ++g_failures;
    return;
  }
  const bool half = prec == MW_PRECISION_FP16 || prec == MW_PRECISION_BF16;
  const long la = long(batch) * m * k, lb = long(batch) * k * n;
  void* A = half ? static_cast<void*>(filled16(la, prec)) : static_cast<void*>(filled<T>(la));
  void* B = half ? static_cast<void*>(filled16(lb, prec)) : static_cast<void*>(filled<T>(lb));
  T* C = filled<T>(long(batch) * m * n);
  void* ws = std::malloc(bytes);
  check(mw_gemm_batched_ex_ws(dt, prec, batch, m, n, k, A, B, C, ws, bytes, nullptr), "split-K");
  const auto value = [](long i) { return T(static_cast<int>(i % 7) - 3); };
  check_product(
      C, batch, m, n, k, [&](int b, int i, int l) { return value((long(b) * m + i) * k + l); },
      [&](int b, int l, int j) { return value((long(b) * k + l) * n + j); }, prec, 0, 0, 0);
  for (void* p : {A, B, static_cast<void*>(C), ws}) std::free(p);
}

// The 16-bit product (fp16 / bf16 A and B, float32 C) on operands `offset` elements past an
// exactly sized allocation, checked exactly (small integers: exact products and sums).
void gemm16_offset(mw_precision prec, int batch, int m, int n, int k, int off_a, int off_b,
                   int off_c) {
  const long la = long(batch) * m * k, lb = long(batch) * k * n, lc = long(batch) * m * n;
  uint16_t* a_alloc = filled16(la + off_a, prec);
  uint16_t* b_alloc = filled16(lb + off_b, prec);
  float* c_alloc = filled<float>(lc + off_c);
  check(mw_gemm_batched_ex(MW_FLOAT32, prec, batch, m, n, k, a_alloc + off_a, b_alloc + off_b,
                           c_alloc + off_c, nullptr),
        "gemm_tc 16-bit, offset operands");
  const float* C = c_alloc + off_c;
  const auto value = [](long i) { return static_cast<float>(static_cast<int>(i % 7) - 3); };
  check_product(
      C, batch, m, n, k,
      [&](int b, int i, int l) { return value(off_a + (long(b) * m + i) * k + l); },
      [&](int b, int l, int j) { return value(off_b + (long(b) * k + l) * n + j); }, prec, off_a,
      off_b, off_c);
  std::free(a_alloc);
  std::free(b_alloc);
  std::free(c_alloc);
}

// A sparse product whose CSR offsets end at INT_MAX: the `window` real nonzeros are entries
// [INT_MAX - window, INT_MAX) of col_idx / values, whose base pointers are formed (as integers)
// that many elements before the real arrays; only the window is ever read.  Checked exactly.
template <typename T>
void spmm_near_int_max(int rows, int cols, int n, int window, mw_dtype dt) {
  std::mt19937 rng(rows * 7 + n);
  const int32_t start = INT_MAX - window;
  std::vector<int32_t> row_ptr(rows + 1);
  for (int i = 0; i < rows; ++i) row_ptr[i] = start + int32_t(long(window) * i / rows);
  row_ptr[rows] = INT_MAX;
  int32_t* rp = filled<int32_t>(rows + 1);
  int32_t* ci = filled<int32_t>(window);
  T* values = filled<T>(window);
  for (int i = 0; i <= rows; ++i) rp[i] = row_ptr[i];
  for (int e = 0; e < window; ++e) ci[e] = int32_t(rng() % cols);
  T* B = filled<T>(long(cols) * n);
  T* C = filled<T>(long(rows) * n);
  const auto shifted = [start](const void* p, size_t size) {
    return reinterpret_cast<uintptr_t>(p) - uintptr_t(start) * size;
  };
  const auto* ci_base = reinterpret_cast<const int32_t*>(shifted(ci, sizeof(int32_t)));
  const auto* values_base = reinterpret_cast<const T*>(shifted(values, sizeof(T)));
  check(mw_spmm_batched(dt, 1, rows, cols, n, rp, ci_base, values_base, INT_MAX, B, C, nullptr),
        "spmm, offsets near INT_MAX");
  long wrong = 0;
  for (int i = 0; i < rows; ++i)
    for (int j = 0; j < n; ++j) {
      T ref = 0;
      for (int32_t e = row_ptr[i] - start; e < row_ptr[i + 1] - start; ++e)
        ref += values[e] * B[long(ci[e]) * n + j];
      wrong += C[long(i) * n + j] != ref;
    }
  if (wrong != 0) {
    std::printf("FAIL spmm near INT_MAX, rows %d n %d window %d: %ld wrong\n", rows, n, window,
                wrong);
    ++g_failures;
  }
  for (void* p : {(void*)rp, (void*)ci, (void*)values, (void*)B, (void*)C}) std::free(p);
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
  // The permuted-row path on an exactly sized row_order (batch x rows): reversed rows, and for a
  // corrupt CSR a corrupt order too (entries outside [0, rows), clamped by the kernel).  A valid
  // order must give C bitwise (each row is summed in CSR order whatever the order).
  int32_t* order = filled<int32_t>(long(batch) * rows);
  for (int b = 0; b < batch; ++b)
    for (int i = 0; i < rows; ++i)
      order[long(b) * rows + i] = corrupt && i % 3 == 0 ? (i % 2 ? -9 : rows + 9) : rows - 1 - i;
  T* C2 = filled<T>(long(batch) * rows * n);
  check(mw_spmm_batched_ex(dt, batch, rows, cols, n, rp, ci, values, nnz, order, MW_SPMM_DEFAULT, B,
                           C2, nullptr),
        "spmm, row order");
  if (!corrupt && std::memcmp(C, C2, sizeof(T) * size_t(batch) * rows * n) != 0) {
    std::printf("FAIL spmm row order, batch %d rows %d n %d: C differs from the identity order\n",
                batch, rows, n);
    ++g_failures;
  }
  for (void* p : {(void*)rp, (void*)ci, (void*)values, (void*)B, (void*)C, (void*)order, (void*)C2})
    std::free(p);
}

// ----------------------------------------------------------------------- structured sparsity
//
// The small-integer value of element i of a filled() / filled16() buffer.
float small_value(long i) { return static_cast<float>(static_cast<int>(i % 7) - 3); }

// The operand buffers of a tensor-core precision: float (tf32, tf32x3), double (fp64) or the
// 16-bit encodings (fp16, bf16), exactly n elements.
void* operands(size_t n, mw_precision prec) {
  if (prec == MW_PRECISION_FP16 || prec == MW_PRECISION_BF16) return filled16(n, prec);
  if (prec == MW_PRECISION_FP64) return filled<double>(n);
  return filled<float>(n);
}

// C[b] = A_bsr[b] · B[b] (mw_bsr_batched, 16 x 8 blocks) on exactly sized arrays: a random block
// structure (each block row keeps each block column with probability `density`), values and B of
// small integers; C checked exactly against the product of the dense A the blocks make (every
// product and sum is an integer below 2^24).  `corrupt`: row pointers outside [0, nblocks] and
// block columns outside [0, ceil(cols / 8)) -- wrong numbers, never an access outside the arrays.
void bsr(mw_precision prec, int batch, int rows, int cols, int n, double density, bool corrupt) {
  std::mt19937 rng(rows * 13 + cols * 7 + n);
  const int R = (rows + 15) / 16, CB = (cols + 7) / 8;
  // row pointers batch x (R + 1), chained: position b starts where position b - 1 ends
  std::vector<int32_t> rp_full, col_idx;
  for (int b = 0; b < batch; ++b) {
    rp_full.push_back(static_cast<int32_t>(col_idx.size()));
    for (int i = 0; i < R; ++i) {
      for (int j = 0; j < CB; ++j)
        if (rng() % 1000 < density * 1000) col_idx.push_back(j);
      rp_full.push_back(static_cast<int32_t>(col_idx.size()));
    }
  }
  const int nblocks = static_cast<int>(col_idx.size());
  const bool wide = prec == MW_PRECISION_FP64;
  const size_t esize = wide ? 8 : (prec == MW_PRECISION_FP16 || prec == MW_PRECISION_BF16) ? 2 : 4;
  int32_t* rp = filled<int32_t>(rp_full.size());
  int32_t* ci = filled<int32_t>(nblocks);
  for (size_t i = 0; i < rp_full.size(); ++i) rp[i] = rp_full[i];
  for (int i = 0; i < nblocks; ++i) ci[i] = col_idx[i];
  // values: zero outside the matrix (the format's rule), small integers inside
  void* values = operands(size_t(nblocks) * 128, prec);
  std::vector<int> block_row(nblocks);
  for (int b = 0; b < batch; ++b)
    for (int i = 0; i < R; ++i)
      for (int e = rp_full[size_t(b) * (R + 1) + i]; e < rp_full[size_t(b) * (R + 1) + i + 1]; ++e)
        block_row[e] = i;
  for (int e = 0; e < nblocks; ++e)
    for (int r = 0; r < 16; ++r)
      for (int c = 0; c < 8; ++c)
        if (16 * block_row[e] + r >= rows || 8 * col_idx[e] + c >= cols)
          std::memset(static_cast<char*>(values) + (size_t(e) * 128 + r * 8 + c) * esize, 0, esize);
  if (corrupt) {
    for (size_t i = 1; i < rp_full.size(); i += 2) rp[i] = (i % 4 == 1) ? -100 : nblocks + 100;
    for (int i = 0; i < nblocks; i += 2) ci[i] = (i % 4) ? -3 : CB + 3;
  }
  void* B = operands(size_t(batch) * cols * n, prec);
  const size_t lc = size_t(batch) * rows * n;
  void* C = wide ? static_cast<void*>(filled<double>(lc)) : static_cast<void*>(filled<float>(lc));
  check(mw_bsr_batched(wide ? MW_FLOAT64 : MW_FLOAT32, prec, batch, rows, cols, n, 16, 8, rp, ci,
                       values, nblocks, B, C, nullptr),
        "bsr");
  if (!corrupt) {  // exact: the dense A of the blocks times B
    long wrong = 0;
    for (int b = 0; b < batch; ++b)
      for (int i = 0; i < rows; ++i)
        for (int j = 0; j < n; ++j) {
          double want = 0;
          const int br = i / 16;
          for (int e = rp_full[size_t(b) * (R + 1) + br]; e < rp_full[size_t(b) * (R + 1) + br + 1];
               ++e)
            for (int c = 0; c < 8; ++c) {
              const int col = 8 * col_idx[e] + c;
              if (col >= cols) continue;
              want += double(small_value(long(e) * 128 + (i % 16) * 8 + c)) *
                      small_value((long(b) * cols + col) * n + j);
            }
          const size_t at = (size_t(b) * rows + i) * n + j;
          const double got = wide ? static_cast<double*>(C)[at] : static_cast<float*>(C)[at];
          wrong += got != want;
        }
    if (wrong) {
      std::printf("FAIL bsr precision %d, batch %d rows %d cols %d n %d: %ld wrong\n", int(prec),
                  batch, rows, cols, n, wrong);
      ++g_failures;
    }
  }
  for (void* p : {(void*)rp, (void*)ci, values, B, C}) std::free(p);
}

// C[b] = A_2:4[b] · B[b] (mw_sp24_batched) on exactly sized values, metadata (the size
// mw_sp24_meta_words gives), B and C: every metadata nibble 0x4 (the values at positions 0 and 1
// of a chunk of 4, 16-bit; the first of a pair, tf32), a pattern whose dense A is known, values
// of small integers (zero past the matrix's columns), C checked exactly.
void sp24(mw_precision prec, int batch, int rows, int cols, int n) {
  const bool half = prec == MW_PRECISION_FP16 || prec == MW_PRECISION_BF16;
  const int step = half ? 64 : 32, group = half ? 4 : 2, kept = half ? 2 : 1;
  const int kp = (cols + step - 1) / step * step, kc = kp / 2;
  const int64_t words = mw_sp24_meta_words(prec, batch, rows, cols);
  if (words < 0) {
    std::printf("FAIL sp24 meta words: %s\n", mw_last_error_message());
    ++g_failures;
    return;
  }
  uint32_t* meta = filled<uint32_t>(size_t(words));
  for (int64_t i = 0; i < words; ++i) meta[i] = 0x44444444u;
  const size_t lv = size_t(batch) * rows * kc;
  void* values = operands(lv, prec);
  const size_t esize = half ? 2 : 4;
  // stored value v of row r sits at dense column (v / kept) * group + v % kept
  for (size_t e = 0; e < lv; ++e) {
    const int v = static_cast<int>(e % kc);
    if ((v / kept) * group + v % kept >= cols)
      std::memset(static_cast<char*>(values) + e * esize, 0, esize);
  }
  void* B = operands(size_t(batch) * cols * n, prec);
  float* C = filled<float>(size_t(batch) * rows * n);
  check(mw_sp24_batched(MW_FLOAT32, prec, batch, rows, cols, n, values, meta, B, C, nullptr),
        "sp24");
  long wrong = 0;
  for (int b = 0; b < batch; ++b)
    for (int i = 0; i < rows; ++i)
      for (int j = 0; j < n; ++j) {
        double want = 0;
        for (int v = 0; v < kc; ++v) {
          const int col = (v / kept) * group + v % kept;
          if (col >= cols) continue;
          want += double(small_value((long(b) * rows + i) * kc + v)) *
                  small_value((long(b) * cols + col) * n + j);
        }
        wrong += C[(size_t(b) * rows + i) * n + j] != want;
      }
  if (wrong) {
    std::printf("FAIL sp24 precision %d, batch %d rows %d cols %d n %d: %ld wrong\n", int(prec),
                batch, rows, cols, n, wrong);
    ++g_failures;
  }
  for (void* p : {(void*)meta, values, B, (void*)C}) std::free(p);
}

// ----------------------------------------------------------------------------- the fused layer
//
// mw_conv2d_fused (winograd_fused.cuh) with x, U, y (and bias) malloc'd at exactly their sizes,
// no slack: a window read past the input's edge or halo, a U copy past a row end (C off the
// chunk), past the last output channel (K off the block) or past the array, a y store of an
// edge tile or past the last channel (NHWC) is reported by ASan.  The result is checked
// against the three-phase entries of the same build (the _ex transforms, mw_gemm_batched_ex
// without a workspace: no split-K, and the output transform), which compute the same floats:
// the fused kernel runs transform.cuh's tile code and the products' instruction per k step in
// the same k order, so y must be bitwise the three-phase y (with the output ReLU applied here).
// y is pre-filled with NaN, so an element the kernel does not write fails the comparison.

// Random values in [-1, 1) (periodic data could hide a wrong window or position).
template <typename T>
T* random_filled(size_t n, unsigned seed) {
  T* p = static_cast<T*>(std::malloc(n ? n * sizeof(T) : 1));
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> dist(-1.0, 1.0);
  for (size_t i = 0; i < n; ++i) p[i] = T(dist(rng));
  return p;
}

// ------------------------------------------------------------------- per-side, large padding
//
// A layer with padding (lo, hi) per axis, never materialised, against the same layer without
// padding on xp = x with the zeros written out (in + lo + hi per axis): the same tile grid and
// the same window values, so V (every ReLU mode), y, and the adjoints dM and dx (dx = xp's
// gradient cropped to x) must be bitwise equal.  Every array is exactly sized (ASan).
template <typename T>
void padded_layer(int nd, int m, int r, int N, int C, int K, std::vector<long> in,
                  std::vector<long> lo, std::vector<long> hi, bool generic) {
  constexpr mw_dtype dt = std::is_same_v<T, double> ? MW_FLOAT64 : MW_FLOAT32;
  long I[3] = {1, 1, 1}, Pd[3] = {1, 1, 1}, L[3] = {0, 0, 0};
  std::vector<long> padded(nd), zero(nd, 0);
  for (int i = 0; i < nd; ++i) {
    padded[i] = in[i] + lo[i] + hi[i];
    I[3 - nd + i] = in[i];
    Pd[3 - nd + i] = padded[i];
    L[3 - nd + i] = lo[i];
  }
  const mw_conv_desc d = make_desc(nd, m, r, N, C, K, in, lo, hi);
  // the padded copy: x with its zeros written out, no padding
  const mw_conv_desc dp = make_desc(nd, m, r, N, C, K, padded, zero, zero);
  mw_conv_geometry g, gp;
  check(mw_conv_get_geometry(&d, dt, &g), "padded layer: geometry");
  check(mw_conv_get_geometry(&dp, dt, &gp), "padded layer: geometry of the padded copy");
  long y_len = long(N) * K, taps = 1;
  bool same = g.num_tiles == gp.num_tiles;
  for (int i = 0; i < nd; ++i) {
    same =
        same && g.out_size[i] == gp.out_size[i] && g.out_size[i] == in[i] + lo[i] + hi[i] - r + 1;
    y_len *= g.out_size[i];
    taps *= r;
  }
  if (!same) {
    std::printf("FAIL padded layer F(%d, %d) %dD: geometry differs from the padded copy's\n", m, r,
                nd);
    ++g_failures;
    return;
  }
  const long x_len = long(N) * C * I[0] * I[1] * I[2];
  const long xp_len = long(N) * C * Pd[0] * Pd[1] * Pd[2];
  const long v_len = g.positions * C * g.num_tiles, m_len = g.positions * K * g.num_tiles;
  const unsigned seed = unsigned(m * 7919 + r * 104729 + nd * 31 + in[0] * 13 + lo[0] * 5 + hi[0]);
  T* x = random_filled<T>(x_len, seed);
  T* xp = static_cast<T*>(std::calloc(xp_len, sizeof(T)));
  const auto x_at = [&](long nc, long z, long h, long w) {
    return ((nc * I[0] + z) * I[1] + h) * I[2] + w;
  };
  const auto xp_at = [&](long nc, long z, long h, long w) {
    return ((nc * Pd[0] + z + L[0]) * Pd[1] + h + L[1]) * Pd[2] + w + L[2];
  };
  for (long nc = 0; nc < long(N) * C; ++nc)
    for (long z = 0; z < I[0]; ++z)
      for (long h = 0; h < I[1]; ++h)
        for (long w = 0; w < I[2]; ++w) xp[xp_at(nc, z, h, w)] = x[x_at(nc, z, h, w)];
  const int a = m + r - 1;
  T* mats = random_filled<T>(m * a + a * r + a * a, seed + 1);
  const T* fwd_mats = generic ? mats : nullptr;
  T* w = random_filled<T>(long(K) * C * taps, seed + 2);
  T* b = random_filled<T>(K, seed + 3);
  T* U = static_cast<T*>(std::malloc(g.positions * K * C * sizeof(T)));
  T* V = static_cast<T*>(std::malloc(v_len * sizeof(T)));
  T* Vp = static_cast<T*>(std::malloc(v_len * sizeof(T)));
  T* M = static_cast<T*>(std::malloc(m_len * sizeof(T)));
  T* Mp = static_cast<T*>(std::malloc(m_len * sizeof(T)));
  T* y = static_cast<T*>(std::malloc(y_len * sizeof(T)));
  T* yp = static_cast<T*>(std::malloc(y_len * sizeof(T)));
  T* dx = static_cast<T*>(std::malloc(x_len * sizeof(T)));
  T* dxp = static_cast<T*>(std::malloc(xp_len * sizeof(T)));
  long wrong = 0;
  const char* what = "";
  const auto compare = [&](const T* got, const T* want, long n, const char* name) {
    long bad = 0;
    for (long i = 0; i < n; ++i) bad += !(got[i] == want[i]);  // NaN (unwritten) fails too
    if (bad != 0 && wrong == 0) what = name;
    wrong += bad;
  };
  for (int relu = 0; relu < 3; ++relu) {
    for (long i = 0; i < v_len; ++i) V[i] = Vp[i] = std::numeric_limits<T>::quiet_NaN();
    check(mw_input_transform(&d, dt, x, V, mw_relu(relu), fwd_mats, nullptr),
          "padded layer: input transform");
    check(mw_input_transform(&dp, dt, xp, Vp, mw_relu(relu), fwd_mats, nullptr),
          "padded layer: input transform of the padded copy");
    compare(V, Vp, v_len, "V");
  }
  check(mw_filter_transform(&d, dt, w, U, fwd_mats, nullptr), "padded layer: filter transform");
  check(mw_gemm_batched(dt, g.positions, K, g.num_tiles, C, U, V, M, nullptr),
        "padded layer: gemm");
  for (long i = 0; i < y_len; ++i) y[i] = yp[i] = std::numeric_limits<T>::quiet_NaN();
  check(mw_output_transform(&d, dt, M, b, y, fwd_mats, nullptr), "padded layer: output transform");
  check(mw_output_transform(&dp, dt, M, b, yp, fwd_mats, nullptr),
        "padded layer: output transform of the padded copy");
  compare(y, yp, y_len, "y");
  // The adjoints: dy = y -> dM, dV = V -> dx (the padded copy's dx cropped).
  for (long i = 0; i < m_len; ++i) M[i] = Mp[i] = std::numeric_limits<T>::quiet_NaN();
  check(mw_output_transform_adjoint(&d, dt, y, M, mats, nullptr),
        "padded layer: output transform adjoint");
  check(mw_output_transform_adjoint(&dp, dt, y, Mp, mats, nullptr),
        "padded layer: output transform adjoint of the padded copy");
  compare(M, Mp, m_len, "dM");
  for (long i = 0; i < x_len; ++i) dx[i] = std::numeric_limits<T>::quiet_NaN();
  check(mw_input_transform_adjoint(&d, dt, V, dx, mats, nullptr),
        "padded layer: input transform adjoint");
  check(mw_input_transform_adjoint(&dp, dt, V, dxp, mats, nullptr),
        "padded layer: input transform adjoint of the padded copy");
  for (long nc = 0; nc < long(N) * C; ++nc)
    for (long z = 0; z < I[0]; ++z)
      for (long h = 0; h < I[1]; ++h)
        for (long v = 0; v < I[2]; ++v) {
          const T got = dx[x_at(nc, z, h, v)], want = dxp[xp_at(nc, z, h, v)];
          if (!(got == want)) {
            if (wrong == 0) what = "dx";
            ++wrong;
          }
        }
  if (wrong != 0) {
    std::printf(
        "FAIL padded layer F(%d, %d) %dD %s, in (%ld, %ld, %ld) lo (%ld, %ld, %ld) hi "
        "(%ld, %ld, %ld): %ld elements differ from the zero-padded copy's, first in %s\n",
        m, r, nd, generic ? "generic" : "specialised", I[0], I[1], I[2], L[0], L[1], L[2],
        nd == 3 ? hi[0] : 0L, hi[nd - 2], hi[nd - 1], wrong, what);
    ++g_failures;
  }
  for (void* p : {(void*)x, (void*)xp, (void*)mats, (void*)w, (void*)b, (void*)U, (void*)V,
                  (void*)Vp, (void*)M, (void*)Mp, (void*)y, (void*)yp, (void*)dx, (void*)dxp})
    std::free(p);
}

// Per-side paddings 0 .. r + 1 (past r - 1, past a whole tile), asymmetric on every axis, 2D
// and 3D, specialised and generic kernels, float and double.
void padded_cases() {
  const int tiles2d[][2] = {{2, 3}, {4, 3}, {6, 3}, {2, 5}};
  for (const auto& t : tiles2d) {
    const int r = t[1];
    for (int lo = 0; lo <= r + 1; ++lo)
      for (int hi = 0; hi <= r + 1; ++hi) {
        const long h = 1 + (lo + 2 * hi) % 5, v = 2 + (2 * lo + hi) % 6;
        if (h + lo + hi - r + 1 < 1 || v + hi + lo - r + 1 < 1) continue;
        padded_layer<float>(2, t[0], r, 2, 3, 2, {h, v}, {long(lo), long(hi)}, {long(hi), long(lo)},
                            false);
        padded_layer<double>(2, t[0], r, 1, 2, 3, {v, h}, {long(hi), 0L}, {long(lo), long(r + 1)},
                             true);
      }
  }
  const int tiles3d[][2] = {{2, 3}, {4, 3}};
  for (const auto& t : tiles3d)
    for (int lo = 0; lo <= 4; ++lo) {
      const int hi = 4 - lo;
      padded_layer<float>(3, t[0], 3, 1, 2, 2, {3, 2, 4}, {long(lo), long(hi), 1L},
                          {long(hi), 1L, long(lo)}, false);
      padded_layer<double>(3, t[0], 3, 1, 1, 2, {2, 4, 3}, {1L, long(lo), long(hi)},
                           {long(lo), long(hi), 4L}, true);
    }
  // The ASan layer of the three-phase entries with per-side padding (the adjoints included).
  layer<float>(2, 4, 3, 2, 3, 5, {5, 7}, {0, 4}, false, MW_FLOAT32, {5, 1});
  layer<double>(3, 2, 3, 1, 2, 2, {3, 4, 2}, {4, 0, 3}, true, MW_FLOAT64, {0, 3, 4});
}

const char* precision_name(mw_precision p) {
  static const char* const kNames[] = {"fp32", "tf32", "tf32x3", "bf16", "fp16", "fp64"};
  return kNames[int(p)];
}

// One fused layer.  u_offset: U starts that many elements past its (exactly sized) allocation,
// which moves it off 16 bytes and so onto the element-copy path even when C * sizeof(U) % 16 == 0.
template <typename T>
void fused(int m, mw_precision prec, mw_layout layout, int N, int C, int K, int H, int W, int pad,
           int relu, bool relu_out, bool with_bias, int u_offset = 0, const int* pads = nullptr) {
  constexpr mw_dtype dt = std::is_same_v<T, double> ? MW_FLOAT64 : MW_FLOAT32;
  const bool half = prec == MW_PRECISION_FP16 || prec == MW_PRECISION_BF16;
  const mw_dtype storage = half ? (prec == MW_PRECISION_FP16 ? MW_FLOAT16 : MW_BFLOAT16) : dt;
  const size_t u_elem = half ? 2 : sizeof(T);
  mw_conv_desc d{};
  d.ndim = 2;
  d.m = m;
  d.r = 3;
  d.batch = N;
  d.in_channels = C;
  d.out_channels = K;
  d.in_size[0] = H;
  d.in_size[1] = W;
  // pad: symmetric on both axes, unless pads (top, bottom, left, right) is given
  d.padding[0] = d.padding[1] = d.padding_end[0] = d.padding_end[1] = pad;
  if (pads != nullptr) {
    d.padding[0] = pads[0];
    d.padding_end[0] = pads[1];
    d.padding[1] = pads[2];
    d.padding_end[1] = pads[3];
  }
  mw_conv_geometry g;
  check(mw_conv_get_geometry(&d, dt, &g), "fused geometry");
  const int Ho = int(g.out_size[0]), Wo = int(g.out_size[1]);
  const long x_len = long(N) * C * H * W, y_len = long(N) * K * Ho * Wo;
  const long u_len = g.positions * K * C, v_len = g.positions * C * g.num_tiles;
  const unsigned seed = unsigned(m * 1000003 + int(prec) * 10007 + C * 101 + K * 7 + H + W);
  T* x = random_filled<T>(x_len, seed);  // NCHW: the three-phase input
  T* w = random_filled<T>(long(K) * C * 9, seed + 1);
  T* b = with_bias ? random_filled<T>(K, seed + 2) : nullptr;
  // NHWC: the same values channels-last, in their own exactly sized array
  T* x_in = x;
  if (layout == MW_LAYOUT_NHWC) {
    x_in = static_cast<T*>(std::malloc(x_len * sizeof(T)));
    for (int n = 0; n < N; ++n)
      for (int c = 0; c < C; ++c)
        for (int h = 0; h < H; ++h)
          for (int v = 0; v < W; ++v)
            x_in[((long(n) * H + h) * W + v) * C + c] = x[((long(n) * C + c) * H + h) * W + v];
  }
  unsigned char* u_alloc = static_cast<unsigned char*>(std::malloc((u_len + u_offset) * u_elem));
  void* U = u_alloc + u_offset * u_elem;
  check(mw_filter_transform_ex(&d, dt, storage, w, U, nullptr, nullptr), "fused: filter transform");
  T* y = static_cast<T*>(std::malloc(y_len * sizeof(T)));
  for (long i = 0; i < y_len; ++i) y[i] = std::numeric_limits<T>::quiet_NaN();
  const mw_status st =
      mw_conv2d_fused(&d, dt, prec, layout, mw_relu(relu), relu_out, x_in, U, b, y, nullptr);
  check(st, "fused layer");

  // The three-phase reference: V (16-bit in the 16-bit modes), M in T, y_ref NCHW.
  void* V = std::malloc(v_len * u_elem);
  T* M = static_cast<T*>(std::malloc(g.positions * K * g.num_tiles * sizeof(T)));
  T* y_ref = static_cast<T*>(std::malloc(y_len * sizeof(T)));
  check(mw_input_transform_ex(&d, dt, storage, x, V, mw_relu(relu), nullptr, nullptr),
        "fused reference: input transform");
  check(mw_gemm_batched_ex(dt, prec, g.positions, K, g.num_tiles, C, U, V, M, nullptr),
        "fused reference: product");
  check(mw_output_transform(&d, dt, M, b, y_ref, nullptr, nullptr),
        "fused reference: output transform");
  long wrong = 0, first = -1;
  for (int n = 0; n < N && st == MW_STATUS_SUCCESS; ++n)
    for (int k = 0; k < K; ++k)
      for (int h = 0; h < Ho; ++h)
        for (int v = 0; v < Wo; ++v) {
          const long ref_at = ((long(n) * K + k) * Ho + h) * Wo + v;
          const long at = layout == MW_LAYOUT_NHWC ? ((long(n) * Ho + h) * Wo + v) * K + k : ref_at;
          T want = y_ref[ref_at];
          if (relu_out) want = want > T(0) ? want : T(0);
          if (!(y[at] == want)) {  // NaN (unwritten) fails too
            if (first < 0) first = at;
            ++wrong;
          }
        }
  if (wrong != 0) {
    std::printf(
        "FAIL fused F(%d, 3) %s %s N %d C %d K %d %dx%d padding (%lld, %lld, %lld, %lld) relu %d "
        "relu_out %d bias %d U offset %d: %ld of %ld wrong, first at %ld\n",
        m, precision_name(prec), layout == MW_LAYOUT_NHWC ? "NHWC" : "NCHW", N, C, K, H, W,
        (long long)d.padding[0], (long long)d.padding_end[0], (long long)d.padding[1],
        (long long)d.padding_end[1], relu, int(relu_out), int(with_bias), u_offset, wrong, y_len,
        first);
    ++g_failures;
  }
  for (void* p :
       {(void*)x, (void*)w, (void*)b, (void*)u_alloc, (void*)y, V, (void*)M, (void*)y_ref})
    std::free(p);
  if (x_in != x) std::free(x_in);
}

// Every fused precision on both tiles and layouts, with C on U's 16-byte path (C * sizeof(U) a
// multiple of 16, U from malloc: 16-byte aligned) and on the element path (C off the vector, or
// U one element off), C off the chunk (BC 8 / 16 / 4), K off the block (BK 32 / 16 / 8) and past
// one, P past one block with a partial last (BP 32 / 16 / 8), H, W off the tile m.
void fused_cases() {
  const mw_precision precs[] = {MW_PRECISION_FP32, MW_PRECISION_TF32, MW_PRECISION_TF32X3,
                                MW_PRECISION_FP16, MW_PRECISION_BF16, MW_PRECISION_FP64};
  int i = 0;
  for (int m : {2, 4})
    for (mw_precision prec : precs)
      for (mw_layout layout : {MW_LAYOUT_NCHW, MW_LAYOUT_NHWC}) {
        const bool f64 = prec == MW_PRECISION_FP64;
        const bool half = prec == MW_PRECISION_FP16 || prec == MW_PRECISION_BF16;
        const int vec = half ? 8 : f64 ? 2 : 4;  // U elements per 16 bytes
        // C on the 16-byte path (a whole number of vectors, not of chunks) and off it
        const int c_vec = half ? 24 : f64 ? 6 : 12, c_elem = half ? 21 : f64 ? 5 : 13;
        const int K = f64 ? 19 : 37;
        const int relu = i % 3, pad = i % 3;
        const bool relu_out = i % 2 == 1, bias = i % 4 != 3;
        ++i;
        if (c_vec % vec != 0 || c_elem % vec == 0)
          std::abort();  // the cases must mean what they say
        auto run = [&](auto zero, int C, int u_offset) {
          fused<decltype(zero)>(m, prec, layout, 2, C, K, 9, 11, pad, relu, relu_out, bias,
                                u_offset);
        };
        if (f64) {
          run(0.0, c_vec, 0);
          run(0.0, c_elem, 0);
          run(0.0, c_vec, 1);
        } else {
          run(0.0f, c_vec, 0);
          run(0.0f, c_elem, 0);
          run(0.0f, c_vec, 1);
        }
      }
  // Per-side padding (top, bottom, left, right): asymmetric, past r - 1 and past a whole tile on
  // each side, zero on one side; and a layer whose x lies inside one tile of padding.
  static const int kPads[][4] = {{0, 4, 3, 1}, {5, 0, 0, 6}, {4, 4, 4, 4}, {1, 2, 2, 0}};
  for (int m : {2, 4})
    for (mw_layout layout : {MW_LAYOUT_NCHW, MW_LAYOUT_NHWC})
      for (const auto& pads : kPads) {
        fused<float>(m, MW_PRECISION_FP32, layout, 2, 5, 7, 5, 7, 0, 1, false, true, 0, pads);
        fused<float>(m, MW_PRECISION_FP16, layout, 1, 8, 9, 4, 3, 0, 2, true, false, 0, pads);
        fused<double>(m, MW_PRECISION_FP64, layout, 2, 3, 5, 6, 5, 0, 0, true, true, 0, pads);
      }
  // One channel, one output channel, one tile: everything below a block.
  for (int m : {2, 4}) {
    fused<float>(m, MW_PRECISION_TF32X3, MW_LAYOUT_NHWC, 1, 1, 1, 3, 3, 0, 0, false, true);
    fused<float>(m, MW_PRECISION_FP16, MW_LAYOUT_NCHW, 1, 1, 1, 3, 4, 1, 1, true, true);
    fused<double>(m, MW_PRECISION_FP64, MW_LAYOUT_NHWC, 1, 1, 1, 4, 3, 2, 2, false, false);
  }
}
}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "overread") == 0) {
    const int m = 17, n = 33, k = 9;
    float* A = filled<float>(m * k - 1);  // one element short
    float* B = filled<float>(k * n);
    float* C = filled<float>(m * n);
    const mw_status st = mw_gemm_batched(MW_FLOAT32, 1, m, n, k, A, B, C, nullptr);
    std::printf("overread product returned %d without a sanitizer report\n", int(st));
    return 3;
  }
  if (argc > 1 && std::strcmp(argv[1], "fused-overread") == 0) {
    // The fused layer on an x one element short: the last window's read must be reported.
    mw_conv_desc d{};
    d.ndim = 2;
    d.m = 4;
    d.r = 3;
    d.batch = 1;
    d.in_channels = 3;
    d.out_channels = 5;
    d.in_size[0] = d.in_size[1] = 9;
    d.padding[0] = d.padding[1] = d.padding_end[0] = d.padding_end[1] = 1;
    float* x = filled<float>(3 * 9 * 9 - 1);  // one element short
    float* U = filled<float>(36 * 5 * 3);
    float* y = filled<float>(5 * 9 * 9);
    const mw_status st = mw_conv2d_fused(&d, MW_FLOAT32, MW_PRECISION_FP32, MW_LAYOUT_NCHW,
                                         MW_RELU_NONE, 0, x, U, nullptr, y, nullptr);
    std::printf("overread fused layer returned %d without a sanitizer report\n", int(st));
    return 3;
  }
  if (argc > 1 && std::strcmp(argv[1], "fused") == 0) {  // the fused cases alone
    fused_cases();
    std::printf("fused layer under ASan: %d failures\n", g_failures);
    return g_failures != 0;
  }
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
  // The float 128x128x8 tile (m, n >= 128, 16-byte aligned rows: n % 4 == 0), edges in m, n, k.
  gemm<float>(2, 129, 132, 20, MW_FLOAT32);
  gemm<float>(2, 255, 252, 36, MW_FLOAT32);
  gemm<float>(1, 128, 128, 8, MW_FLOAT32);
  gemm_offset<float>(2, 129, 132, 20, 0, 0, 1, MW_FLOAT32);
  for (int rows : {1, 15, 16, 17, 33, 70})
    for (int n : {1, 31, 32, 33, 64, 127, 128, 129, 200})
      for (bool corrupt : {false, true}) {
        spmm<float>(3, rows, 7, n, 0.3, MW_FLOAT32, corrupt);
        spmm<double>(3, rows, 7, n, 0.3, MW_FLOAT64, corrupt);
      }
  spmm<float>(2, 40, 600, 130, 0.9, MW_FLOAT32, false);  // more than one nonzero chunk per block
  spmm<double>(2, 40, 600, 70, 0.9, MW_FLOAT64, true);
  // Misaligned operands (4, 8, 12 bytes for float, 8 for double) on shapes that take the
  // vector path when aligned (k, n multiples of 4), every tile configuration.
  for (int m : {17, 40, 65})
    for (int n : {4, 64, 68})
      for (int k : {4, 20}) {
        for (int off : {1, 2, 3}) {
          gemm_offset<float>(2, m, n, k, off, 0, 0, MW_FLOAT32);
          gemm_offset<float>(2, m, n, k, 0, off, off, MW_FLOAT32);
        }
        gemm_offset<double>(2, m, n, k, 1, 0, 0, MW_FLOAT64);
        gemm_offset<double>(2, m, n, k, 0, 1, 1, MW_FLOAT64);
      }
  // The tensor-core products (tf32, tf32x3) over the edges of the 64x64x16 block tile and the
  // 16x16x8 MMA tile, aligned (16-byte cp.async where k, n % 4 == 0) and offset by one float
  // (4-byte copies), checked exactly.
  for (mw_precision prec : {MW_PRECISION_TF32, MW_PRECISION_TF32X3})
    for (int m : {1, 16, 17, 65})
      for (int n : {1, 16, 33, 68})
        for (int k : {1, 8, 17, 32}) {
          gemm_offset<float>(2, m, n, k, 0, 0, 0, MW_FLOAT32, prec);
          gemm_offset<float>(1, m, n, k, 1, 1, 1, MW_FLOAT32, prec);
        }
  // The float64 tensor-core product (DMMA, MW_PRECISION_FP64 on the emulator) over the edges of
  // the 64x64x16 block tile and the 8x8x4 MMA tile, aligned (16-byte copies where k, n even) and
  // offset by one double (8-byte copies).
  for (int m : {1, 9, 65})
    for (int n : {1, 8, 37, 68})
      for (int k : {1, 4, 17, 32}) {
        gemm_offset<double>(2, m, n, k, 0, 0, 0, MW_FLOAT64, MW_PRECISION_FP64);
        gemm_offset<double>(1, m, n, k, 1, 1, 1, MW_FLOAT64, MW_PRECISION_FP64);
      }
  // Split-K: few blocks (K = 20, P = 37, batch 2) and a long k, k off the slice multiples.
  for (mw_precision prec :
       {MW_PRECISION_TF32, MW_PRECISION_TF32X3, MW_PRECISION_FP16, MW_PRECISION_BF16})
    gemm_split<float>(prec, 2, 20, 37, 403, MW_FLOAT32);
  gemm_split<double>(MW_PRECISION_FP64, 2, 20, 37, 403, MW_FLOAT64);
  // The 16-bit products over the edges of the 64x64x32 block tile and the 16x16x16 MMA tile,
  // aligned (16-byte cp.async where k, n % 8 == 0) and offset by one element (plain loads).
  for (mw_precision prec : {MW_PRECISION_FP16, MW_PRECISION_BF16})
    for (int m : {1, 17, 65})
      for (int n : {1, 16, 37, 72})
        for (int k : {1, 8, 33, 96}) {
          gemm16_offset(prec, 2, m, n, k, 0, 0, 0);
          gemm16_offset(prec, 1, m, n, k, 1, 1, 1);
        }
  // CSR offsets ending at INT_MAX, windows that are not multiples of a nonzero chunk; narrow and
  // wide configurations.
  for (int n : {40, 200}) {
    spmm_near_int_max<float>(40, 9, n, 700, MW_FLOAT32);
    spmm_near_int_max<double>(40, 9, n, 700, MW_FLOAT64);
    spmm_near_int_max<float>(3, 5, n, 1300, MW_FLOAT32);
  }
  // Structured sparsity: the block-sparse product over the edges of the 16 x 8 blocks and the
  // 64-column tile, empty and full block rows, corrupt structures; the 2:4 product over the
  // edges of its 64 x 64 tile and k steps.
  for (mw_precision prec : {MW_PRECISION_TF32, MW_PRECISION_TF32X3, MW_PRECISION_FP16,
                            MW_PRECISION_BF16, MW_PRECISION_FP64})
    for (int rows : {1, 16, 37})
      for (int n : {1, 70})
        for (bool corrupt : {false, true}) bsr(prec, 2, rows, 21, n, 0.5, corrupt);
  for (mw_precision prec :
       {MW_PRECISION_TF32, MW_PRECISION_TF32X3, MW_PRECISION_FP16, MW_PRECISION_BF16})
    for (int rows : {17, 65})
      for (int cols : {3, 70})
        for (int n : {1, 72}) sp24(prec, 2, rows, cols, n);
  padded_cases();
  fused_cases();
  std::printf("kernels under ASan: %d failures\n", g_failures);
  return g_failures != 0;
}
