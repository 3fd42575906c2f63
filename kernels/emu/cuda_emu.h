// CPU emulation of the CUDA device language, so that kernel source compiles unchanged with g++.
//
// Include it through kernels/launch.cuh, never together with CUDA headers (they redefine
// dim3 and the vector types). Each CUDA thread of a block runs as a cooperative fiber on one
// worker thread; fibers switch at __syncthreads and at warp operations. The scheduler and the
// diagnostics live in cuda_emu.cpp; docs/emulator.md describes the model and its limits.
#pragma once

#if defined(__CUDACC__)
#error "kernels/emu/cuda_emu.h is the g++ emulator; nvcc uses the real CUDA runtime"
#endif

#include <math.h>  // the C math functions (fmaf, sqrtf, ...) in the global namespace

#include <algorithm>
#include <atomic>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <source_location>
#include <tuple>
#include <type_traits>
#include <utility>

// Kernel source is full of `#pragma unroll`, which g++ does not know; it is only a hint.
#pragma GCC diagnostic ignored "-Wunknown-pragmas"

// ---------------------------------------------------------------------------------------------
// Qualifiers. On the CPU every function is a host function and shared memory is per worker
// thread: `__shared__` variables become block-scope `thread_local` (implicitly static), and all
// fibers of one block run on the same worker, so they see one copy.
#define __global__
#define __device__
#define __host__
#define __constant__
#define __managed__
#define __shared__ thread_local
#define __forceinline__ inline __attribute__((always_inline))
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define __grid_constant__
// __restrict__ is a g++ keyword already. __noinline__ is deliberately not defined: libstdc++
// spells __attribute__((__noinline__)) and a macro would break it.

// ---------------------------------------------------------------------------------------------
// Vector types with CUDA's sizes and alignments (float2: 8, float4 / double2: 16).
#define MW_EMU_VECTOR2(type, base, align)       \
  struct __attribute__((aligned(align))) type { \
    base x, y;                                  \
  }
#define MW_EMU_VECTOR3(type, base) \
  struct type {                    \
    base x, y, z;                  \
  }
#define MW_EMU_VECTOR4(type, base, align)       \
  struct __attribute__((aligned(align))) type { \
    base x, y, z, w;                            \
  }
#define MW_EMU_VECTOR1(type, base, align)       \
  struct __attribute__((aligned(align))) type { \
    base x;                                     \
  }

MW_EMU_VECTOR1(char1, signed char, 1);
MW_EMU_VECTOR2(char2, signed char, 2);
MW_EMU_VECTOR4(char4, signed char, 4);
MW_EMU_VECTOR1(uchar1, unsigned char, 1);
MW_EMU_VECTOR2(uchar2, unsigned char, 2);
MW_EMU_VECTOR4(uchar4, unsigned char, 4);
MW_EMU_VECTOR2(short2, short, 4);
MW_EMU_VECTOR4(short4, short, 8);
MW_EMU_VECTOR2(ushort2, unsigned short, 4);
MW_EMU_VECTOR4(ushort4, unsigned short, 8);
MW_EMU_VECTOR1(int1, int, 4);
MW_EMU_VECTOR2(int2, int, 8);
MW_EMU_VECTOR3(int3, int);
MW_EMU_VECTOR4(int4, int, 16);
MW_EMU_VECTOR1(uint1, unsigned int, 4);
MW_EMU_VECTOR2(uint2, unsigned int, 8);
MW_EMU_VECTOR3(uint3, unsigned int);
MW_EMU_VECTOR4(uint4, unsigned int, 16);
MW_EMU_VECTOR2(longlong2, long long, 16);
MW_EMU_VECTOR2(ulonglong2, unsigned long long, 16);
MW_EMU_VECTOR1(float1, float, 4);
MW_EMU_VECTOR2(float2, float, 8);
MW_EMU_VECTOR3(float3, float);
MW_EMU_VECTOR4(float4, float, 16);
MW_EMU_VECTOR1(double1, double, 8);
MW_EMU_VECTOR2(double2, double, 16);
MW_EMU_VECTOR3(double3, double);

