// The one header every kernel file includes first.
//
// It makes the same kernel source compile two ways:
//   * nvcc  (__CUDACC__ defined): the real CUDA runtime, MW_EMULATOR == 0;
//   * g++   (no __CUDACC__):      the CPU emulator in kernels/emu/, MW_EMULATOR == 1.
// Kernels are launched with mw::launch(...) instead of <<<>>> so that the host code is also
// identical in both builds; dynamic shared memory is declared with MW_DYNAMIC_SHARED.
#pragma once

#include <cstddef>

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

namespace mw {

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
