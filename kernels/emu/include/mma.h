// The emulator's <mma.h>: the WMMA API (nvcuda::wmma) for kernels compiled with g++.
//
// With kernels/emu/include on the include path, `#include <mma.h>` finds this file under g++ and
// CUDA's header under nvcc. It provides the subset the CUDA programming guide defines for sm_80
// and sm_90 with floating-point operands, with CUDA's names, types and per-lane element counts:
//
//   shape     matrix_a / matrix_b                   accumulator        elements per lane (a, b, c)
//   m16n16k8  precision::tf32 (stored as float)     float              4, 4, 8
//   m16n16k16 __half                                float or __half    16, 16, 8
//   m16n16k16 __nv_bfloat16                         float              8, 8, 8
//   m8n8k4    double                                double             1, 1, 2
//
// fragment<Use, m, n, k, T, Layout>, fill_fragment, load_matrix_sync, store_matrix_sync,
// mma_sync (all row_major/col_major combinations; for __half any mix of __half and float
// accumulators), fragment::num_elements, x[], element_type, storage_element_type;
// __float_to_tf32 comes from mw_emu_tf32.h.
//
// The element-to-lane mapping of a fragment is unspecified in CUDA. Here it is a table per
// fragment type: slot s = lane * num_elements + i holds element map[s] mod (rows * cols) of the
// tile, row-major; __half matrix_a / matrix_b fragments hold every element twice (16 per lane,
// 512 slots for 256 elements), and mma_sync reads the copy whose map value is below 256. The
// default table is the identity; with the fragment permutation on (mw_emu_set_fragment_permutation,
// MW_EMU_WMMA_PERMUTE) it is a permutation seeded by the setting and the fragment type, the same
// for every block and warp of a launch. Element-wise code on all x[i] is right either way; a
// kernel that assumes where an element lives gives wrong answers, as it may on a GPU.
//
// load_matrix_sync, store_matrix_sync and mma_sync are warp collectives (a rendezvous of the
// warp, cuda_emu.cpp): every lane of a full warp must reach the same call (same line) with the
// same pointer, ldm and layout, or the launch fails with file:line, warp, block and thread. The
// pointer must be 256-bit (32-byte) aligned and ldm a multiple of 16 bytes (8 elements of a
// 16-bit type, 4 of float, 2 of double), as CUDA requires: cudaErrorMisalignedAddress otherwise.
// fill_fragment is element-wise per thread, as in CUDA.
//
// Numerics of mma_sync: tf32 operands use only their top 19 bits (a float not converted with
// __float_to_tf32 is truncated, as the tensor core does: mw::emu::tf32_truncate); products of
// TF32, bfloat16 and binary16 values are exact; each element of D = A B + C is the exact products
// and C summed in double and rounded once (to float, or to __half for a __half D: one rounding,
// nearest even), a reference rather than the hardware's bits (mw_emu_tf32.h). Double: fused
// multiply-adds in order k. Not provided: integer and sub-byte fragments, m32n8k16 / m8n32k16.
#pragma once

#if defined(__CUDACC__)
#error "kernels/emu/include/mma.h is the emulator's; nvcc must use the CUDA toolkit's <mma.h>"
#endif

#include <cmath>
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <source_location>
#include <type_traits>

#include "../cuda_emu.h"
#include "cuda_bf16.h"
#include "cuda_fp16.h"
#include "mw_emu_tf32.h"