#undef MW_EMU_VECTOR1
#undef MW_EMU_VECTOR2
#undef MW_EMU_VECTOR3
#undef MW_EMU_VECTOR4

static_assert(alignof(float2) == 8 && alignof(float4) == 16 && alignof(double2) == 16);
static_assert(sizeof(float4) == 16 && sizeof(double2) == 16 && sizeof(float3) == 12);

inline constexpr char2 make_char2(signed char x, signed char y) { return {x, y}; }
inline constexpr uchar4 make_uchar4(unsigned char x, unsigned char y, unsigned char z,
                                    unsigned char w) {
  return {x, y, z, w};
}
inline constexpr int2 make_int2(int x, int y) { return {x, y}; }
inline constexpr int3 make_int3(int x, int y, int z) { return {x, y, z}; }
inline constexpr int4 make_int4(int x, int y, int z, int w) { return {x, y, z, w}; }
inline constexpr uint2 make_uint2(unsigned x, unsigned y) { return {x, y}; }
inline constexpr uint3 make_uint3(unsigned x, unsigned y, unsigned z) { return {x, y, z}; }
inline constexpr uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) {
  return {x, y, z, w};
}
inline constexpr float2 make_float2(float x, float y) { return {x, y}; }
inline constexpr float3 make_float3(float x, float y, float z) { return {x, y, z}; }
inline constexpr float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
inline constexpr double2 make_double2(double x, double y) { return {x, y}; }
inline constexpr double3 make_double3(double x, double y, double z) { return {x, y, z}; }

struct dim3 {
  unsigned int x, y, z;
  constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1)
      : x(vx), y(vy), z(vz) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
  constexpr operator uint3() const { return {x, y, z}; }
};

// ---------------------------------------------------------------------------------------------
// Runtime types (values as in CUDA's driver_types.h).
enum cudaError_t : int {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInitializationError = 3,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidDevicePointer = 17,
  cudaErrorNoDevice = 100,
  cudaErrorInvalidDevice = 101,
  cudaErrorNotSupported = 801,
  cudaErrorIllegalAddress = 700,
  cudaErrorMisalignedAddress = 716,
  cudaErrorLaunchFailure = 719,
  cudaErrorUnknown = 999,
};
using cudaError = cudaError_t;
struct CUstream_st;
using cudaStream_t = CUstream_st*;

const char* cudaGetErrorString(cudaError_t error);
const char* cudaGetErrorName(cudaError_t error);
// Like CUDA: returns the last error of this host thread and resets it to cudaSuccess.
cudaError_t cudaGetLastError();
cudaError_t cudaPeekAtLastError();
// Device queries: the emulator models one device, 0.  cudaDevAttrMultiProcessorCount is a fixed
// 132 (an H100 / H200 SXM), or MW_EMU_SM_COUNT (1 .. 4096) read once, when the emulator is
// first used: the dispatchers that size grids by the SM count (split-K in gemm_tc.cuh) then
// choose on the CPU what they would on such a GPU, and tests can pick another count in a
// subprocess.  cudaDevAttrComputeCapabilityMajor / Minor: 9 / 0 (the emulator models sm_80+
// features: TF32, cp.async, DMMA).  Other attributes: cudaErrorInvalidValue.
// cudaDevAttrMaxSharedMemoryPerBlockOptin: 232448 bytes (227 KiB, sm_90's opt-in limit).
enum cudaDeviceAttr : int {
  cudaDevAttrMaxSharedMemoryPerBlockOptin = 97,
  cudaDevAttrMultiProcessorCount = 16,
  cudaDevAttrComputeCapabilityMajor = 75,
  cudaDevAttrComputeCapabilityMinor = 76,
};
inline constexpr int kEmuDefaultSmCount = 132;
cudaError_t cudaGetDevice(int* device);
cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device);
// Kernel attributes: the one CUDA requires before a launch with more than 48 KiB of dynamic
// shared memory.  The emulator records it per kernel and, as CUDA does, refuses such a launch
// (cudaErrorInvalidConfiguration) unless the kernel's MaxDynamicSharedMemorySize covers it: a
// launcher that forgets the opt-in fails here as it would on a GPU.
enum cudaFuncAttribute : int { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
namespace mw::emu {
cudaError_t func_set_attribute(const void* func, cudaFuncAttribute attr, int value);
}  // namespace mw::emu
template <typename... P>
cudaError_t cudaFuncSetAttribute(void (*func)(P...), cudaFuncAttribute attr, int value) {
  return mw::emu::func_set_attribute(reinterpret_cast<const void*>(func), attr, value);
}
// Launches are synchronous in the emulator, so these have nothing to wait for.
inline cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }

// ---------------------------------------------------------------------------------------------
// Built-in coordinates. The scheduler rewrites them on every switch into a fiber; they are
// constant-initialized inline thread_local variables so accesses compile to plain TLS loads.
// (The initial-exec TLS model would be faster still, but a dlopen'ed Python extension cannot
// count on static TLS space: importing NumPy first exhausts it. CMake compiles emulated code
// with -mtls-dialect=gnu2 on x86-64 instead, which makes dynamic TLS accesses cheap.)
inline thread_local uint3 threadIdx{0, 0, 0};
inline thread_local uint3 blockIdx{0, 0, 0};
inline thread_local dim3 blockDim{1, 1, 1};
inline thread_local dim3 gridDim{1, 1, 1};
inline constexpr int warpSize = 32;

namespace mw::emu {

// The type-erased kernel call that every fiber of a launch runs.
struct KernelCall {
  void (*invoke)(const void* closure);
  const void* closure;
};

// Runs the grid (declared here, defined in cuda_emu.cpp). Sets the message returned by
// last_launch_error_message() and the value of cudaGetLastError().
// `func` identifies the kernel (its dynamic shared memory opt-in).
cudaError_t run_grid(const KernelCall& call, const void* func, dim3 grid, dim3 block,
                     size_t shared_bytes);
const char* last_launch_error_message();

template <typename... KParams, typename... Args>
cudaError_t launch_kernel(void (*kernel)(KParams...), dim3 grid, dim3 block, size_t shared_bytes,
                          Args... args) {
  // Arguments are converted to the parameter types once, as the CUDA runtime does when it
  // packs the parameter buffer; every thread then receives its own copy.
  struct Closure {
    void (*kernel)(KParams...);
    std::tuple<std::decay_t<KParams>...> params;
  };
  const Closure closure{
      kernel, std::tuple<std::decay_t<KParams>...>(static_cast<std::decay_t<KParams>>(args)...)};
  const KernelCall call{[](const void* p) {
                          const Closure& c = *static_cast<const Closure*>(p);
                          std::apply(c.kernel, c.params);
                        },
                        &closure};
  return run_grid(call, reinterpret_cast<const void*>(kernel), grid, block, shared_bytes);
}

// The current block's dynamic shared memory (poisoned with 0xFF before each block, followed
// by a canary zone checked after it).
unsigned char* dynamic_shared_memory();

void sync_threads(const std::source_location& where);

// A vector access (`bytes` = 4, 8 or 16) whose address is not a multiple of `bytes`: a GPU
// faults ("misaligned address"). Reports it for the running thread with file:line, block and
// thread, and leaves the thread (the launch returns cudaErrorMisalignedAddress); does nothing
// outside a launch. Kernels reach it through MW_LOAD_VECTOR / MW_STORE_VECTOR (launch.cuh).
void misaligned_access(const void* address, size_t bytes, bool store, const char* file, int line);

inline void check_aligned(const void* address, size_t bytes, bool store, const char* file,
                          int line) {
  if (reinterpret_cast<uintptr_t>(address) % bytes != 0) [[unlikely]]
    misaligned_access(address, bytes, store, file, line);
}

// Per-thread state of asynchronous copies (kept by pipeline_emu.cpp, the runtime of the
// emulator's <cuda_pipeline.h>): every fiber owns one slot. current_pipeline_slot() is the
// running fiber's slot (nullptr outside a launch); block_seed() is a per-(block, thread) seed
// that does not depend on the worker count. fail_thread() records `message` (it should name
// file:line) for the running thread and leaves it (the launch returns `status`); outside a
// launch it returns.
struct PipelineState;
PipelineState** current_pipeline_slot();
unsigned long long block_seed();
void fail_thread(const char* message, cudaError_t status);
// Called by cuda_emu.cpp: a new block (reset), a barrier (switch point), thread exit (pending
// copies are performed), fiber destruction.
void pipeline_reset(PipelineState* state);
void pipeline_switch_point(PipelineState* state);
void pipeline_thread_exit(PipelineState* state);
void pipeline_destroy(PipelineState* state);

enum class WarpOpKind : int {
  kSyncWarp,
  kShflIdx,
  kShflUp,
  kShflDown,
  kShflXor,
  kBallot,
  kAny,
  kAll,
  kCollective  // a warp-collective call of the whole warp (the WMMA functions of <mma.h>)
};

// A warp-collective call (kCollective): every lane of the warp must make the same call (same
// name and call site) with the same `args`; otherwise the launch fails naming the first
// argument that differs. The last lane to arrive runs `run` (if not null) with every lane's
// `lane_data`, indexed by lane, before any lane continues.
struct WarpCollective {
  unsigned long long args[3];
  const char* arg_names[3];  // null: that argument is not compared
  void* lane_data;
  void (*run)(void* const* lane_data);
};

// One lane's part in a warp-level rendezvous; see cuda_emu.cpp.
struct WarpOpRequest {
  WarpOpKind kind;
  unsigned mask;
  unsigned long long value;  // the lane's operand bits (shuffles) or predicate (votes)
  int lane_param;            // srcLane, delta or laneMask
  int width;
  const char* name;
  std::source_location where;
  const WarpCollective* collective = nullptr;  // kCollective only
};
unsigned long long warp_op(const WarpOpRequest& request);

// True when the element-to-lane mapping of WMMA fragments is permuted in the running launch
// (mw_emu_set_fragment_permutation, MW_EMU_WMMA_PERMUTE); *seed is then its seed.
bool fragment_permutation(unsigned long long* seed);
// Mask of the lanes of the calling warp that have not exited.
unsigned active_mask();

template <typename T>
T shuffle(WarpOpKind kind, const char* name, unsigned mask, T value, int lane_param, int width,
          const std::source_location& where) {
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 8,
                "warp shuffles move values of at most 8 bytes");
  unsigned long long bits = 0;
  std::memcpy(&bits, &value, sizeof(T));
  bits = warp_op({kind, mask, bits, lane_param, width, name, where});
  T result;
  std::memcpy(&result, &bits, sizeof(T));
  return result;
}

}  // namespace mw::emu

