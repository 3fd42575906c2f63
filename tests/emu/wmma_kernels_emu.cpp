// The emulator build of the WMMA test kernels: g++ compiles the unchanged CUDA source, with
// kernels/emu/include first on the include path so that <mma.h> is the emulator's.
#include "wmma_kernels.cu"