namespace nvcuda::wmma {

struct row_major;
struct col_major;
struct matrix_a;
struct matrix_b;
struct accumulator;
namespace precision {
struct tf32;
}  // namespace precision

enum layout_t { mem_row_major, mem_col_major };

template <typename T>
struct helper_traits {
  typedef T element_type;
  typedef T storage_element_type;
  typedef T fill_argument_type;
};

template <>
struct helper_traits<precision::tf32> {
  typedef precision::tf32 element_type;
  typedef float storage_element_type;
  typedef float fill_argument_type;
};

template <typename T, int size, int packed_size = size>
struct __align__(8) __frag_base {
  enum { num_elements = size };
  enum { num_storage_elements = packed_size };
  typedef T element_type;
  typedef typename helper_traits<T>::storage_element_type storage_element_type;
  storage_element_type x[num_storage_elements];
};

template <typename FragEleType, int size, int packed_size>
inline void fill_fragment(__frag_base<FragEleType, size, packed_size>& f,
                          const typename helper_traits<FragEleType>::fill_argument_type& in) {
  for (int i = 0; i < f.num_storage_elements; i++) f.x[i] = in;
}

template <typename Use, int m, int n, int k, typename T, typename Layout = void>
class fragment;

#define MW_EMU_WMMA_FRAGMENT(use, m, n, k, type, layout, count) \
  template <>                                                   \
  class fragment<use, m, n, k, type, layout> : public __frag_base<type, count> {}

MW_EMU_WMMA_FRAGMENT(matrix_a, 16, 16, 16, __half, row_major, 16);
MW_EMU_WMMA_FRAGMENT(matrix_a, 16, 16, 16, __half, col_major, 16);
MW_EMU_WMMA_FRAGMENT(matrix_b, 16, 16, 16, __half, row_major, 16);
MW_EMU_WMMA_FRAGMENT(matrix_b, 16, 16, 16, __half, col_major, 16);
MW_EMU_WMMA_FRAGMENT(accumulator, 16, 16, 16, __half, void, 8);
MW_EMU_WMMA_FRAGMENT(accumulator, 16, 16, 16, float, void, 8);
MW_EMU_WMMA_FRAGMENT(matrix_a, 16, 16, 16, __nv_bfloat16, row_major, 8);
MW_EMU_WMMA_FRAGMENT(matrix_a, 16, 16, 16, __nv_bfloat16, col_major, 8);
MW_EMU_WMMA_FRAGMENT(matrix_b, 16, 16, 16, __nv_bfloat16, row_major, 8);
MW_EMU_WMMA_FRAGMENT(matrix_b, 16, 16, 16, __nv_bfloat16, col_major, 8);
MW_EMU_WMMA_FRAGMENT(matrix_a, 16, 16, 8, precision::tf32, row_major, 4);
MW_EMU_WMMA_FRAGMENT(matrix_a, 16, 16, 8, precision::tf32, col_major, 4);
MW_EMU_WMMA_FRAGMENT(matrix_b, 16, 16, 8, precision::tf32, row_major, 4);
MW_EMU_WMMA_FRAGMENT(matrix_b, 16, 16, 8, precision::tf32, col_major, 4);
MW_EMU_WMMA_FRAGMENT(accumulator, 16, 16, 8, float, void, 8);
MW_EMU_WMMA_FRAGMENT(matrix_a, 8, 8, 4, double, row_major, 1);
MW_EMU_WMMA_FRAGMENT(matrix_a, 8, 8, 4, double, col_major, 1);
MW_EMU_WMMA_FRAGMENT(matrix_b, 8, 8, 4, double, row_major, 1);
MW_EMU_WMMA_FRAGMENT(matrix_b, 8, 8, 4, double, col_major, 1);
MW_EMU_WMMA_FRAGMENT(accumulator, 8, 8, 4, double, void, 2);

#undef MW_EMU_WMMA_FRAGMENT

}  // namespace nvcuda::wmma