// ---------------------------------------------------------------------------------------------
// Synchronization and warp intrinsics. The trailing source_location argument records where the
// call is written, for diagnostics; kernel code never passes it.
inline void __syncthreads(std::source_location where = std::source_location::current()) {
  mw::emu::sync_threads(where);
}
inline void __syncwarp(unsigned mask = 0xffffffffu,
                       std::source_location where = std::source_location::current()) {
  mw::emu::warp_op({mw::emu::WarpOpKind::kSyncWarp, mask, 0, 0, warpSize, "__syncwarp", where});
}
template <typename T>
T __shfl_sync(unsigned mask, T var, int src_lane, int width = warpSize,
              std::source_location where = std::source_location::current()) {
  return mw::emu::shuffle(mw::emu::WarpOpKind::kShflIdx, "__shfl_sync", mask, var, src_lane, width,
                          where);
}
template <typename T>
T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = warpSize,
                 std::source_location where = std::source_location::current()) {
  return mw::emu::shuffle(mw::emu::WarpOpKind::kShflUp, "__shfl_up_sync", mask, var,
                          static_cast<int>(delta), width, where);
}
template <typename T>
T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = warpSize,
                   std::source_location where = std::source_location::current()) {
  return mw::emu::shuffle(mw::emu::WarpOpKind::kShflDown, "__shfl_down_sync", mask, var,
                          static_cast<int>(delta), width, where);
}
template <typename T>
T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = warpSize,
                  std::source_location where = std::source_location::current()) {
  return mw::emu::shuffle(mw::emu::WarpOpKind::kShflXor, "__shfl_xor_sync", mask, var, lane_mask,
                          width, where);
}
inline unsigned __ballot_sync(unsigned mask, int predicate,
                              std::source_location where = std::source_location::current()) {
  return static_cast<unsigned>(mw::emu::warp_op(
      {mw::emu::WarpOpKind::kBallot, mask, predicate != 0, 0, warpSize, "__ballot_sync", where}));
}
inline int __any_sync(unsigned mask, int predicate,
                      std::source_location where = std::source_location::current()) {
  return static_cast<int>(mw::emu::warp_op(
      {mw::emu::WarpOpKind::kAny, mask, predicate != 0, 0, warpSize, "__any_sync", where}));
}
inline int __all_sync(unsigned mask, int predicate,
                      std::source_location where = std::source_location::current()) {
  return static_cast<int>(mw::emu::warp_op(
      {mw::emu::WarpOpKind::kAll, mask, predicate != 0, 0, warpSize, "__all_sync", where}));
}
inline unsigned __activemask() { return mw::emu::active_mask(); }

