// The one header every kernel file includes first.
//
// It makes the same kernel source compile two ways:
//   * nvcc  (__CUDACC__ defined): the real CUDA runtime, MW_EMULATOR == 0;
//   * g++   (no __CUDACC__):      the CPU emulator in kernels/emu/, MW_EMULATOR == 1.
// Kernels are launched with mw::launch(...) instead of <<<>>> so that the host code is also
// identical in both builds; dynamic shared memory is declared with MW_DYNAMIC_SHARED.
#pragma once

#include <cstddef>
#include <cstring>

#if defined(__CUDACC__)
#include <cuda_runtime.h>
#define MW_EMULATOR 0
#else
#include "emu/cuda_emu.h"
#define MW_EMULATOR 1
#endif

// 1 only while nvcc compiles device code for a real GPU. __CUDA_ARCH__ itself is undefined
// under g++ (and in nvcc's host pass), so device-only branches test this project macro.
#if defined(__CUDA_ARCH__)
#define MW_DEVICE_CODE 1
#else
#define MW_DEVICE_CODE 0
#endif

// Declares `T* name` pointing at the block's dynamic shared memory, 16-byte aligned.
// Under nvcc a single extern array name serves every element type: declaring
// `extern __shared__ T smem[]` in templates instantiated with different T makes nvcc reject
// the conflicting declarations. Under the emulator it points at the block's poisoned buffer.
#if MW_EMULATOR
#define MW_DYNAMIC_SHARED(T, name) \
  T* name = reinterpret_cast<T*>(::mw::emu::dynamic_shared_memory())
#else
#define MW_DYNAMIC_SHARED(T, name)                                 \
  extern __shared__ __align__(16) unsigned char mw_dynamic_smem[]; \
  T* name = reinterpret_cast<T*>(mw_dynamic_smem)
#endif

// Vector accesses: MW_LOAD_VECTOR(V, p) reads one V (a 4-, 8- or 16-byte vector type: float2,
// float4, double2, mw::Vec<T, n>) from the element pointer p with a single instruction
// (LDG.64 / LDG.128); MW_STORE_VECTOR(p, v) writes one.  A GPU faults ("misaligned address")
// unless p is a multiple of sizeof(V); the emulator checks it and fails the launch with
// cudaErrorMisalignedAddress, naming file:line, block and thread, where it would otherwise
// read element by element and give right answers from a bad pointer.  Every vector access of
// the kernels goes through these two macros (a type with a comma needs an alias first).
#define MW_LOAD_VECTOR(V, p) ::mw::load_vector<V>((p), __FILE__, __LINE__)
#define MW_STORE_VECTOR(p, v) ::mw::store_vector((p), (v), __FILE__, __LINE__)

namespace mw {

template <typename V, typename T>
__device__ __forceinline__ V load_vector(const T* p, const char* file, int line) {
  static_assert(sizeof(V) % sizeof(T) == 0 && (sizeof(V) == 4 || sizeof(V) == 8 || sizeof(V) == 16),
                "a vector access moves 4, 8 or 16 bytes of whole elements");
  static_assert(alignof(V) == sizeof(V), "a vector type is aligned to its size");
#if MW_EMULATOR
  emu::check_aligned(p, sizeof(V), /*store=*/false, file, line);
  V v;
  std::memcpy(&v, p, sizeof(V));
  return v;
#else
  (void)file;
  (void)line;
  return *reinterpret_cast<const V*>(p);
#endif
}

template <typename T, typename V>
__device__ __forceinline__ void store_vector(T* p, const V& v, const char* file, int line) {
  static_assert(sizeof(V) % sizeof(T) == 0 && (sizeof(V) == 4 || sizeof(V) == 8 || sizeof(V) == 16),
                "a vector access moves 4, 8 or 16 bytes of whole elements");
  static_assert(alignof(V) == sizeof(V), "a vector type is aligned to its size");
#if MW_EMULATOR
  emu::check_aligned(p, sizeof(V), /*store=*/true, file, line);
  std::memcpy(p, &v, sizeof(V));
#else
  (void)file;
  (void)line;
  *reinterpret_cast<V*>(p) = v;
#endif
}

#if MW_EMULATOR

// Runs the whole grid on the CPU before returning. Returns cudaSuccess,
// cudaErrorInvalidConfiguration (launch configuration CUDA rejects) or cudaErrorLaunchFailure
// (a diagnostic found while running); the detail is in last_launch_error_message().
template <typename... KParams, typename... Args>
cudaError_t launch(void (*kernel)(KParams...), dim3 grid, dim3 block, size_t shared_bytes,
                   cudaStream_t /*stream: the emulator runs synchronously*/, Args... args) {
  static_assert(sizeof...(KParams) == sizeof...(Args),
                "mw::launch: number of arguments differs from the kernel's parameters");
  return emu::launch_kernel(kernel, grid, block, shared_bytes, args...);
}

// Detail of the last failed launch in this host thread, "" when the last launch succeeded.
inline const char* last_launch_error_message() { return emu::last_launch_error_message(); }

#else  // nvcc

namespace detail {
inline const char*& last_launch_error_slot() {
  static thread_local const char* message = "";
  return message;
}
}  // namespace detail

template <typename... KParams, typename... Args>
cudaError_t launch(void (*kernel)(KParams...), dim3 grid, dim3 block, size_t shared_bytes,
                   cudaStream_t stream, Args... args) {
  kernel<<<grid, block, shared_bytes, stream>>>(args...);
  const cudaError_t status = cudaGetLastError();
  detail::last_launch_error_slot() = status == cudaSuccess ? "" : cudaGetErrorString(status);
  return status;
}

inline const char* last_launch_error_message() { return detail::last_launch_error_slot(); }

#endif

}  // namespace mw
