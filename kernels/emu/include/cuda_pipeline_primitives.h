// The emulator's <cuda_pipeline_primitives.h>: asynchronous copies from global to shared memory
// (cp.async) for kernels compiled with g++, with late completion so that a missing or short wait
// shows up on the CPU.
//
// With kernels/emu/include on the include path, `#include <cuda_pipeline.h>` (or this header) in
// kernel source finds the emulator's header under g++ and the CUDA toolkit's under nvcc. The
// primitives family is provided, with CUDA's names and signatures:
//
//   __pipeline_memcpy_async(dst_shared, src_global, size_and_align, zfill = 0)
//   __pipeline_commit()
//   __pipeline_wait_prior(prior)
//
// not cuda::memcpy_async / cuda::pipeline, nor __pipeline_arrive_on. Semantics in the emulator
// (docs/emulator.md, "Asynchronous copies"):
//
//   * __pipeline_memcpy_async checks size_and_align (4, 8 or 16), zfill <= size_and_align and
//     that both addresses are multiples of size_and_align (a diagnostic naming file:line, block
//     and thread otherwise), fills the destination with poison (0xFF bytes: NaN, -1) and queues
//     the copy in the calling thread's open group;
//   * __pipeline_commit closes the open group;
//   * __pipeline_wait_prior(N) performs every copy of the committed groups except the newest N
//     (N above 8 acts as 8, as in CUDA's header); copies not yet committed stay in flight.
//
// A copy is performed late: it reads its source and writes its destination (the first
// size_and_align - zfill bytes copied, the last zfill bytes zero) at the wait that covers it, at
// the thread's exit, or — with MW_EMU_ASYNC_COPY=random — at any earlier barrier or pipeline
// call of the thread after its issue, chosen by a seeded coin.
#pragma once

#if defined(__CUDACC__)
#error \
    "kernels/emu/include/cuda_pipeline_primitives.h is the emulator's; nvcc must use the CUDA toolkit's header"
#endif

#include <cstddef>
#include <source_location>

namespace mw::emu {
// The runtime (kernels/emu/pipeline_emu.cpp). `where` is the call site, for diagnostics.
void pipeline_memcpy_async(void* dst, const void* src, size_t size, size_t zfill,
                           const std::source_location& where);
void pipeline_commit();
void pipeline_wait_prior(size_t prior);
}  // namespace mw::emu

// The trailing source_location argument records where the call is written; kernels never pass it.
inline void __pipeline_memcpy_async(void* __restrict__ dst_shared,
                                    const void* __restrict__ src_global, size_t size_and_align,
                                    size_t zfill = 0,
                                    std::source_location where = std::source_location::current()) {
  mw::emu::pipeline_memcpy_async(dst_shared, src_global, size_and_align, zfill, where);
}

inline void __pipeline_commit() { mw::emu::pipeline_commit(); }

inline void __pipeline_wait_prior(size_t prior) { mw::emu::pipeline_wait_prior(prior); }
