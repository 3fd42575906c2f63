// The kernels and the C ABI compiled by g++ for the CPU emulator: the very same source as
// the CUDA build (kernels/launch.cuh selects the emulator when __CUDACC__ is undefined).
#include "magma_wino.cu"