// Memory fences: blocks run on several worker threads, so a real fence is needed.
inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void __threadfence_block() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void __threadfence_system() { std::atomic_thread_fence(std::memory_order_seq_cst); }

template <typename T>
inline T __ldg(const T* address) {
  return *address;
}

// ---------------------------------------------------------------------------------------------
// Atomics: relaxed read-modify-writes through std::atomic_ref (blocks run concurrently on
// several workers; fibers of one block never interleave inside one of these calls).
namespace mw::emu {
template <typename T>
inline constexpr bool kAtomicType =
    std::is_same_v<T, int> || std::is_same_v<T, unsigned int> ||
    std::is_same_v<T, unsigned long long> || std::is_same_v<T, long long> ||
    std::is_same_v<T, float> || std::is_same_v<T, double>;
}  // namespace mw::emu

template <typename T, typename U, typename = std::enable_if_t<mw::emu::kAtomicType<T>>>
inline T atomicAdd(T* address, U value) {
  return std::atomic_ref<T>(*address).fetch_add(static_cast<T>(value), std::memory_order_relaxed);
}
template <typename T, typename U, typename = std::enable_if_t<mw::emu::kAtomicType<T>>>
inline T atomicSub(T* address, U value) {
  return std::atomic_ref<T>(*address).fetch_sub(static_cast<T>(value), std::memory_order_relaxed);
}
template <typename T, typename U, typename = std::enable_if_t<mw::emu::kAtomicType<T>>>
inline T atomicExch(T* address, U value) {
  return std::atomic_ref<T>(*address).exchange(static_cast<T>(value), std::memory_order_relaxed);
}
template <typename T, typename U, typename V, typename = std::enable_if_t<mw::emu::kAtomicType<T>>>
inline T atomicCAS(T* address, U compare, V value) {
  T expected = static_cast<T>(compare);
  std::atomic_ref<T>(*address).compare_exchange_strong(expected, static_cast<T>(value),
                                                       std::memory_order_relaxed);
  return expected;  // the old value, whether or not the swap happened
}
template <typename T, typename U, typename = std::enable_if_t<mw::emu::kAtomicType<T>>>
inline T atomicMax(T* address, U value) {
  std::atomic_ref<T> target(*address);
  T old = target.load(std::memory_order_relaxed);
  const T v = static_cast<T>(value);
  while (old < v && !target.compare_exchange_weak(old, v, std::memory_order_relaxed)) {
  }
  return old;
}
template <typename T, typename U, typename = std::enable_if_t<mw::emu::kAtomicType<T>>>
inline T atomicMin(T* address, U value) {
  std::atomic_ref<T> target(*address);
  T old = target.load(std::memory_order_relaxed);
  const T v = static_cast<T>(value);
  while (v < old && !target.compare_exchange_weak(old, v, std::memory_order_relaxed)) {
  }
  return old;
}
template <typename T, typename U, typename = std::enable_if_t<std::is_integral_v<T>>>
inline T atomicAnd(T* address, U value) {
  return std::atomic_ref<T>(*address).fetch_and(static_cast<T>(value), std::memory_order_relaxed);
}
template <typename T, typename U, typename = std::enable_if_t<std::is_integral_v<T>>>
inline T atomicOr(T* address, U value) {
  return std::atomic_ref<T>(*address).fetch_or(static_cast<T>(value), std::memory_order_relaxed);
}
template <typename T, typename U, typename = std::enable_if_t<std::is_integral_v<T>>>
inline T atomicXor(T* address, U value) {
  return std::atomic_ref<T>(*address).fetch_xor(static_cast<T>(value), std::memory_order_relaxed);
}

