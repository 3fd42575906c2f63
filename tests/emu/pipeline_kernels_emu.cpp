// The emulator build of the asynchronous-copy test kernels: g++ compiles the unchanged CUDA source.
#include "pipeline_kernels.cu"
