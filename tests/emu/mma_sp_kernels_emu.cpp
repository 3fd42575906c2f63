// The emulator build of the mma.sp test kernels: g++ compiles the unchanged CUDA source (the
// warp collective of kernels/mma_sp.cuh replaces the inline PTX).
#include "mma_sp_kernels.cu"
