// The emulator's <cuda_pipeline.h>: the asynchronous-copy primitives of
// <cuda_pipeline_primitives.h> (__pipeline_memcpy_async, __pipeline_commit,
// __pipeline_wait_prior). CUDA's header also declares the C++ classes
// nvcuda::experimental::pipeline and memcpy_async; the emulator does not provide them (kernels use
// the primitives, through one wrapper).
#pragma once

#if defined(__CUDACC__)
#error \
    "kernels/emu/include/cuda_pipeline.h is the emulator's; nvcc must use the CUDA toolkit's header"
#endif

#include "cuda_pipeline_primitives.h"