// ---------------------------------------------------------------------------------------------
// Math. fmaf/fma/sqrtf/expf/... come from <math.h>. Device intrinsics map to exact C calls;
// the fast-math variants (__expf, __fdividef) are therefore more accurate than on a GPU.
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline double __fma_rn(double a, double b, double c) { return fma(a, b, c); }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline float __fdividef(float a, float b) { return a / b; }
inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline float __sinf(float x) { return sinf(x); }
inline float __cosf(float x) { return cosf(x); }
inline float __powf(float x, float y) { return powf(x, y); }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
inline float __saturatef(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x); }
inline int __float2int_rn(float x) { return static_cast<int>(nearbyintf(x)); }
inline int __float2int_rz(float x) { return static_cast<int>(x); }
inline float __int2float_rn(int x) { return static_cast<float>(x); }
inline int __float_as_int(float x) { return std::bit_cast<int>(x); }
inline unsigned __float_as_uint(float x) { return std::bit_cast<unsigned>(x); }
inline float __int_as_float(int x) { return std::bit_cast<float>(x); }
inline float __uint_as_float(unsigned x) { return std::bit_cast<float>(x); }
inline long long __double_as_longlong(double x) { return std::bit_cast<long long>(x); }
inline double __longlong_as_double(long long x) { return std::bit_cast<double>(x); }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(static_cast<unsigned>(x)); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline unsigned __brev(unsigned x) {
  x = ((x >> 1) & 0x55555555u) | ((x & 0x55555555u) << 1);
  x = ((x >> 2) & 0x33333333u) | ((x & 0x33333333u) << 2);
  x = ((x >> 4) & 0x0f0f0f0fu) | ((x & 0x0f0f0f0fu) << 4);
  x = ((x >> 8) & 0x00ff00ffu) | ((x & 0x00ff00ffu) << 8);
  return (x >> 16) | (x << 16);
}

// CUDA's device code has unqualified min/max overloads for mixed arithmetic types.
template <typename A, typename B,
          typename = std::enable_if_t<std::is_arithmetic_v<A> && std::is_arithmetic_v<B>>>
inline constexpr std::common_type_t<A, B> min(A a, B b) {
  using C = std::common_type_t<A, B>;
  return static_cast<C>(b) < static_cast<C>(a) ? static_cast<C>(b) : static_cast<C>(a);
}
template <typename A, typename B,
          typename = std::enable_if_t<std::is_arithmetic_v<A> && std::is_arithmetic_v<B>>>
inline constexpr std::common_type_t<A, B> max(A a, B b) {
  using C = std::common_type_t<A, B>;
  return static_cast<C>(a) < static_cast<C>(b) ? static_cast<C>(b) : static_cast<C>(a);
}