namespace mw::emu::wmma_detail {

namespace wmma = ::nvcuda::wmma;

enum Use : int { kMatrixA = 0, kMatrixB = 1, kAccumulator = 2 };

template <typename T>
constexpr int type_code() {
  if constexpr (std::is_same_v<T, wmma::precision::tf32>) return 1;
  if constexpr (std::is_same_v<T, __half>) return 2;
  if constexpr (std::is_same_v<T, __nv_bfloat16>) return 3;
  if constexpr (std::is_same_v<T, float>) return 4;
  if constexpr (std::is_same_v<T, double>) return 5;
  return 0;
}

template <typename Fragment>
struct FragmentInfo;

// What the emulator needs to know of a fragment type: the tile it holds (rows x cols of A = m x k,
// B = k x n or C = m x n), its layout and a key that seeds its permutation.
template <typename UseTag, int m, int n, int k, typename T, typename Layout>
struct FragmentInfo<wmma::fragment<UseTag, m, n, k, T, Layout>> {
  using Fragment = wmma::fragment<UseTag, m, n, k, T, Layout>;
  using Storage = typename Fragment::storage_element_type;
  static constexpr int kUse = std::is_same_v<UseTag, wmma::matrix_a>   ? kMatrixA
                              : std::is_same_v<UseTag, wmma::matrix_b> ? kMatrixB
                                                                       : kAccumulator;
  static constexpr int kRows = kUse == kMatrixB ? k : m;
  static constexpr int kCols = kUse == kMatrixA ? k : n;
  static constexpr int kElements = kRows * kCols;
  static constexpr int kPerLane = Fragment::num_elements;
  static constexpr int kSlots = 32 * kPerLane;
  static constexpr bool kColMajor = std::is_same_v<Layout, wmma::col_major>;
  static constexpr unsigned long long kKey =
      static_cast<unsigned long long>(kUse) | static_cast<unsigned long long>(m) << 4 |
      static_cast<unsigned long long>(n) << 12 | static_cast<unsigned long long>(k) << 20 |
      static_cast<unsigned long long>(type_code<T>()) << 28 |
      static_cast<unsigned long long>(kColMajor) << 32;
  static_assert(type_code<T>() != 0 && kSlots % kElements == 0 && kSlots <= 65536);
};

inline unsigned long long mix64(unsigned long long& state) {
  unsigned long long z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// The slot -> element table of a fragment type in the running launch (see the top of the file).
// Cached per worker thread; rebuilt when the launch's permutation setting differs.
template <typename Info>
const uint16_t* slot_map() {
  struct Cache {
    bool valid = false, permuted = false;
    unsigned long long seed = 0;
    uint16_t map[Info::kSlots];
  };
  static thread_local Cache cache;
  unsigned long long seed = 0;
  const bool permuted = fragment_permutation(&seed);
  if (!cache.valid || cache.permuted != permuted || (permuted && cache.seed != seed)) {
    for (int s = 0; s < Info::kSlots; ++s) cache.map[s] = static_cast<uint16_t>(s);
    if (permuted) {
      unsigned long long state = seed ^ (Info::kKey * 0xd1b54a32d192ed03ull);
      for (int s = Info::kSlots; s > 1; --s) {
        const int j = static_cast<int>(mix64(state) % static_cast<unsigned long long>(s));
        const uint16_t t = cache.map[s - 1];
        cache.map[s - 1] = cache.map[j];
        cache.map[j] = t;
      }
    }
    cache.valid = true;
    cache.permuted = permuted;
    cache.seed = seed;
  }
  return cache.map;
}

inline unsigned linear_thread() {
  return threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
}

// Fails the launch for the running thread with "file:line: " + the formatted message (outside a
// launch it returns).
__attribute__((format(printf, 3, 4))) inline void fail(cudaError_t status,
                                                       const std::source_location& where,
                                                       const char* format, ...) {
  char message[768];
  int used = std::snprintf(message, sizeof(message), "%s:%u: ", where.file_name(),
                           static_cast<unsigned>(where.line()));
  if (used < 0 || used >= static_cast<int>(sizeof(message))) used = 0;
  va_list args;
  va_start(args, format);
  std::vsnprintf(message + used, sizeof(message) - used, format, args);
  va_end(args);
  fail_thread(message, status);
}

inline void rendezvous(const char* name, const WarpCollective& collective,
                       const std::source_location& where) {
  WarpOpRequest request{WarpOpKind::kCollective, 0xffffffffu, 0, 0, 32, name, where};
  request.collective = &collective;
  warp_op(request);
}

// After the rendezvous (all lanes agree): CUDA's rules for the memory operand.
template <typename Info>
void check_memory_operand(const char* name, const void* p, unsigned ldm,
                          const std::source_location& where) {
  const uintptr_t address = reinterpret_cast<uintptr_t>(p);
  if (address % 32 != 0) {
    fail(cudaErrorMisalignedAddress, where,
         "%s: misaligned pointer %p (address %% 32 = %zu): CUDA requires a 256-bit (32-byte) "
         "aligned pointer [warp %u]",
         name, p, static_cast<size_t>(address % 32), linear_thread() / 32);
  }
  constexpr unsigned kMultiple = 16 / sizeof(typename Info::Storage);
  if (ldm % kMultiple != 0) {
    fail(cudaErrorMisalignedAddress, where,
         "%s: ldm %u is not a multiple of %u elements (16 bytes of %zu-byte elements), as CUDA "
         "requires [warp %u]",
         name, ldm, kMultiple, sizeof(typename Info::Storage), linear_thread() / 32);
  }
}

template <typename Info>
size_t offset(int row, int col, unsigned ldm, bool col_major) {
  return col_major ? static_cast<size_t>(col) * ldm + row : static_cast<size_t>(row) * ldm + col;
}

// The warp collective of load/store_matrix_sync: every lane with the same pointer, ldm and
// layout, then the operand's alignment and ldm rules.
template <typename Info>
void memory_rendezvous(const char* name, const void* p, unsigned ldm, bool col_major,
                       const std::source_location& where) {
  const WarpCollective collective{{reinterpret_cast<uintptr_t>(p), ldm, col_major},
                                  {"the pointer", "ldm", "the layout"},
                                  nullptr,
                                  nullptr};
  rendezvous(name, collective, where);
  check_memory_operand<Info>(name, p, ldm, where);
}

template <typename Fragment>
void load(Fragment& f, const typename FragmentInfo<Fragment>::Storage* p, unsigned ldm,
          bool col_major, const std::source_location& where) {
  using Info = FragmentInfo<Fragment>;
  memory_rendezvous<Info>("nvcuda::wmma::load_matrix_sync", p, ldm, col_major, where);
  const uint16_t* map = slot_map<Info>();
  const unsigned lane = linear_thread() % 32;
  for (int i = 0; i < Info::kPerLane; ++i) {
    const int e = map[lane * Info::kPerLane + i] % Info::kElements;
    f.x[i] = p[offset<Info>(e / Info::kCols, e % Info::kCols, ldm, col_major)];
  }
}

template <typename Fragment>
void store(typename FragmentInfo<Fragment>::Storage* p, const Fragment& f, unsigned ldm,
           bool col_major, const std::source_location& where) {
  using Info = FragmentInfo<Fragment>;
  memory_rendezvous<Info>("nvcuda::wmma::store_matrix_sync", p, ldm, col_major, where);
  const uint16_t* map = slot_map<Info>();
  const unsigned lane = linear_thread() % 32;
  for (int i = 0; i < Info::kPerLane; ++i) {
    const int v = map[lane * Info::kPerLane + i];
    if (v >= Info::kElements) continue;  // a second copy (accumulators have none)
    p[offset<Info>(v / Info::kCols, v % Info::kCols, ldm, col_major)] = f.x[i];
  }
}

// An operand value as the tensor core uses it.
template <typename T>
auto operand(const T& value) {
  if constexpr (std::is_same_v<T, __half>)
    return __half2float(value);
  else if constexpr (std::is_same_v<T, __nv_bfloat16>)
    return __bfloat162float(value);
  else
    return value;
}

// Gathers the tile of a fragment from all 32 lanes into `tile` (row-major, rows x cols).
template <typename Fragment, typename Value, typename Get>
void gather(Value* tile, void* const* lane_data, Get get) {
  using Info = FragmentInfo<Fragment>;
  const uint16_t* map = slot_map<Info>();
  for (int lane = 0; lane < 32; ++lane) {
    const Fragment& f = get(lane_data[lane]);
    for (int i = 0; i < Info::kPerLane; ++i) {
      const int v = map[lane * Info::kPerLane + i];
      if (v < Info::kElements) tile[v] = static_cast<Value>(operand(f.x[i]));
    }
  }
}

template <typename D, typename A, typename B, typename C, bool kTf32>
struct MmaOperands {
  D* d;
  const A* a;
  const B* b;
  const C* c;

  // Run by the last lane to arrive: D = A B + C for the whole warp.
  static void run(void* const* lane_data) {
    using IA = FragmentInfo<A>;
    using IB = FragmentInfo<B>;
    using ID = FragmentInfo<D>;
    constexpr int M = IA::kRows, K = IA::kCols, N = IB::kCols;
    constexpr bool kDouble = std::is_same_v<typename ID::Storage, double>;
    using Value = std::conditional_t<kDouble, double, float>;
    Value a[M * K], b[K * N], c[M * N];
    auto operands = [](void* p) -> const MmaOperands& { return *static_cast<MmaOperands*>(p); };
    gather<A>(a, lane_data, [&](void* p) -> const A& { return *operands(p).a; });
    gather<B>(b, lane_data, [&](void* p) -> const B& { return *operands(p).b; });
    gather<C>(c, lane_data, [&](void* p) -> const C& { return *operands(p).c; });
    if constexpr (kTf32) {
      for (float& v : a) v = tf32_truncate(v);
      for (float& v : b) v = tf32_truncate(v);
    }
    double sums[M * N];
    for (int r = 0; r < M; ++r) {
      for (int col = 0; col < N; ++col) {
        double sum = c[r * N + col];
        for (int i = 0; i < K; ++i) {
          if constexpr (kDouble) {
            sum = std::fma(a[r * K + i], b[i * N + col], sum);
          } else {
            sum += exact_product(a[r * K + i], b[i * N + col]);
          }
        }
        sums[r * N + col] = sum;
      }
    }
    const uint16_t* map = slot_map<ID>();
    for (int lane = 0; lane < 32; ++lane) {
      D& out = *operands(lane_data[lane]).d;
      for (int i = 0; i < ID::kPerLane; ++i) {
        const double sum = sums[map[lane * ID::kPerLane + i] % ID::kElements];
        if constexpr (std::is_same_v<typename ID::Storage, __half>) {
          out.x[i] = __double2half(sum);  // rounded once, from the double sum
        } else {
          out.x[i] = static_cast<typename ID::Storage>(sum);
        }
      }
    }
  }
};

}  // namespace mw::emu::wmma_detail

namespace nvcuda::wmma {

template <typename Use, int m, int n, int k, typename T, typename Layout,
          typename = std::enable_if_t<!std::is_same_v<Use, accumulator>>>
inline void load_matrix_sync(fragment<Use, m, n, k, T, Layout>& a,
                             const typename helper_traits<T>::storage_element_type* p, unsigned ldm,
                             std::source_location where = std::source_location::current()) {
  ::mw::emu::wmma_detail::load(a, p, ldm, std::is_same_v<Layout, col_major>, where);
}

template <int m, int n, int k, typename T>
inline void load_matrix_sync(fragment<accumulator, m, n, k, T>& a, const T* p, unsigned ldm,
                             layout_t layout,
                             std::source_location where = std::source_location::current()) {
  ::mw::emu::wmma_detail::load(a, p, ldm, layout == mem_col_major, where);
}

template <int m, int n, int k, typename T>
inline void store_matrix_sync(T* p, const fragment<accumulator, m, n, k, T>& a, unsigned ldm,
                              layout_t layout,
                              std::source_location where = std::source_location::current()) {
  ::mw::emu::wmma_detail::store(p, a, ldm, layout == mem_col_major, where);
}

template <int m, int n, int k, typename Td, typename T, typename La, typename Lb, typename Tc>
inline void mma_sync(fragment<accumulator, m, n, k, Td>& d,
                     const fragment<matrix_a, m, n, k, T, La>& a,
                     const fragment<matrix_b, m, n, k, T, Lb>& b,
                     const fragment<accumulator, m, n, k, Tc>& c,
                     std::source_location where = std::source_location::current()) {
  constexpr bool kTf32 = std::is_same_v<T, precision::tf32>;
  constexpr bool kHalf = std::is_same_v<T, __half>;
  static_assert(kHalf ? (std::is_same_v<Td, float> || std::is_same_v<Td, __half>) &&
                            (std::is_same_v<Tc, float> || std::is_same_v<Tc, __half>)
                      : std::is_same_v<Td, Tc>,
                "nvcuda::wmma::mma_sync: accumulator types CUDA does not accept");
  using Operands = ::mw::emu::wmma_detail::MmaOperands<
      fragment<accumulator, m, n, k, Td>, fragment<matrix_a, m, n, k, T, La>,
      fragment<matrix_b, m, n, k, T, Lb>, fragment<accumulator, m, n, k, Tc>, kTf32>;
  Operands operands{&d, &a, &b, &c};
  const ::mw::emu::WarpCollective collective{
      {0, 0, 0}, {nullptr, nullptr, nullptr}, &operands, &Operands::run};
  ::mw::emu::wmma_detail::rendezvous("nvcuda::wmma::mma_sync", collective, where);
}

}  // namespace nvcuda::wmma
